"""The charts: matplotlib SVG, embedded inline, fast enough for many actions."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

from recovery import charts


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
                  "measured at review", "evidence: care records", "as of 10/12", "deadline"):
        assert label in svg, label


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


def test_charts_are_quick_when_reused() -> None:
    charts.measure_chart(series())
    started = time.perf_counter()
    for i in range(10):
        charts.measure_chart(series(f"X-{i}"))
    each = (time.perf_counter() - started) / 10
    assert each < 1.0, f"{each:.2f}s per chart"


def test_rag_of_ratings() -> None:
    assert [charts.rag_of(r) for r in ("on_track", "at_risk", "off_track", "overdue",
                                       "not reviewed")] == ["green", "amber", "red", "red",
                                                            "grey"]
