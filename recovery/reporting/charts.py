"""Charts for the report packs, as SVG strings embedded inline.

Two charts:

- `measure_chart`: one action's measure over time (values measured at reviews and the
  evidence values behind them) against the target line and the straight-line trajectory
  from the baseline to the deadline.
- `matrix_chart`: a provider's locations by risk domain, each cell coloured by the worst
  status (RAG) of the actions in it (the `charts/matrix.svg` template).

Both are Jinja2 templates (`templates/charts/`) filled with coordinates worked out here:
a governance pack at provider scale draws a measure chart for each of up to ~2,000
high-risk actions, and a template writes one in about a millisecond, where matplotlib
(which drew them until round 5 of issue 6, and whose layout the templates keep) took
4-19 ms a chart and half a second to import (`benchmarks/notes/pack.md`).

Text stays text in the SVG, so it is searchable and small; each chart's ids (marker and
clip-path definitions) are its own, so they never clash with another chart's in the same
HTML page; people's text (location names) is escaped by the templates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict

from models.dates import shift
from models.review import rating_rag

#: RAG colours (GOV.UK palette: readable in print and for most colour vision).
RAG_COLOURS = {
    "red": "#d4351c",
    "amber": "#f47738",
    "green": "#00703c",
    "grey": "#b1b4b6",
    "none": "#f3f2f1",
}
RAG_ORDER = ("none", "grey", "green", "amber", "red")
RAG_TEXT = {"red": "white", "amber": "black", "green": "white", "grey": "black", "none": "#505a5f"}
RAG_LABELS = {
    "red": "red: off track or overdue",
    "amber": "amber: at risk or not yet evidenced",
    "green": "green: on track (measured at or above the trajectory)",
    "grey": "not yet reviewed",
    "none": "no open action",
}
PILLAR_STYLE = {
    "care_records": ("#1d70b8", "o", "care records"),
    "audits": ("#4c2c92", "s", "audits"),
    "feedback": ("#d53880", "^", "feedback"),
    "staff_practice": ("#28a197", "D", "staff practice"),
    "supporting": ("#6f777b", "v", "supporting"),
}

#: the measure chart's size (inches) and where its plotting area sits (fractions of it)
_SIZE = (7.2, 2.7)
_AXES = (0.07, 0.12, 0.63, 0.80)
_YLIM = (-2.0, 102.0)


def rag_of(rating: str) -> str:
    """A stored review rating as red/amber/green (the rule is `models.review.rating_rag`);
    grey when the action has not been reviewed yet."""
    return rating_rag(rating)


class ReviewPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    as_of: date
    measured: float | None
    trajectory: float
    rating: str


class EvidencePoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    observed_on: date
    value: float
    pillar: str


class MeasureSeries(BaseModel):
    """Everything one action's chart shows."""

    model_config = ConfigDict(frozen=True)

    ref: str
    measure: str
    baseline_on: date
    baseline: float
    target: float
    direction: str
    deadline: date
    as_of: date
    reviews: Sequence[ReviewPoint] = ()
    evidence: Sequence[EvidencePoint] = ()


# The measure chart's geometry, in SVG user units (points: the chart is `_SIZE` inches at
# 72 per inch; SVG's y grows downwards).
_WIDTH, _HEIGHT = _SIZE[0] * 72, _SIZE[1] * 72
_LEFT, _PLOT_WIDTH = _AXES[0] * _WIDTH, _AXES[2] * _WIDTH
_BOTTOM, _PLOT_HEIGHT = (1 - _AXES[1]) * _HEIGHT, _AXES[3] * _HEIGHT
_TOP = _BOTTOM - _PLOT_HEIGHT
#: where a 7 px DejaVu Sans label's baseline sits from the point it hangs from ("top") or
#: stands on ("bottom")
_HANG, _STAND = 0.7598 * 7, 0.2403 * 7
#: marker outlines centred on (0, 0): "o" at 4 pt, "." at 5 pt and the pillars' shapes at
#: 4 pt in the plot; at 5 pt in the key
_MARKERS = {
    "o": "M0 2A2 2 0 1 1 0-2A2 2 0 1 1 0 2Z",
    ".": "M0 1.25A1.25 1.25 0 1 1 0-1.25A1.25 1.25 0 1 1 0 1.25Z",
    "s": "M-2 2H2V-2H-2Z",
    "^": "M0-2L-2 2H2Z",
    "v": "M0 2L2-2H-2Z",
    "D": "M0 2.83L2.83 0 0-2.83-2.83 0Z",
}
_KEY_MARKERS = {
    "o": "M0 2.5A2.5 2.5 0 1 1 0-2.5A2.5 2.5 0 1 1 0 2.5Z",
    ".": _MARKERS["."],
    "s": "M-2.5 2.5H2.5V-2.5H-2.5Z",
    "^": "M0-2.5L-2.5 2.5H2.5Z",
    "v": "M0 2.5L2.5-2.5H-2.5Z",
    "D": "M0 3.54L3.54 0 0-3.54-3.54 0Z",
}
#: the key's rows: the first three (lines) are in the template, one row per pillar after
_KEY_FIRST_PILLAR, _KEY_ROW = 91.32, 10.5
_MAX_TICKS = 7
_YEAR_STEPS = (1, 2, 4, 5, 10, 20, 40, 50, 100)
_MONTH_STEPS = (1, 2, 3, 4, 6)
_DAY_STEPS = (1, 2, 4, 7, 14)


def _num(value: float) -> str:
    """A coordinate to two decimals (a hundredth of a point), without trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _step(count: int, steps: tuple[int, ...]) -> int:
    """The first step that puts at most `_MAX_TICKS` ticks over `count` units."""
    return next((s for s in steps if count <= s * (_MAX_TICKS - 1)), steps[-1])


def date_ticks(left: date, right: date) -> list[date]:
    """Where the date axis is ticked between two days: yearly (1 January) for spans of three
    years or more, else monthly (the 1st) for three months or more, else on days of the
    month (1 and 15, or 1, 8, 15 and 22, or every 1, 2 or 4 days), at the smallest step that
    gives at most seven ticks. The same ticks as matplotlib's
    `AutoDateLocator(minticks=3, maxticks=7)`, which the charts used before (checked over
    5,000 random spans, `benchmarks/notes/pack.md`)."""
    months = ((right.year - left.year) * 12 + right.month - left.month
              - (1 if right.day < left.day else 0))
    days = (right - left).days
    ticks: list[date]
    if months >= 36:
        step = _step(months // 12, _YEAR_STEPS)
        first = -(-left.year // step) * step
        ticks = [date(y, 1, 1) for y in range(first, right.year + 1, step)]
    elif months >= 3:
        step = _step(months, _MONTH_STEPS)
        ticks = []
        year, month = left.year, left.month
        while date(year, month, 1) <= right:
            if (month - 1) % step == 0:
                ticks.append(date(year, month, 1))
            if (year, month) == (date.max.year, 12):
                break  # the calendar's last month: there is no next one to test
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    else:
        step = _step(days, _DAY_STEPS)
        on = ({1, 15} if step == 14 else {1, 8, 15, 22} if step == 7
              else set(range(1, 32, step)))
        ticks = [d for d in (shift(left, i) for i in range(days + 1)) if d.day in on]
    return [t for t in ticks if left <= t <= right][:_MAX_TICKS]


def measure_chart(s: MeasureSeries) -> str:
    """The SVG of one action's measure over time, target and trajectory, written by the
    `charts/measure.svg` template from the geometry worked out here. Its ids (clip path,
    markers) carry a hash of the action's reference, so charts never share ids in a page."""
    from recovery.adapters.mail import environment

    suffix = hashlib.blake2s(s.ref.encode("utf-8"), digest_size=4).hexdigest()
    end = max(s.deadline, s.as_of)
    start = min([s.baseline_on, *(e.observed_on for e in s.evidence),
                 *(r.as_of for r in s.reviews)])
    span = max((end - start).days, 7)
    first_day = shift(start, -max(1, span // 40))
    last_day = shift(end, max(2, span // 25))
    left = first_day.toordinal()
    scale_x = _PLOT_WIDTH / (last_day.toordinal() - left)
    scale_y = _PLOT_HEIGHT / (_YLIM[1] - _YLIM[0])

    def x(day: date) -> str:
        return _num(_LEFT + (day.toordinal() - left) * scale_x)

    def y(value: float) -> str:
        return _num(_BOTTOM - (value - _YLIM[0]) * scale_y)

    by_pillar: dict[str, list[tuple[str, str]]] = {p: [] for p in PILLAR_STYLE}
    for e in s.evidence:
        by_pillar.get(e.pillar, by_pillar["supporting"]).append((x(e.observed_on),
                                                                  y(e.value)))
    measured = [(x(r.as_of), y(r.measured)) for r in s.reviews if r.measured is not None]
    target_y = _BOTTOM - (s.target - _YLIM[0]) * scale_y
    at_least = s.direction == "at_least"
    ids = {"clip": f"p{suffix}c0"}
    for i, key in enumerate(_MARKERS):
        ids[key], ids["key" + key] = f"m{suffix}{i:02x}", f"m{suffix}{i + 16:02x}"
    return environment().get_template("charts/measure.svg").render(
        label=f"{s.ref}: measure over time against target and trajectory",
        ids=ids, markers=_MARKERS, key_markers=_KEY_MARKERS,
        plot={"x": _num(_LEFT), "y": _num(_TOP), "width": _num(_PLOT_WIDTH),
              "height": _num(_PLOT_HEIGHT), "right": _num(_LEFT + _PLOT_WIDTH),
              "bottom": _num(_BOTTOM), "top": _num(_TOP)},
        grid=[(y(v), v) for v in range(0, 101, 20)],
        y_label_x=_num(_LEFT - 7),
        key_pillars=[(colour, marker, name, _num(_KEY_FIRST_PILLAR + i * _KEY_ROW))
                     for i, (colour, marker, name) in enumerate(PILLAR_STYLE.values())],
        trajectory=((x(s.baseline_on), y(s.baseline)), (x(s.deadline), y(s.target))),
        target={"y": _num(target_y), "label_x": _num(_LEFT + 0.01 * _PLOT_WIDTH),
                "label_y": _num(target_y + _HANG if at_least else target_y - _STAND),
                "label": f"target {'at least' if at_least else 'at most'} {s.target:g}%"},
        baseline=(x(s.baseline_on), y(s.baseline)),
        measured=measured,
        pillars=[(PILLAR_STYLE[p][0], PILLAR_STYLE[p][1], points)
                 for p, points in by_pillar.items() if points],
        as_of={"x": x(s.as_of), "label": s.as_of.strftime(" as of %d/%m")},
        deadline={"x": x(s.deadline)},
        label_y=_num(_BOTTOM - (101 - _YLIM[0]) * scale_y - _STAND),
        ticks=[(x(t), f"{t.day} {t:%b}") for t in date_ticks(first_day, last_day)],
        tick_label_y=_num(_BOTTOM + 0.035 * _PLOT_HEIGHT + _HANG),
    )


#: the width of a 7 px DejaVu Sans character, on average over ordinary English text (to lay
#: out the matrix key; its labels are fixed)
_CHAR_WIDTH = 0.52 * 7


def matrix_chart(
    locations: Sequence[str], domains: Sequence[tuple[str, str]],
    cells: dict[tuple[str, str], tuple[str, int]],
) -> str:
    """Locations (rows) by risk domains (columns, as (value, label)); each cell is
    (worst RAG, number of actions). A cell without actions is left pale. Written by the
    `charts/matrix.svg` template, laid out as matplotlib laid out the same chart (a
    provider group's 200 locations by 6 domains in ~20 ms, where matplotlib took ~0.8 s)."""
    from recovery.adapters.mail import environment

    rows = max(1, len(locations))
    width, height = 7.2 * 72, (0.9 + 0.28 * rows) * 72
    label_frac = min(0.30, 0.02 + 0.0105 * max((len(x) for x in locations), default=8))
    left, plot_width = label_frac * width, (0.98 - label_frac) * width
    top, row_height = 0.4 * 72, (height / 72 - 0.95) * 72 / rows
    cell_width = plot_width / max(1, len(domains))
    middle = 0.3645 * 7  # from a row's middle to the baseline of a 7 px label centred on it
    fill, counts = [], []
    for r, loc in enumerate(locations):
        for c, (d, _) in enumerate(domains):
            rag, count = cells.get((loc, d), ("none", 0))
            x, y = left + c * cell_width, top + r * row_height
            fill.append((_num(x), _num(y), RAG_COLOURS[rag]))
            if count:
                counts.append((_num(x + cell_width / 2), _num(y + row_height / 2 + middle),
                               RAG_TEXT[rag], count))
    columns = []
    for c, (_, label) in enumerate(domains):
        lines = label.split(" ", 1)
        columns.append({"x": _num(left + (c + 0.5) * cell_width), "lines": lines,
                        # the last line stands 3.5 pt above the cells
                        "y": _num(top - 3.5 - _STAND - 8.4 * (len(lines) - 1))})
    # the key: one row under the cells, centred, each entry a swatch and its label
    entries = [(name, RAG_LABELS[name]) for name in reversed(RAG_ORDER)]
    widths = [14 + 5.6 + len(label) * _CHAR_WIDTH for _, label in entries]
    x = (width - sum(widths) - 14 * (len(entries) - 1)) / 2
    key_baseline = height - 3.5 - 2.8 - _STAND
    key = []
    for (name, label), entry_width in zip(entries, widths, strict=True):
        key.append({"x": _num(x), "y": _num(key_baseline - 4.9 + 0.6), "label": label,
                    "colour": RAG_COLOURS[name], "text_x": _num(x + 14 + 5.6)})
        x += entry_width + 14
    return environment().get_template("charts/matrix.svg").render(
        width=_num(width), height=_num(height), columns=columns, line_height="8.4",
        rows=[{"name": loc, "baseline": _num(top + (r + 0.5) * row_height + middle)}
              for r, loc in enumerate(locations)],
        label_x=_num(left - 3.5), cells=fill, counts=counts,
        cell_width=_num(cell_width), cell_height=_num(row_height), key=key,
        key_baseline=_num(key_baseline))
