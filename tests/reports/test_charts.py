"""The charts: matplotlib SVG, embedded inline, fast enough for many actions."""

from __future__ import annotations

import re
import time
from datetime import date, timedelta

from recovery import charts
from recovery.governance import ActionLine


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


def test_charts_are_quick_when_reused() -> None:
    charts.measure_chart(series())
    started = time.process_time()
    for i in range(50):
        charts.measure_chart(series(f"X-{i}"))
    each = (time.process_time() - started) / 50
    assert each < 0.05, f"{each * 1000:.1f} ms CPU per chart"  # ~3-5 ms on the 2-core VM


def test_fast_renderer_writes_what_matplotlib_writes() -> None:
    """The data layer drawn with the trimmed renderer is byte for byte what matplotlib's
    own `savefig` writes (a guard for matplotlib upgrades)."""
    import io

    import matplotlib

    _, data = charts._layers()
    for s in (series("A-1"), series("B-2", days=90)):
        fast = data.draw(s)
        buffer = io.StringIO()
        with matplotlib.rc_context({**charts._RC, "svg.hashsalt": f"measure-{s.ref}"}):
            data.fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
        stock = buffer.getvalue()
        stock = re.sub(r"<metadata>.*?</metadata>\s*", "", stock[stock.index("<svg"):],
                       count=1, flags=re.S)
        assert fast == stock


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
    from recovery.reports import ATTENTION_OVER, CHART_ALL_LIMIT, chart_plan

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
