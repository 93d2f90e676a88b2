"""Charts for the report packs, as SVG strings embedded inline.

Two charts:

- `measure_chart`: one action's measure over time (values measured at reviews and the
  evidence values behind them) against the target line and the straight-line trajectory
  from the baseline to the deadline.
- `matrix_chart`: a provider's locations by risk domain, each cell coloured by the worst
  status (RAG) of the actions in it (the `charts/matrix.svg` template).

A governance pack at provider scale draws a measure chart for each of up to ~2,000
high-risk actions, so that chart is two layers of the same size in one SVG:

- the *frame* (y axis 0-100% with its grid, the axes lines and the key), the same for every
  action: drawn by matplotlib once per process and reused;
- the *data* (trajectory, target and its label, measured values, evidence by pillar,
  as-of and deadline lines, the date axis with matplotlib's date locator's ticks): written
  per action by the `charts/measure.svg` template from coordinates worked out here on the
  frame's scale (about 1 ms a chart, where drawing it with matplotlib took 15-19 ms on the
  project's slow VM; `benchmarks/notes/pack.md`).

Text stays text in the SVG, so it is searchable and small; each chart's ids (marker and
clip-path definitions) are its own, so they never clash with another chart's in the same
HTML page. matplotlib is imported on first use, so importing this module (the CLI does)
costs nothing.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
    "amber": "amber: at risk",
    "green": "green: on track",
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
RATING_RAG = {"on_track": "green", "at_risk": "amber", "off_track": "red", "overdue": "red"}

_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.edgecolor": "#505a5f",
    "axes.linewidth": 0.6,
}
_LOCK = threading.Lock()
#: the measure chart's figure and where its plotting area sits (both layers share them)
_SIZE = (7.2, 2.7)
_AXES = (0.07, 0.12, 0.63, 0.80)
_YLIM = (-2.0, 102.0)
_EPOCH = date(1970, 1, 1).toordinal()  # matplotlib's date epoch: a date is days since it
_MAX_TICKS = 8


def rag_of(rating: str) -> str:
    """A review rating (on_track, at_risk, off_track, overdue) as red/amber/green; grey when
    the action has not been reviewed yet."""
    return RATING_RAG.get(rating, "grey")


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


def _day(value: date) -> float:
    return float(value.toordinal() - _EPOCH)


def _savefig(fig: Figure, salt: str) -> str:
    """A matplotlib figure written as SVG (`savefig`), without its XML prologue and
    metadata; `salt` makes its marker and clip-path ids its own."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({**_RC, "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)


def _labelled(text: str, label: str) -> str:
    """The root element sized by CSS (the viewBox keeps the shape), labelled for screen
    readers; element ids like "figure_1" (repeated in every SVG, never referenced)
    dropped, keeping the hashed ones (markers and clip paths, unique per salt)."""
    head_end = text.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", text[:head_end], count=2)
    safe_label = (label.replace("&", "&amp;").replace('"', "&quot;")
                  .replace("<", "&lt;").replace(">", "&gt;"))
    head += f' class="chart" role="img" aria-label="{safe_label}"'
    return re.sub(r'\sid="(?![mp][0-9a-f]{10,18}")[^"]*"', "", head + text[head_end:])


def _body(text: str) -> str:
    """What a matplotlib SVG draws: everything after its style definitions, without the
    closing tag (so a second layer of the same size can be added to the same SVG)."""
    start = text.index("</defs>") + len("</defs>")
    return text[start:text.rindex("</svg>")]


class _MeasureFrame:
    """The layer every measure chart shares: white background, y axis 0-100% with its grid,
    the axes lines and the key. Drawn once per process by matplotlib; its ids get a
    per-chart suffix."""

    def __init__(self) -> None:
        import matplotlib
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        with matplotlib.rc_context(_RC):
            fig = Figure(figsize=_SIZE, dpi=72)
            ax = fig.add_axes(_AXES)
            ax.set_ylim(*_YLIM)
            ax.set_xlim(0, 1)
            ax.set_xticks([])
            ax.set_yticks(range(0, 101, 20))
            ax.set_ylabel("%")
            ax.grid(axis="y", color="#e5e6e7", linewidth=0.5)
            ax.tick_params(labelsize=7)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            handles = [
                Line2D([], [], linestyle="--", color="#1d70b8", linewidth=1.1,
                       label="trajectory: baseline to target"),
                Line2D([], [], color="#00703c", linestyle=":", linewidth=1.3,
                       label="target (value on the line)"),
                Line2D([], [], color="#0b0c0c", linewidth=1.6, marker=".", markersize=5,
                       label="measured at review"),
                *(Line2D([], [], color=colour, marker=marker, linestyle="none",
                         markersize=5, label=f"evidence: {label}")
                  for colour, marker, label in PILLAR_STYLE.values()),
            ]
            fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.715, 0.5),
                       frameon=False, fontsize=7)
        text = _savefig(fig, "measure-frame")
        self.head = text[:text.index(">") + 1]
        self.body = _body(text)
        self.ids = sorted(set(re.findall(r'\sid="([mp][0-9a-f]{10})"', self.body)))

    def body_for(self, suffix: str) -> str:
        body = self.body
        for ident in self.ids:
            body = body.replace(f'"{ident}"', f'"{ident}{suffix}"').replace(
                f"#{ident}", f"#{ident}{suffix}")
        return body


# The data layer's geometry, in SVG user units (points: the figure is `_SIZE` inches at 72
# per inch; SVG's y grows downwards).
_WIDTH, _HEIGHT = _SIZE[0] * 72, _SIZE[1] * 72
_LEFT, _PLOT_WIDTH = _AXES[0] * _WIDTH, _AXES[2] * _WIDTH
_BOTTOM, _PLOT_HEIGHT = (1 - _AXES[1]) * _HEIGHT, _AXES[3] * _HEIGHT
_TOP = _BOTTOM - _PLOT_HEIGHT
#: where a 7 px DejaVu Sans label's baseline sits from the point it hangs from ("top") or
#: stands on ("bottom"), as matplotlib lays text out for the frame
_HANG, _STAND = 0.7598 * 7, 0.2403 * 7
#: marker outlines (matplotlib's "o" at 4 pt and "." at 5 pt, and the pillars' shapes at
#: 4 pt), centred on (0, 0); the tick mark hangs 3.5 pt below the axis
_MARKERS = {
    "o": "M0 2A2 2 0 1 1 0-2A2 2 0 1 1 0 2Z",
    ".": "M0 1.25A1.25 1.25 0 1 1 0-1.25A1.25 1.25 0 1 1 0 1.25Z",
    "s": "M-2 2H2V-2H-2Z",
    "^": "M0-2L-2 2H2Z",
    "v": "M0 2L2-2H-2Z",
    "D": "M0 2.83L2.83 0 0-2.83-2.83 0Z",
}


def _num(value: float) -> str:
    """A coordinate to two decimals (a hundredth of a point), without trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


class _Locator:
    """matplotlib's date locator, made once (imported with the frame)."""

    def __init__(self) -> None:
        from matplotlib import dates as mdates

        self.locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
        self.seen: dict[tuple[float, float], list[float]] = {}

    def ticks(self, left: float, right: float) -> list[float]:
        """The date ticks between two days (many actions share a range: remembered)."""
        key = (left, right)
        found = self.seen.get(key)
        if found is None:
            if len(self.seen) > 10_000:
                self.seen.clear()
            values = self.locator.tick_values(_datetime(left), _datetime(right))
            found = self.seen[key] = [t for t in values if left <= t <= right][:_MAX_TICKS]
        return found


def _data_layer(s: MeasureSeries, suffix: str, locator: _Locator) -> str:
    """One action's data, drawn over the frame: an SVG fragment written by the
    `charts/measure.svg` template from the geometry worked out here."""
    from recovery.mail import environment

    end = max(s.deadline, s.as_of)
    start = min([s.baseline_on, *(e.observed_on for e in s.evidence),
                 *(r.as_of for r in s.reviews)])
    span = max((end - start).days, 7)
    left = _day(start - timedelta(days=max(1, span // 40)))
    right = _day(end + timedelta(days=max(2, span // 25)))
    scale_x = _PLOT_WIDTH / (right - left)
    scale_y = _PLOT_HEIGHT / (_YLIM[1] - _YLIM[0])

    def x(day: date) -> str:
        return _num(_LEFT + (_day(day) - left) * scale_x)

    def y(value: float) -> str:
        return _num(_BOTTOM - (value - _YLIM[0]) * scale_y)

    by_pillar: dict[str, list[tuple[str, str]]] = {p: [] for p in PILLAR_STYLE}
    for e in s.evidence:
        by_pillar.get(e.pillar, by_pillar["supporting"]).append((x(e.observed_on),
                                                                  y(e.value)))
    measured = [(x(r.as_of), y(r.measured)) for r in s.reviews if r.measured is not None]
    target_y = _BOTTOM - (s.target - _YLIM[0]) * scale_y
    at_least = s.direction == "at_least"
    ticks = locator.ticks(left, right)
    return environment().get_template("charts/measure.svg").render(
        ids={"clip": f"p{suffix}c0", **{key: f"m{suffix}{i:02x}"
                                        for i, key in enumerate(_MARKERS)}},
        markers=_MARKERS,
        plot={"x": _num(_LEFT), "y": _num(_TOP), "width": _num(_PLOT_WIDTH),
              "height": _num(_PLOT_HEIGHT), "right": _num(_LEFT + _PLOT_WIDTH),
              "bottom": _num(_BOTTOM), "top": _num(_TOP)},
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
        ticks=[(_num(_LEFT + (t - left) * scale_x), _tick_label(t)) for t in ticks],
        tick_label_y=_num(_BOTTOM + 0.035 * _PLOT_HEIGHT + _HANG),
    )


def _datetime(day: float) -> datetime:
    return datetime.fromordinal(int(day) + _EPOCH) + timedelta(days=day - int(day))


def _tick_label(day: float) -> str:
    value = date.fromordinal(int(round(day)) + _EPOCH)
    return f"{value.day} {value:%b}"


_canvases = threading.local()


def _layers() -> tuple[_MeasureFrame, _Locator]:
    layers = getattr(_canvases, "measure", None)
    if layers is None:
        layers = _canvases.measure = (_MeasureFrame(), _Locator())
    result: tuple[_MeasureFrame, _Locator] = layers
    return result


def measure_chart(series: MeasureSeries) -> str:
    """The SVG of one action's measure over time, target and trajectory: the shared frame
    layer, then this action's data layer, in one SVG."""
    suffix = hashlib.blake2s(series.ref.encode("utf-8"), digest_size=4).hexdigest()
    with _LOCK:
        frame, locator = _layers()
    svg = (frame.head + frame.body_for(suffix) + _data_layer(series, suffix, locator)
           + "</svg>\n")
    return _labelled(svg, f"{series.ref}: measure over time against target and trajectory")


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
    from recovery.mail import environment

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
