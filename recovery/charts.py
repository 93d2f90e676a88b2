"""Charts for the report packs: matplotlib (Agg) drawn to SVG strings embedded inline.

Two charts, each drawn on one figure that is set up once and reused (cleared between
charts), so a pack with many actions does not pay for a new figure every time:

- `measure_chart`: one action's measure over time (values measured at reviews and the
  evidence values behind them) against the target line and the straight-line trajectory
  from the baseline to the deadline.
- `matrix_chart`: a provider's locations by risk domain, each cell coloured by the worst
  status (RAG) of the actions in it.

Text stays text in the SVG (`svg.fonttype = none`), so it is searchable and small; every
chart gets its own hash salt, so the ids matplotlib puts in one SVG never clash with
another's in the same HTML page.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib import dates as mdates  # noqa: E402 - after choosing the backend
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from pydantic import BaseModel, ConfigDict  # noqa: E402

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


def _svg(fig: Figure, salt: str, label: str) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({**_RC, "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    head_end = text.index(">")
    head = text[:head_end]
    # drop the fixed size: CSS sizes the chart to its column (the viewBox keeps the shape)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head, count=2)
    safe_label = (label.replace("&", "&amp;").replace('"', "&quot;")
                  .replace("<", "&lt;").replace(">", "&gt;"))
    head += f' class="chart" role="img" aria-label="{safe_label}"'
    text = head + text[head_end:]
    # element ids like "figure_1" repeat in every SVG; only the hashed ones (markers and
    # clip paths, unique per salt) are referenced, so the rest are dropped
    return re.sub(r'\sid="(?![mp][0-9a-f]{10}")[^"]*"', "", text)


class _MeasureCanvas:
    """One figure for every action chart: set up once, cleared and redrawn per action."""

    def __init__(self) -> None:
        with matplotlib.rc_context(_RC):
            self.fig = Figure(figsize=(7.2, 2.7), dpi=100)
            self.ax = ax = self.fig.add_axes((0.07, 0.12, 0.63, 0.80))
            ax.xaxis_date()
            ax.set_ylim(-2, 102)
            ax.set_ylabel("%")
            ax.grid(axis="y", color="#e5e6e7", linewidth=0.5)
            ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%-d %b"))
            ax.tick_params(labelsize=7)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)

    def draw(self, s: MeasureSeries) -> str:
        ax = self.ax
        # remove only the data: axes, ticks and formatters set up once are kept
        for artist in [*ax.lines, *ax.collections, *ax.texts]:
            artist.remove()
        with matplotlib.rc_context(_RC):
            end = max(s.deadline, s.as_of)
            span = max((end - s.baseline_on).days, 7)
            left = s.baseline_on - timedelta(days=max(1, span // 40))
            right = end + timedelta(days=max(2, span // 25))
            handles: list[object] = []
            traj = ax.plot([s.baseline_on, s.deadline], [s.baseline, s.target],
                           linestyle="--", color="#1d70b8", linewidth=1.1,
                           label="trajectory: baseline to target")
            handles += traj
            word = "at least" if s.direction == "at_least" else "at most"
            target = ax.axhline(s.target, color="#00703c", linestyle=":", linewidth=1.3,
                                label=f"target {word} {s.target:g}%")
            handles.append(target)
            ax.plot([s.baseline_on], [s.baseline], marker="o", color="#0b0c0c", markersize=4,
                    linestyle="none")
            measured = [(r.as_of, r.measured) for r in s.reviews if r.measured is not None]
            if measured:
                xs, ys = zip(*measured, strict=True)
                handles += ax.plot(xs, ys, color="#0b0c0c", linewidth=1.6, marker=".",
                                   markersize=5, label="measured at review")
            shown: set[str] = set()
            for pillar, (colour, marker, label) in PILLAR_STYLE.items():
                points = [e for e in s.evidence if e.pillar == pillar]
                if not points:
                    continue
                ax.scatter([e.observed_on for e in points], [e.value for e in points],
                           s=16, marker=marker, color=colour, alpha=0.85, zorder=3,
                           linewidths=0)
                handles.append(Line2D([], [], color=colour, marker=marker, linestyle="none",
                                      markersize=5, label=f"evidence: {label}"))
                shown.add(pillar)
            ax.axvline(s.as_of, color="#b1b4b6", linewidth=0.8)
            ax.text(s.as_of, 101, s.as_of.strftime(" as of %d/%m"), fontsize=7,
                    color="#505a5f", va="bottom", ha="left")
            ax.axvline(s.deadline, color="#d4351c", linewidth=0.6, alpha=0.5)
            ax.text(s.deadline, 101, "deadline ", fontsize=7, color="#d4351c", va="bottom",
                    ha="right")
            ax.set_xlim(left, right)
            self.fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.715, 0.5),
                            frameon=False, fontsize=7)
            svg = _svg(self.fig, f"measure-{s.ref}",
                       f"{s.ref}: measure over time against target and trajectory")
            for legend in list(self.fig.legends):
                legend.remove()
            return svg


_canvases = threading.local()


def _measure_canvas() -> _MeasureCanvas:
    canvas = getattr(_canvases, "measure", None)
    if canvas is None:
        canvas = _canvases.measure = _MeasureCanvas()
    return canvas


def measure_chart(series: MeasureSeries) -> str:
    """The SVG of one action's measure over time, target and trajectory."""
    with _LOCK:
        return _measure_canvas().draw(series)


def matrix_chart(
    locations: Sequence[str], domains: Sequence[tuple[str, str]],
    cells: dict[tuple[str, str], tuple[str, int]],
) -> str:
    """Locations (rows) by risk domains (columns, as (value, label)); each cell is
    (worst RAG, number of actions). A cell without actions is left pale."""
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
            ax.imshow(grid, cmap=cmap, vmin=0, vmax=len(RAG_ORDER) - 1, aspect="auto",
                      interpolation="nearest")
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
        ax.set_xticks([x - 0.5 for x in range(1, len(domains))], minor=True)
        ax.set_yticks([y - 0.5 for y in range(1, len(locations))], minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        fig.legend(handles=[Patch(facecolor=RAG_COLOURS[n], edgecolor="#b1b4b6",
                                  label=RAG_LABELS[n]) for n in reversed(RAG_ORDER)],
                   loc="lower center", ncol=5, frameon=False, fontsize=7,
                   bbox_to_anchor=(0.5, 0.0))
        return _svg(fig, "matrix-" + "|".join(locations),
                    "locations by risk domain, coloured by worst status")
