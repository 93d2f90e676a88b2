"""Charts for the report packs: matplotlib (Agg) drawn to SVG strings embedded inline.

Two charts:

- `measure_chart`: one action's measure over time (values measured at reviews and the
  evidence values behind them) against the target line and the straight-line trajectory
  from the baseline to the deadline.
- `matrix_chart`: a provider's locations by risk domain, each cell coloured by the worst
  status (RAG) of the actions in it.

A governance pack at provider scale draws a measure chart for each of ~2,000 high-risk
actions, so that chart is drawn in two matplotlib layers of the same size, one SVG in the
page:

- the *frame* (y axis 0-100% with its grid, the axes lines and the key), which is the
  same for every action: drawn once per process and reused;
- the *data* (trajectory, target and its label, measured values, evidence by pillar,
  as-of and deadline lines, the date axis): drawn per action on one figure whose artists
  are created once and given each action's data (no new figure, axes, legend or artists
  per chart; dates converted without `date2num`).

Text stays text in the SVG (`svg.fonttype = none`), so it is searchable and small; each
chart's ids (marker and clip-path definitions) are its own, so they never clash with
another chart's in the same HTML page. matplotlib is imported on first use, so importing
this module (the CLI does) costs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import threading
from collections.abc import Iterator, Sequence
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


@contextlib.contextmanager
def _rc(salt: str) -> Iterator[None]:
    """`_RC` and this chart's id salt, set for one drawing and put back afterwards (cheaper
    than `matplotlib.rc_context`, which copies every setting; callers hold `_LOCK`)."""
    import matplotlib

    params = matplotlib.rcParams
    wanted = {**_RC, "svg.hashsalt": salt}
    saved = {key: params[key] for key in wanted}
    params.update(wanted)
    try:
        yield
    finally:
        params.update(saved)


def _renderer(width: float, height: float, out: io.StringIO) -> Any:
    """matplotlib's SVG renderer, with two costs taken out of its per-element work (the
    SVG written is the same, which `tests/reports/test_charts.py` checks):

    - `draw_markers` works out the marker style once per line, not once per point;
    - text extents are remembered across charts (the stock renderer forgets them with
      each new renderer, i.e. each chart), keyed by text, font properties and mathtext.
    """
    global _RENDERER
    if _RENDERER is None:
        from matplotlib.backends import backend_svg
        from matplotlib.transforms import Affine2D

        class FastRendererSVG(backend_svg.RendererSVG):  # type: ignore[misc]
            def get_text_width_height_descent(self, s: str, prop: Any,
                                              ismath: Any) -> Any:
                key = (s, hash(prop), str(ismath))
                found = _TEXT_EXTENTS.get(key)
                if found is None:
                    if len(_TEXT_EXTENTS) > 20_000:
                        _TEXT_EXTENTS.clear()
                    found = _TEXT_EXTENTS[key] = super().get_text_width_height_descent(
                        s, prop, ismath)
                return found

            def draw_markers(self, gc: Any, marker_path: Any, marker_trans: Any,
                             path: Any, trans: Any, rgbFace: Any = None) -> None:
                # matplotlib 3.11's RendererSVG.draw_markers, the per-point style hoisted
                if not len(path.vertices) or gc.get_url() is not None:
                    super().draw_markers(gc, marker_path, marker_trans, path, trans,
                                         rgbFace)
                    return
                writer = self.writer
                path_data = self._convert_path(
                    marker_path, marker_trans + Affine2D().scale(1.0, -1.0),
                    simplify=False)
                style = self._get_style_dict(gc, rgbFace)
                dictkey = (path_data, backend_svg._generate_css(style))
                oid = self._markers.get(dictkey)
                style = backend_svg._generate_css(
                    {k: v for k, v in style.items() if k.startswith("stroke")})
                if oid is None:
                    oid = self._make_id("m", dictkey)
                    writer.start("defs")
                    writer.element("path", id=oid, d=path_data, style=style)
                    writer.end("defs")
                    self._markers[dictkey] = oid
                writer.start("g", **self._get_clip_attrs(gc))
                trans_and_flip = self._make_flip_transform(trans)
                href, point_style = f"#{oid}", self._get_style(gc, rgbFace)
                clip = (0, 0, self.width * 72, self.height * 72)
                fmt = backend_svg._short_float_fmt
                for vertices, _ in path.iter_segments(trans_and_flip, clip=clip,
                                                      simplify=False):
                    if len(vertices):
                        x, y = vertices[-2:]
                        writer.element("use", attrib={"xlink:href": href, "x": fmt(x),
                                                      "y": fmt(y), "style": point_style})
                writer.end("g")

        _RENDERER = FastRendererSVG
    return _RENDERER(width, height, out, image_dpi=72,
                     metadata={"Date": None, "Creator": None})


_RENDERER: Any = None
_TEXT_EXTENTS: dict[tuple[str, int, str], Any] = {}


def _svg_text(fig: Figure, salt: str) -> str:
    """The figure (made at 72 dpi, SVG's unit) drawn as SVG, without its metadata."""
    buffer = io.StringIO()
    with _rc(salt):
        width, height = fig.get_size_inches()
        renderer = _renderer(width * 72, height * 72, buffer)
        fig.draw(renderer)
        renderer.finalize()
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


def _svg(fig: Figure, salt: str, label: str) -> str:
    """A figure saved the stock way (`savefig`), labelled: for the one-off matrix."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({**_RC, "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    return _labelled(text, label)


def _body(text: str) -> str:
    """What a matplotlib SVG draws: everything after its style definitions, without the
    closing tag (so two layers of the same size can be stacked in one SVG)."""
    start = text.index("</defs>") + len("</defs>")
    return text[start:text.rindex("</svg>")]


class _MeasureFrame:
    """The layer every measure chart shares: white background, y axis 0-100% with its grid,
    the axes lines and the key. Drawn once; its ids get a per-chart suffix."""

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
            text = _svg_text(fig, "measure-frame")
        self.head = text[:text.index(">") + 1]
        self.body = _body(text)
        self.ids = sorted(set(re.findall(r'\sid="([mp][0-9a-f]{10})"', self.body)))

    def body_for(self, suffix: str) -> str:
        body = self.body
        for ident in self.ids:
            body = body.replace(f'"{ident}"', f'"{ident}{suffix}"').replace(
                f"#{ident}", f"#{ident}{suffix}")
        return body


class _MeasureData:
    """The per-action layer: one figure, its artists created once and given each action's
    data. Transparent, no axis decorations of matplotlib's own (the frame has the y axis;
    the date labels are a few reused texts placed where matplotlib's date locator says)."""

    def __init__(self) -> None:
        import matplotlib
        from matplotlib import dates as mdates
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        self.locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
        with matplotlib.rc_context(_RC):
            self.fig = fig = Figure(figsize=_SIZE, dpi=72)
            fig.patch.set_visible(False)
            self.ax = ax = fig.add_axes(_AXES)
            ax.set_axis_off()
            ax.set_ylim(*_YLIM)
            xaxis, yaxis = ax.get_xaxis_transform(), ax.get_yaxis_transform()
            self.trajectory = ax.add_line(Line2D([], [], linestyle="--", color="#1d70b8",
                                                 linewidth=1.1))
            self.target = ax.add_line(Line2D([0, 1], [0, 0], transform=yaxis,
                                             color="#00703c", linestyle=":", linewidth=1.3))
            self.target_label = ax.text(0.01, 0, "", transform=yaxis, fontsize=7,
                                        color="#00703c", ha="left", va="top")
            self.baseline = ax.add_line(Line2D([], [], marker="o", color="#0b0c0c",
                                               markersize=4, linestyle="none"))
            self.measured = ax.add_line(Line2D([], [], color="#0b0c0c", linewidth=1.6,
                                               marker=".", markersize=5))
            self.pillars = {
                pillar: ax.add_line(Line2D([], [], marker=marker, color=colour,
                                           markersize=4, markeredgewidth=0, alpha=0.85,
                                           linestyle="none", zorder=3))
                for pillar, (colour, marker, _) in PILLAR_STYLE.items()}
            self.as_of = ax.add_line(Line2D([0, 0], [0, 1], transform=xaxis,
                                            color="#b1b4b6", linewidth=0.8))
            self.as_of_label = ax.text(0, 101, "", fontsize=7, color="#505a5f", va="bottom",
                                       ha="left")
            self.deadline = ax.add_line(Line2D([0, 0], [0, 1], transform=xaxis,
                                               color="#d4351c", linewidth=0.6, alpha=0.5))
            self.deadline_label = ax.text(0, 101, "deadline ", fontsize=7, color="#d4351c",
                                          va="bottom", ha="right")
            # the date axis: tick marks below the frame's bottom line, and their labels
            self.ticks = ax.add_line(Line2D([], [], transform=xaxis, marker=3,
                                            markersize=3.5, markeredgewidth=0.6,
                                            color="#505a5f", linestyle="none",
                                            clip_on=False))
            self.tick_labels = [ax.text(0, -0.035, "", transform=xaxis, fontsize=7,
                                        ha="center", va="top", clip_on=False)
                                for _ in range(_MAX_TICKS)]

    def draw(self, s: MeasureSeries) -> str:
        end = max(s.deadline, s.as_of)
        start = min([s.baseline_on, *(e.observed_on for e in s.evidence),
                     *(r.as_of for r in s.reviews)])
        span = max((end - start).days, 7)
        left = _day(start - timedelta(days=max(1, span // 40)))
        right = _day(end + timedelta(days=max(2, span // 25)))
        self.ax.set_xlim(left, right)
        self.trajectory.set_data([_day(s.baseline_on), _day(s.deadline)],
                                 [s.baseline, s.target])
        self.target.set_ydata([s.target, s.target])
        word = "at least" if s.direction == "at_least" else "at most"
        self.target_label.set_y(s.target)  # on the baseline's side, where the data starts
        self.target_label.set_verticalalignment("top" if s.direction == "at_least"
                                                else "bottom")
        self.target_label.set_text(f"target {word} {s.target:g}%")
        self.baseline.set_data([_day(s.baseline_on)], [s.baseline])
        measured = [(_day(r.as_of), r.measured) for r in s.reviews if r.measured is not None]
        self.measured.set_data([x for x, _ in measured], [y for _, y in measured])
        by_pillar: dict[str, tuple[list[float], list[float]]] = {
            p: ([], []) for p in self.pillars}
        for e in s.evidence:
            xs, ys = by_pillar.get(e.pillar) or by_pillar["supporting"]
            xs.append(_day(e.observed_on))
            ys.append(e.value)
        for pillar, line in self.pillars.items():
            line.set_data(*by_pillar[pillar])
        self.as_of.set_xdata([_day(s.as_of)] * 2)
        self.as_of_label.set_x(_day(s.as_of))
        self.as_of_label.set_text(s.as_of.strftime(" as of %d/%m"))
        self.deadline.set_xdata([_day(s.deadline)] * 2)
        self.deadline_label.set_x(_day(s.deadline))
        ticks = [t for t in self.locator.tick_values(_datetime(left), _datetime(right))
                 if left <= t <= right][:_MAX_TICKS]
        self.ticks.set_data(ticks, [0.0] * len(ticks))
        for i, text in enumerate(self.tick_labels):
            if i < len(ticks):
                text.set_visible(True)
                text.set_x(ticks[i])
                text.set_text(_tick_label(ticks[i]))
            else:
                text.set_visible(False)
        return _svg_text(self.fig, f"measure-{s.ref}")


def _datetime(day: float) -> datetime:
    return datetime.fromordinal(int(day) + _EPOCH) + timedelta(days=day - int(day))


def _tick_label(day: float) -> str:
    value = date.fromordinal(int(round(day)) + _EPOCH)
    return f"{value.day} {value:%b}"


_canvases = threading.local()


def _layers() -> tuple[_MeasureFrame, _MeasureData]:
    layers = getattr(_canvases, "measure", None)
    if layers is None:
        layers = _canvases.measure = (_MeasureFrame(), _MeasureData())
    result: tuple[_MeasureFrame, _MeasureData] = layers
    return result


def measure_chart(series: MeasureSeries) -> str:
    """The SVG of one action's measure over time, target and trajectory: the shared frame
    layer, then this action's data layer, in one SVG."""
    with _LOCK:
        frame, data = _layers()
        layer = data.draw(series)
    suffix = hashlib.blake2s(series.ref.encode("utf-8"), digest_size=4).hexdigest()
    svg = frame.head + frame.body_for(suffix) + _body(layer) + "</svg>\n"
    return _labelled(svg, f"{series.ref}: measure over time against target and trajectory")


def matrix_chart(
    locations: Sequence[str], domains: Sequence[tuple[str, str]],
    cells: dict[tuple[str, str], tuple[str, int]],
) -> str:
    """Locations (rows) by risk domains (columns, as (value, label)); each cell is
    (worst RAG, number of actions). A cell without actions is left pale."""
    import matplotlib
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = max(1, len(locations))
    height = 0.9 + 0.28 * rows
    code = {name: i for i, name in enumerate(RAG_ORDER)}
    grid = [[code[cells.get((loc, d), ("none", 0))[0]] for d, _ in domains] for loc in locations]
    with _LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(7.2, height), dpi=100)
        label_width = min(0.30, 0.02 + 0.0105 * max((len(x) for x in locations), default=8))
        ax = fig.add_axes((label_width, 0.55 / height, 0.98 - label_width,
                           1 - 0.95 / height))
        cmap = ListedColormap([RAG_COLOURS[name] for name in RAG_ORDER])
        if locations and domains:
            # vector cells (not an image: `imshow` rasterised a 200-location provider at
            # ~100 MB of working memory, and prints blurred)
            ax.pcolormesh([x - 0.5 for x in range(len(domains) + 1)],
                          [y - 0.5 for y in range(len(locations) + 1)], grid, cmap=cmap,
                          vmin=0, vmax=len(RAG_ORDER) - 1, edgecolors="white",
                          linewidth=1.5)
        ax.set_xlim(-0.5, len(domains) - 0.5)
        ax.set_ylim(len(locations) - 0.5, -0.5)
        for y, loc in enumerate(locations):
            for x, (d, _) in enumerate(domains):
                rag, count = cells.get((loc, d), ("none", 0))
                if count:
                    ax.text(x, y, str(count), ha="center", va="center", fontsize=7,
                            color=RAG_TEXT[rag])
        ax.set_xticks(range(len(domains)), [label.replace(" ", "\n", 1) for _, label
                                            in domains])
        ax.xaxis.tick_top()
        ax.set_yticks(range(len(locations)), list(locations))
        ax.tick_params(length=0, labelsize=7)
        for spine in ax.spines.values():
            spine.set_visible(False)
        fig.legend(handles=[Patch(facecolor=RAG_COLOURS[n], edgecolor="#b1b4b6",
                                  label=RAG_LABELS[n]) for n in reversed(RAG_ORDER)],
                   loc="lower center", ncol=5, frameon=False, fontsize=7,
                   bbox_to_anchor=(0.5, 0.0))
        return _svg(fig, "matrix-" + "|".join(locations),
                    "locations by risk domain, coloured by worst status")
