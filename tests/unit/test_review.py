"""A review: progress against the straight-line trajectory, freshness, triggers, rating."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from models.action import ActionPlan, RiskDomain, TriggerKind
from models.cadence import Cadence
from models.evidence import Evidence, Pillar
from models.review import (
    UNIVERSAL_TRIGGERS,
    Assessment,
    Rating,
    ReviewRecord,
    assess_progress,
    escalation_reasons,
    pillar_positions,
    trajectory_value,
    watched_triggers,
)
from models.review import assess as assess_plain

from .factories import (
    BASELINE_ON,
    PILLAR_SOURCES,
    make_evidence,
    make_plan,
    make_review,
)

# Baseline 60% on 2026-10-01, target at least 100% by 2026-11-10: one point a day.
DEADLINE = date(2026, 11, 10)
DAY_20 = BASELINE_ON + timedelta(days=20)  # trajectory expects 80%
LINE_PLAN = make_plan(target={"deadline": DEADLINE})


def plan_with_triggers(*kinds: TriggerKind) -> ActionPlan:
    return make_plan(
        target={"deadline": DEADLINE},
        triggers=[{"description": kind.value.replace("_", " "), "kind": kind.value}
                  for kind in kinds],
    )


def assess(
    evidence: Sequence[Evidence],
    *,
    plan: ActionPlan = LINE_PLAN,
    as_of: date = DAY_20,
    cadence: Cadence = Cadence.DAILY,
    last_review: ReviewRecord | None = None,
    previous_below_trajectory: bool = False,
) -> Assessment[Evidence]:
    return assess_progress(
        plan, evidence, as_of=as_of, cadence=cadence, last_review=last_review,
        previous_below_trajectory=previous_below_trajectory,
    )


def pillars_at(value: float, observed_on: date = DAY_20 - timedelta(days=1),
               **per_source: float) -> list[Evidence]:
    """The four pillars at `value`, with any pillar set differently by source name."""
    return [
        make_evidence(source, per_source.get(source, value), observed_on=observed_on)
        for source in PILLAR_SOURCES
    ]


# --- trajectory ---------------------------------------------------------------------------


def test_trajectory_is_a_straight_line_from_baseline_to_target() -> None:
    assert trajectory_value(LINE_PLAN, BASELINE_ON) == 60
    assert trajectory_value(LINE_PLAN, BASELINE_ON + timedelta(days=10)) == 70
    assert trajectory_value(LINE_PLAN, DAY_20) == 80
    assert trajectory_value(LINE_PLAN, DEADLINE) == 100


def test_trajectory_holds_at_the_baseline_before_it_and_at_the_target_after_the_deadline() -> None:
    assert trajectory_value(LINE_PLAN, BASELINE_ON - timedelta(days=5)) == 60
    assert trajectory_value(LINE_PLAN, DEADLINE + timedelta(days=30)) == 100


def test_trajectory_falls_for_an_at_most_target() -> None:
    plan = make_plan(baseline={"value": 40},
                     target={"direction": "at_most", "value": 0, "deadline": DEADLINE})
    assert trajectory_value(plan, DAY_20) == 20


@given(st.dates(min_value=date(2026, 9, 1), max_value=date(2027, 1, 31)),
       st.integers(min_value=1, max_value=30))
def test_trajectory_never_goes_backwards_or_beyond_its_ends(day: date, step: int) -> None:
    today, later = trajectory_value(LINE_PLAN, day), trajectory_value(
        LINE_PLAN, day + timedelta(days=step))
    assert 60 <= today <= later <= 100


# --- pillar positions ---------------------------------------------------------------------


def test_pillar_position_keeps_the_latest_fresh_measure_and_the_one_before() -> None:
    older = make_evidence("audits", 70, observed_on=date(2026, 10, 5))
    newer = make_evidence("audits", 80, observed_on=date(2026, 10, 19))
    note = make_evidence("audits", None, observed_on=date(2026, 10, 20))
    audits = next(p for p in pillar_positions([newer, note, older], DAY_20)
                  if p.pillar == Pillar.AUDITS)
    assert audits.latest == newer
    assert audits.previous == older
    assert audits.last_observed_on == date(2026, 10, 20)
    assert audits.fresh


def test_pillar_with_only_old_evidence_is_stale_and_has_no_latest_measure() -> None:
    old = make_evidence("feedback", 90, observed_on=date(2026, 10, 1))
    feedback = next(p for p in pillar_positions([old], date(2026, 11, 15))
                    if p.pillar == Pillar.FEEDBACK)
    assert feedback.latest is None
    assert not feedback.fresh
    assert feedback.last_observed_on == date(2026, 10, 1)


def test_pillar_positions_cover_the_four_pillars_only() -> None:
    positions = pillar_positions([make_evidence("rota_evidence", 90)], DAY_20)
    assert [p.pillar.value for p in positions] == list(PILLAR_SOURCES)


# --- rating -------------------------------------------------------------------------------


def test_rated_on_track_when_every_pillar_is_at_or_above_trajectory() -> None:
    result = assess(pillars_at(85))
    assert result.rating == Rating.ON_TRACK
    assert result.triggers_fired == ()
    assert result.reasons == ()
    assert result.measured_value == 85
    assert result.trajectory_value == 80
    assert result.days_to_deadline == 20
    assert not result.target_met


def test_rated_at_risk_when_slightly_below_trajectory() -> None:
    result = assess(pillars_at(75))
    assert result.rating == Rating.AT_RISK
    assert result.triggers_fired == (TriggerKind.BELOW_TRAJECTORY,)
    assert result.reasons == ("evidence shows 75%, trajectory expects 80% by 2026-10-21",)


def test_rated_off_track_when_more_than_ten_points_below_trajectory() -> None:
    result = assess(pillars_at(65))
    assert result.rating == Rating.OFF_TRACK
    assert TriggerKind.BELOW_TRAJECTORY in result.triggers_fired


def test_the_weakest_pillar_is_the_measure_a_review_reports() -> None:
    result = assess(pillars_at(90, feedback=72))
    assert result.measured_value == 72
    assert result.rating == Rating.AT_RISK


def test_rated_off_track_when_a_pillar_is_worse_than_the_baseline() -> None:
    result = assess(pillars_at(90, staff_practice=55),
                    plan=plan_with_triggers())
    assert result.rating == Rating.OFF_TRACK
    assert (
        "staff practice observation of 2026-10-20 shows 55%, worse than the baseline 60%"
        in result.reasons
    )


def test_rated_off_track_without_measured_evidence_after_the_grace_period() -> None:
    result = assess([], as_of=BASELINE_ON + timedelta(days=15))
    assert result.rating == Rating.OFF_TRACK
    assert result.rating.rag == "red"
    assert any(r.startswith("no evidence after 15 days") for r in result.reasons)


def test_no_evidence_in_the_first_two_weeks_is_not_yet_evidenced_never_on_track() -> None:
    for day in (0, 10, 13, 14):
        result = assess([], as_of=BASELINE_ON + timedelta(days=day))
        assert result.rating == Rating.NOT_EVIDENCED, day
        assert (result.rating.rag, result.rating.label) == ("amber", "not yet evidenced")
        assert result.triggers_fired == ()  # not held against it yet: no trigger fires
        assert result.reasons[-1].startswith("not yet evidenced: no measure recorded")


def test_evidence_without_a_measure_is_not_a_measurement() -> None:
    unmeasured = [make_evidence(source, None, observed_on=DAY_20 - timedelta(days=1))
                  for source in PILLAR_SOURCES]
    result = assess(unmeasured, as_of=BASELINE_ON + timedelta(days=10))
    assert result.measured_value is None
    assert result.rating == Rating.NOT_EVIDENCED


def test_rated_overdue_when_the_deadline_has_passed_without_the_target_met() -> None:
    as_of = DEADLINE + timedelta(days=5)
    result = assess(pillars_at(95, observed_on=as_of - timedelta(days=1)), as_of=as_of)
    assert result.rating == Rating.OVERDUE
    assert result.days_to_deadline == -5
    assert result.triggers_fired == (TriggerKind.BELOW_TRAJECTORY, TriggerKind.OVERDUE)
    assert "deadline 2026-11-10 passed 5 days ago without the target met" in result.reasons


def test_target_met_in_every_pillar_after_the_deadline_is_on_track_not_overdue() -> None:
    as_of = DEADLINE + timedelta(days=5)
    result = assess(pillars_at(100, observed_on=as_of - timedelta(days=1)), as_of=as_of)
    assert result.target_met
    assert result.rating == Rating.ON_TRACK


def test_target_is_met_only_when_every_pillar_meets_it() -> None:
    assert not assess(pillars_at(100, feedback=99)).target_met
    assert not assess(pillars_at(100)[:3]).target_met
    assert assess(pillars_at(100)).target_met


def test_rating_colours_follow_rag() -> None:
    assert [r.rag for r in Rating] == ["green", "amber", "amber", "red", "red"]
    assert [len(r.value) <= 12 for r in Rating] == [True] * 5  # review.rating is 12 wide


# --- triggers -----------------------------------------------------------------------------


def test_stale_pillar_fires_for_any_plan_after_the_grace_period() -> None:
    evidence = [e for e in pillars_at(85) if e.source.value != "feedback"]
    result = assess(evidence)
    assert result.triggers_fired == (TriggerKind.STALE_PILLAR,)
    assert result.reasons == ("no fresh evidence for feedback",)
    assert result.rating == Rating.AT_RISK


def test_delayed_review_fires_when_the_last_review_is_older_than_the_cadence_allows() -> None:
    result = assess(pillars_at(85), cadence=Cadence.WEEKLY,
                    last_review=make_review(date(2026, 10, 10)))
    assert result.triggers_fired == (TriggerKind.DELAYED_REVIEW,)
    assert result.reasons == ("review was due 2026-10-17, last held 2026-10-10",)
    assert result.rating == Rating.AT_RISK


def test_review_held_on_its_due_day_is_not_delayed() -> None:
    result = assess(pillars_at(85), cadence=Cadence.DAILY,
                    last_review=make_review(DAY_20 - timedelta(days=1)))
    assert result.triggers_fired == ()


def test_poor_feedback_fires_only_for_a_plan_watching_for_it() -> None:
    evidence = pillars_at(85, feedback=78)
    watched = assess(evidence, plan=plan_with_triggers(TriggerKind.POOR_FEEDBACK))
    assert TriggerKind.POOR_FEEDBACK in watched.triggers_fired
    assert "feedback of 2026-10-20 shows 78% (below trajectory)" in watched.reasons
    assert TriggerKind.POOR_FEEDBACK not in assess(evidence).triggers_fired


def test_repeated_gaps_fire_only_for_a_plan_watching_for_them() -> None:
    evidence = [
        *pillars_at(85, care_records=82),
        make_evidence("care_records", 84, observed_on=date(2026, 10, 12)),
    ]
    watched = assess(evidence, plan=plan_with_triggers(TriggerKind.REPEATED_GAPS))
    assert watched.triggers_fired == (TriggerKind.REPEATED_GAPS,)
    assert watched.reasons == (
        "gaps repeated: care record review of 2026-10-12 shows 84%, "
        "then care record review of 2026-10-20 shows 82%",
    )
    assert assess(evidence).triggers_fired == ()


def test_improving_care_records_are_not_repeated_gaps() -> None:
    evidence = [
        *pillars_at(85, care_records=90),
        make_evidence("care_records", 84, observed_on=date(2026, 10, 12)),
    ]
    assert assess(evidence, plan=plan_with_triggers(TriggerKind.REPEATED_GAPS)).triggers_fired == ()


def test_repeated_unmet_need_fires_below_trajectory_twice_for_a_plan_watching_for_it() -> None:
    plan = plan_with_triggers(TriggerKind.REPEATED_UNMET_NEED)
    result = assess(pillars_at(76), plan=plan, previous_below_trajectory=True)
    assert result.triggers_fired == (TriggerKind.BELOW_TRAJECTORY, TriggerKind.REPEATED_UNMET_NEED)
    assert result.rating == Rating.OFF_TRACK
    unwatched = assess(pillars_at(76), previous_below_trajectory=True)
    assert unwatched.triggers_fired == (TriggerKind.BELOW_TRAJECTORY,)
    assert unwatched.rating == Rating.AT_RISK


def test_repeated_unmet_need_needs_the_previous_review_below_trajectory_too() -> None:
    plan = plan_with_triggers(TriggerKind.REPEATED_UNMET_NEED)
    result = assess(pillars_at(76), plan=plan, previous_below_trajectory=False)
    assert TriggerKind.REPEATED_UNMET_NEED not in result.triggers_fired


def test_missing_outcome_evidence_fires_only_for_a_plan_watching_for_it() -> None:
    watched = assess([], plan=plan_with_triggers(TriggerKind.MISSING_OUTCOME_EVIDENCE))
    assert TriggerKind.MISSING_OUTCOME_EVIDENCE in watched.triggers_fired
    assert any(r.endswith("no measured outcome evidence in the last 28 days")
               for r in watched.reasons)
    other = assess([], plan=plan_with_triggers(TriggerKind.POOR_FEEDBACK))
    assert TriggerKind.MISSING_OUTCOME_EVIDENCE not in other.triggers_fired


def test_universal_triggers_are_the_ones_every_action_is_watched_for() -> None:
    assert {
        TriggerKind.OVERDUE, TriggerKind.DELAYED_REVIEW, TriggerKind.STALE_PILLAR,
        TriggerKind.BELOW_TRAJECTORY,
    } == UNIVERSAL_TRIGGERS


plan_triggers = st.lists(st.sampled_from(list(TriggerKind)), unique=True, max_size=4)
review_evidence = st.lists(
    st.builds(
        make_evidence,
        st.sampled_from([*PILLAR_SOURCES, "rota_evidence"]),
        st.none() | st.integers(0, 100).map(float),
        observed_on=st.dates(BASELINE_ON, date(2026, 11, 30)),
    ),
    max_size=10,
)


@given(plan_triggers, review_evidence, st.dates(date(2026, 10, 2), date(2026, 12, 15)),
       st.sampled_from(list(Cadence)), st.none() | st.dates(BASELINE_ON, date(2026, 12, 1)),
       st.booleans())
def test_triggers_fire_only_when_universal_or_named_in_the_plan_or_its_domain(
    kinds: list[TriggerKind], evidence: list[Evidence], as_of: date, cadence: Cadence,
    last_review_on: date | None, previous_below: bool,
) -> None:
    plan = plan_with_triggers(*kinds)
    result = assess(
        evidence, plan=plan, as_of=as_of, cadence=cadence,
        last_review=make_review(last_review_on) if last_review_on else None,
        previous_below_trajectory=previous_below,
    )
    assert set(result.triggers_fired) <= UNIVERSAL_TRIGGERS | watched_triggers(
        kinds, plan.risk_domain)
    assert len(result.reasons) >= len(result.triggers_fired)
    if result.triggers_fired:
        assert result.rating != Rating.ON_TRACK
    if TriggerKind.OVERDUE in result.triggers_fired:
        assert result.rating == Rating.OVERDUE


def test_first_review_is_delayed_when_none_was_held_after_reviews_started() -> None:
    result = assess_progress(LINE_PLAN, pillars_at(85), as_of=DAY_20, cadence=Cadence.WEEKLY,
                             last_review=None, reviews_start=DAY_20 - timedelta(days=10))
    assert TriggerKind.DELAYED_REVIEW in result.triggers_fired
    due = (DAY_20 - timedelta(days=3)).isoformat()
    assert f"first review was due by {due} and none was held" in result.reasons


def test_first_review_on_time_is_not_delayed() -> None:
    result = assess_progress(LINE_PLAN, pillars_at(85), as_of=DAY_20, cadence=Cadence.DAILY,
                             last_review=None, reviews_start=DAY_20 - timedelta(days=1))
    assert TriggerKind.DELAYED_REVIEW not in result.triggers_fired


@given(plan_triggers, review_evidence, st.dates(BASELINE_ON, date(2026, 12, 15)),
       st.sampled_from(list(Cadence)), st.none() | st.dates(BASELINE_ON, date(2026, 12, 1)),
       st.booleans())
def test_green_only_with_a_recorded_measure_at_or_above_the_trajectory(
    kinds: list[TriggerKind], evidence: list[Evidence], as_of: date, cadence: Cadence,
    last_review_on: date | None, previous_below: bool,
) -> None:
    plan = plan_with_triggers(*kinds)
    result = assess(
        evidence, plan=plan, as_of=as_of, cadence=cadence,
        last_review=make_review(last_review_on) if last_review_on else None,
        previous_below_trajectory=previous_below,
    )
    if result.rating.rag == "green":
        assert result.measured_value is not None
        assert result.measured_value >= trajectory_value(plan, as_of)
    if result.measured_value is None:
        assert result.rating != Rating.ON_TRACK


@given(plan_triggers, review_evidence, st.dates(date(2026, 10, 2), date(2026, 12, 15)),
       st.sampled_from(list(Cadence)), st.none() | st.dates(BASELINE_ON, date(2026, 12, 1)),
       st.booleans())
def test_a_plans_review_is_the_plain_assessment_of_the_triggers_it_watches(
    kinds: list[TriggerKind], evidence: list[Evidence], as_of: date, cadence: Cadence,
    last_review_on: date | None, previous_below: bool,
) -> None:
    plan = plan_with_triggers(*kinds)
    full = assess(
        evidence, plan=plan, as_of=as_of, cadence=cadence,
        last_review=make_review(last_review_on) if last_review_on else None,
        previous_below_trajectory=previous_below,
    )
    plain = assess_plain(
        plan.target, plan.baseline, watched_triggers(kinds, plan.risk_domain), evidence,
        as_of=as_of, cadence=cadence,
        last_review_on=last_review_on, previous_below_trajectory=previous_below,
    )
    assert plain == full


# --- escalation ---------------------------------------------------------------------------


def test_a_plan_without_detectable_triggers_watches_its_domains_seed_triggers() -> None:
    assert watched_triggers([], RiskDomain.MEDICINES) == {
        TriggerKind.REPEATED_GAPS, TriggerKind.DELAYED_REVIEW}
    assert watched_triggers([TriggerKind.MANUAL], RiskDomain.STAFFING) == {
        TriggerKind.REPEATED_UNMET_NEED, TriggerKind.POOR_FEEDBACK}
    assert watched_triggers([TriggerKind.POOR_FEEDBACK], RiskDomain.MEDICINES) == {
        TriggerKind.POOR_FEEDBACK}
    assert watched_triggers([], RiskDomain.LEADERSHIP_CONTROL) == frozenset()


def test_weak_progress_escalates_with_every_reason() -> None:
    result = assess(pillars_at(65))
    assert escalation_reasons(result, set(), LINE_PLAN.target, previous_measured=None) == \
        list(result.reasons)


def test_a_raised_trigger_the_plan_names_escalates_and_an_unnamed_one_does_not() -> None:
    plan = plan_with_triggers(TriggerKind.POOR_FEEDBACK)
    result = assess(pillars_at(85, feedback=78), plan=plan)  # feedback below trajectory
    assert result.rating == Rating.AT_RISK
    assert TriggerKind.POOR_FEEDBACK in result.triggers_fired
    reasons = escalation_reasons(result, {TriggerKind.POOR_FEEDBACK}, plan.target,
                                 previous_measured=None)
    assert [r.split(":")[0] for r in reasons] == ["trigger raised, poor feedback"]
    assert escalation_reasons(result, {TriggerKind.REPEATED_GAPS}, plan.target,
                              previous_measured=None) == []


def test_no_improvement_below_trajectory_escalates_and_improvement_does_not() -> None:
    result = assess(pillars_at(76))  # trajectory 80: at risk
    assert result.rating == Rating.AT_RISK
    target = LINE_PLAN.target
    assert escalation_reasons(result, set(), target, previous_measured=77) == [
        "no improvement since the last review (77%, now 76%) while below the trajectory "
        "of 80%"]
    assert escalation_reasons(result, set(), target, previous_measured=76)  # flat
    assert escalation_reasons(result, set(), target, previous_measured=74) == []
    assert escalation_reasons(result, set(), target, previous_measured=None) == []
