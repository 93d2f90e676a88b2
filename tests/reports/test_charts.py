"""The charts: inline SVG written by templates, fast enough for many actions."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from recovery.reporting import charts
from recovery.reporting.snapshot import ActionLine


def series(ref: str = "ROSE-SG-001", days: int = 20) -> charts.MeasureSeries:
    start = date(2026, 11, 20)
    return charts.MeasureSeries(
        ref=ref, measure="Concerns reviewed the same day", baseline_on=start, baseline=62,
        target=100, direction="at_least", deadline=date(2027, 1, 1),
        as_of=start + timedelta(days=days),
        reviews=[charts.ReviewPoint(as_of=start + timedelta(days=i), measured=62 + i,
                                    trajectory=62 + i * 0.9, rating="on_track")
                 for i in range(1, days)],
        evidence=[charts.EvidencePoint(observed_on=start + timedelta(days=i), value=64 + i,
                                       pillar=p)
                  for i, p in enumerate(["care_records", "audits", "feedback",
                                         "staff_practice"], start=2)])


def test_measure_chart_is_inline_svg_with_target_and_trajectory() -> None:
    svg = charts.measure_chart(series())
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<metadata" not in svg
    assert 'class="chart"' in svg and 'viewBox="' in svg and ' width="' not in svg[:300]
    for label in ("target at least 100%", "trajectory: baseline to target",
                  "measured at review", "evidence: care records", "as of 10/12", "deadline",
                  ">1 Dec<", ">1 Jan<"):  # dates on the axis
        assert label in svg, label
    # the data: one marker per evidence item and per measured review, and the y axis
    assert svg.count("<use ") >= 4 + 19 and ">100<" in svg and ">0<" in svg
    # one SVG root (the shared frame and the action's data are layers of it)
    assert svg.count("<svg") == 1 and svg.count("</svg>") == 1


def test_charts_in_one_page_do_not_share_ids() -> None:
    first, second = charts.measure_chart(series("A-1")), charts.measure_chart(series("B-1"))
    ids_first = set(re.findall(r'\sid="([^"]+)"', first))
    ids_second = set(re.findall(r'\sid="([^"]+)"', second))
    assert ids_first and not ids_first & ids_second
    # every reference inside a chart points at an id of the same chart
    for svg, ids in ((first, ids_first), (second, ids_second)):
        for ref in re.findall(r'(?:xlink:href|href)="#([^"]+)"|url\(#([^)]+)\)', svg):
            assert (ref[0] or ref[1]) in ids


def test_matrix_colours_cells_by_worst_status() -> None:
    svg = charts.matrix_chart(
        ["Rose House", "Quay <House>"], [("safeguarding", "safeguarding"),
                                         ("medicines", "medicines")],
        {("Rose House", "safeguarding"): ("green", 1), ("Quay <House>", "medicines"): ("red", 2)})
    assert ">Rose House<" in svg and "Quay &lt;House&gt;" in svg and "<House>" not in svg
    assert "red: off track or overdue" in svg and "no open action" in svg
    # one cell per location and domain, coloured by the worst status, inside the chart
    _, _, width, height = (float(v) for v in re.search(r'viewBox="([^"]+)"', svg)
                           .group(1).split())
    cells = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" '
                       r'height="([\d.]+)" style="fill:(#[0-9a-f]{6})"/>', svg)
    assert sorted(c[4] for c in cells) == sorted([charts.RAG_COLOURS["green"],
                                                  charts.RAG_COLOURS["red"]]
                                                 + [charts.RAG_COLOURS["none"]] * 2)
    for x, y, w, h, _ in cells:
        assert float(x) > 0 and float(x) + float(w) <= width
        assert float(y) > 0 and float(y) + float(h) < height
    assert re.search(r'style="fill:white">2</text>', svg)  # the count, readable on red


def test_charts_are_quick_when_reused() -> None:
    charts.measure_chart(series())
    started = time.process_time()
    for i in range(50):
        charts.measure_chart(series(f"X-{i}"))
    each = (time.process_time() - started) / 50
    assert each < 0.02, f"{each * 1000:.1f} ms CPU per chart"  # ~1 ms on the 2-core VM


def _grid_rows(svg: str) -> list[float]:
    """The y of the frame's horizontal grid lines (0, 20, ... 100%), top first."""
    grid = re.search(r'<g class="grid"[^>]*>(.*?)</g>', svg, flags=re.S)
    assert grid is not None
    return sorted(float(y) for y in re.findall(r'<path d="M[\d.]+ ([\d.]+)H', grid.group(1)))


def test_the_data_sits_on_the_frames_axes() -> None:
    """A review measured at 0, 20, ... 100% sits on that grid line, beside that axis label;
    the target line on the target's; the as-of line on the tick of the day it names."""
    start = date(2026, 11, 1)
    values = [0, 20, 40, 60, 80, 100]
    s = charts.MeasureSeries(
        ref="AXES-1", measure="m", baseline_on=start, baseline=40, target=80,
        direction="at_most", deadline=date(2027, 1, 1), as_of=date(2026, 12, 1),
        reviews=[charts.ReviewPoint(as_of=start + timedelta(days=3 * i), measured=v,
                                    trajectory=0, rating="on_track")
                 for i, v in enumerate(values)])
    svg = charts.measure_chart(s)
    rows = _grid_rows(svg)
    assert len(rows) == 6, rows
    labels = {int(v): float(y) for y, v in re.findall(
        r'<text x="[\d.]+" y="([\d.]+)" dy="2.66">(\d+)</text>', svg)}
    assert labels == dict(zip([100, 80, 60, 40, 20, 0], rows, strict=True))
    measured = re.search(r'<path class="measured" d="([^"]+)"', svg)
    assert measured is not None
    ys = [float(y) for y in re.findall(r"[ML][\d.]+ ([\d.]+)", measured.group(1))]
    assert ys == list(reversed(rows))
    target = re.search(r'<path class="target" d="M[\d.]+ ([\d.]+)H', svg)
    assert target is not None and float(target.group(1)) == rows[1]  # 80%
    # the as-of line (1 Dec) stands on the "1 Dec" tick; "at most": the label above the line
    as_of = re.search(r'<path class="as-of" d="M([\d.]+) ', svg)
    tick = re.search(r'<text x="([\d.]+)" y="[\d.]+">1 Dec</text>', svg)
    assert as_of is not None and tick is not None and as_of.group(1) == tick.group(1)
    label = re.search(r'y="([\d.]+)"[^>]*>target at most 80%<', svg)
    assert label is not None and float(label.group(1)) < rows[1]


def test_date_ticks_step_by_days_months_or_years() -> None:
    d = date
    # six weeks: the 1st and the 15th
    assert charts.date_ticks(d(2026, 11, 19), d(2027, 1, 3)) == [
        d(2026, 12, 1), d(2026, 12, 15), d(2027, 1, 1)]
    # ten days: every other day of the month
    assert charts.date_ticks(d(2026, 11, 20), d(2026, 11, 30)) == [
        d(2026, 11, 21), d(2026, 11, 23), d(2026, 11, 25), d(2026, 11, 27), d(2026, 11, 29)]
    # five months: each month; sixteen months: each quarter
    assert charts.date_ticks(d(2026, 11, 1), d(2027, 4, 15)) == [
        d(2026, 11, 1), d(2026, 12, 1), d(2027, 1, 1), d(2027, 2, 1), d(2027, 3, 1),
        d(2027, 4, 1)]
    assert charts.date_ticks(d(2026, 1, 10), d(2027, 6, 1)) == [
        d(2026, 4, 1), d(2026, 7, 1), d(2026, 10, 1), d(2027, 1, 1), d(2027, 4, 1)]
    # years
    assert charts.date_ticks(d(2020, 3, 1), d(2027, 1, 1)) == [
        d(year, 1, 1) for year in range(2021, 2028)]


@given(st.dates(date(2020, 1, 1), date(2030, 1, 1)), st.integers(7, 3_000))
def test_date_ticks_are_few_in_order_and_inside(left: date, days: int) -> None:
    right = left + timedelta(days=days)
    ticks = charts.date_ticks(left, right)
    assert 2 <= len(ticks) <= 7
    assert ticks == sorted(set(ticks)) and left <= ticks[0] and ticks[-1] <= right


def test_measure_charts_render_in_a_pdf() -> None:
    """WeasyPrint (the PDF packs) draws the chart: clip paths and marker references resolve."""
    import weasyprint

    page = f"<html><body>{charts.measure_chart(series())}</body></html>"
    pdf = weasyprint.HTML(string=page).write_pdf()
    assert pdf is not None and pdf.startswith(b"%PDF-") and len(pdf) > 5_000


def test_rag_of_ratings() -> None:
    assert [charts.rag_of(r) for r in ("on_track", "at_risk", "off_track", "overdue",
                                       "not reviewed")] == ["green", "amber", "red", "red",
                                                            "grey"]


# ---------------------------------------------------------------- which actions get a chart


def _line(n: int, *, level: str = "high", rating: str = "on_track", escalated: bool = False,
          overdue: bool = False, decisions: tuple[str, ...] = ()) -> ActionLine:
    return ActionLine(
        ref=f"SITE-{n:04d}", title="t", location="Rose House", risk_domain="safeguarding",
        risk_level=level, risk_score=24, risk_reasons=[], status="in_recovery", rating=rating,
        measured=80, previous_measured=78, trend="improving", baseline=60, target=100,
        target_wording="at least 100%", deadline=date(2027, 3, 1), days_to_deadline=90,
        progress_pct=50, escalated=escalated, escalation_reasons=[],
        next_review_due=date(2026, 12, 1), review_overdue=overdue, cadence="weekly",
        accountable_lead="a", senior_reviewer="b", decisions_needed=list(decisions),
        last_provider_review=None, stale_pillars=[], weaknesses=[])


def test_small_packs_chart_everything_and_big_ones_chart_what_needs_attention() -> None:
    import pytest

    from models.errors import InvalidInput
    from recovery.reporting.packs import ATTENTION_OVER, CHART_ALL_LIMIT, chart_plan

    few = [_line(i, level="low") for i in range(CHART_ALL_LIMIT)]
    assert chart_plan(few, "auto") == ({line.ref for line in few}, None)

    high = [_line(i) for i in range(ATTENTION_OVER)] + [_line(999, level="medium")]
    assert chart_plan(high, "auto") == ({f"SITE-{i:04d}" for i in range(ATTENTION_OVER)}, None)

    many = [_line(i) for i in range(ATTENTION_OVER + 20)]
    many[1] = _line(1, rating="off_track")
    many[2] = _line(2, rating="not reviewed")
    many[3] = _line(3, escalated=True)
    many[4] = _line(4, overdue=True)
    many[5] = _line(5, decisions=("closure sign-off by the senior reviewer",))
    many[6] = _line(6, level="medium", rating="off_track")  # not high risk: no chart
    charted, note = chart_plan(many, "auto")
    assert charted == {f"SITE-{i:04d}" for i in (1, 2, 3, 4, 5)}
    assert note is not None and note.startswith(
        f"{ATTENTION_OVER + 20 - 1 - 5} of the {ATTENTION_OVER + 20 - 1} high-risk actions "
        "are on track")
    assert chart_plan(many, "high")[0] == {line.ref for line in many
                                           if line.risk_level == "high"}
    assert chart_plan(many, "none") == (set(), None)
    with pytest.raises(InvalidInput, match="charts"):
        chart_plan(many, "some")
