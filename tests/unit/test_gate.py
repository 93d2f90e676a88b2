"""The triangulation gate: closure only when all four pillars agree, sustained, with nothing
open. A verdict always carries every reason a person can act on."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from models.action import ActionPlan
from models.evidence import TRIANGULATION_PILLARS, Evidence, Pillar
from models.gate import CONSECUTIVE_PERIODS, GateVerdict, triangulation_gate
from models.review import DEFAULT_FRESHNESS_DAYS, ReviewRecord

from .factories import (
    AUDITOR,
    BASELINE_ON,
    LEAD,
    PILLAR_SOURCES,
    TODAY,
    full_evidence,
    make_evidence,
    make_plan,
    make_review,
    met_reviews,
)

CUTOFF = TODAY - timedelta(days=DEFAULT_FRESHNESS_DAYS)  # 2026-10-29
PLAN = make_plan()  # baseline 60%, target at least 100%
AT_MOST_PLAN = make_plan(
    baseline={"value": 40}, target={"direction": "at_most", "value": 10,
                                    "measure": "Shifts with unmet need"},
)


def gate(
    plan: ActionPlan = PLAN,
    evidence: Sequence[Evidence] | None = None,
    reviews: Sequence[ReviewRecord] | None = None,
    **kwargs: object,
) -> GateVerdict:
    return triangulation_gate(
        plan,
        full_evidence() if evidence is None else evidence,
        met_reviews() if reviews is None else reviews,
        as_of=TODAY,
        **kwargs,  # type: ignore[arg-type]
    )


def without(source: str, evidence: list[Evidence] | None = None) -> list[Evidence]:
    return [e for e in (evidence or full_evidence()) if e.source.value != source]


# --- examples -----------------------------------------------------------------------------


def test_closure_allowed_when_all_four_pillars_agree_and_improvement_is_sustained() -> None:
    verdict = gate()
    assert verdict.passed
    assert verdict.reasons == ()
    assert verdict.as_of == TODAY


def test_closure_refused_without_feedback_evidence() -> None:
    verdict = gate(evidence=without("feedback"))
    assert not verdict.passed
    assert verdict.reasons == ("no feedback evidence since 2026-10-29",)


def test_closure_refused_when_an_audit_falls_short_of_the_target() -> None:
    evidence = [*without("audits"), make_evidence("audits", 85, observed_on=date(2026, 11, 20))]
    assert gate(evidence=evidence).reasons == (
        "audit of 2026-11-20 shows 85%, target at least 100%",
    )


def test_closure_refused_when_a_pillar_shows_a_decline_from_the_baseline() -> None:
    evidence = [*without("feedback"), make_evidence("feedback", 50, observed_on=date(2026, 11, 20))]
    assert gate(evidence=evidence).reasons == (
        "feedback of 2026-11-20 shows 50%, a decline from the baseline 60%",
    )


def test_closure_refused_when_a_pillar_has_only_stale_evidence() -> None:
    stale = make_evidence("feedback", 100, observed_on=CUTOFF - timedelta(days=1))
    assert gate(evidence=[*without("feedback"), stale]).reasons == (
        "no feedback evidence since 2026-10-29",
    )


def test_evidence_observed_on_the_first_day_of_the_freshness_window_counts() -> None:
    edge = make_evidence("feedback", 100, observed_on=CUTOFF)
    assert gate(evidence=[*without("feedback"), edge]).passed


def test_closure_refused_when_fresh_evidence_for_a_pillar_is_unmeasured() -> None:
    note = make_evidence("staff_practice", None, observed_on=TODAY - timedelta(days=1))
    old = make_evidence("staff_practice", 100, observed_on=CUTOFF - timedelta(days=5))
    assert gate(evidence=[*without("staff_practice"), old, note]).reasons == (
        "staff practice evidence since 2026-10-29 has no measured value",
    )


def test_every_missing_pillar_gets_its_own_reason() -> None:
    verdict = gate(evidence=[])
    assert verdict.reasons == tuple(
        f"no {p.label} evidence since 2026-10-29" for p in TRIANGULATION_PILLARS
    )


def test_supporting_evidence_does_not_stand_in_for_a_pillar() -> None:
    evidence = [
        *without("feedback"),
        make_evidence("rota_evidence", 100),
        make_evidence("governance_minutes", 100),
        make_evidence("incident_trends", 100),
    ]
    assert gate(evidence=evidence).reasons == ("no feedback evidence since 2026-10-29",)


def test_safeguarding_log_review_counts_as_care_records_evidence() -> None:
    evidence = [*without("care_records"), make_evidence("safeguarding_logs", 100)]
    assert gate(evidence=evidence).passed


def test_the_latest_measure_in_a_pillar_is_what_counts() -> None:
    earlier_good = make_evidence("audits", 100, observed_on=date(2026, 11, 10))
    later_short = make_evidence("audits", 90, observed_on=date(2026, 11, 20))
    evidence = [*without("audits"), later_short, earlier_good]
    assert gate(evidence=evidence).reasons == (
        "audit of 2026-11-20 shows 90%, target at least 100%",
    )
    recovered = make_evidence("audits", 100, observed_on=date(2026, 11, 24))
    assert gate(evidence=[*evidence, recovered]).passed


def test_evidence_dated_after_the_gate_date_is_ignored() -> None:
    future_feedback = make_evidence("feedback", 100, observed_on=TODAY + timedelta(days=1))
    assert gate(evidence=[*without("feedback"), future_feedback]).reasons == (
        "no feedback evidence since 2026-10-29",
    )


def test_a_shorter_freshness_window_moves_the_cutoff() -> None:
    evidence = full_evidence(observed_on=TODAY - timedelta(days=20))
    verdict = gate(evidence=evidence, freshness_days=14)
    assert "no audits evidence since 2026-11-12" in verdict.reasons
    assert len(verdict.reasons) == 4


def test_at_most_target_reasons_use_its_direction() -> None:
    evidence = [
        *without("audits", full_evidence(5)),
        make_evidence("audits", 12, observed_on=date(2026, 11, 20)),
    ]
    assert gate(AT_MOST_PLAN, evidence).reasons == (
        "audit of 2026-11-20 shows 12%, target at most 10%",
    )


def test_at_most_target_counts_a_rise_as_a_decline() -> None:
    evidence = [
        *without("feedback", full_evidence(5)),
        make_evidence("feedback", 55, observed_on=date(2026, 11, 20)),
    ]
    assert gate(AT_MOST_PLAN, evidence).reasons == (
        "feedback of 2026-11-20 shows 55%, a decline from the baseline 40%",
    )


def test_closure_refused_with_only_one_review_period_meeting_the_target() -> None:
    assert gate(reviews=met_reviews(1)).reasons == (
        "target met in 1 of the last 2 review periods (1 held); 2 consecutive are needed",
    )


def test_closure_refused_with_no_reviews_held() -> None:
    assert gate(reviews=[]).reasons == (
        "target met in 0 of the last 2 review periods (0 held); 2 consecutive are needed",
    )


def test_closure_refused_when_the_latest_review_missed_the_target() -> None:
    reviews = [*met_reviews(3, last=TODAY - timedelta(days=8)),
               make_review(TODAY - timedelta(days=1), measured_value=90, target_met=False)]
    assert gate(reviews=reviews).reasons == (
        "target met in 1 of the last 2 review periods (2 held); 2 consecutive are needed",
    )


def test_two_met_reviews_separated_by_a_miss_are_not_consecutive() -> None:
    reviews = [
        make_review(TODAY - timedelta(days=15)),
        make_review(TODAY - timedelta(days=8), target_met=False),
        make_review(TODAY - timedelta(days=1)),
    ]
    assert not gate(reviews=reviews).passed


def test_reviews_are_taken_in_date_order_whatever_order_they_arrive_in() -> None:
    reviews = [
        make_review(TODAY - timedelta(days=1)),
        make_review(TODAY - timedelta(days=8)),
        make_review(TODAY - timedelta(days=15), target_met=False),
    ]
    assert gate(reviews=reviews).passed


def test_reviews_held_after_the_gate_date_do_not_count() -> None:
    later = [make_review(TODAY + timedelta(days=1)), make_review(TODAY + timedelta(days=8))]
    verdict = gate(reviews=[*met_reviews(1), *later])
    assert not verdict.passed
    assert verdict.reasons == (
        "target met in 1 of the last 2 review periods (1 held); 2 consecutive are needed",
    )


def test_closure_refused_with_an_open_escalation() -> None:
    verdict = gate(open_escalations=["daily senior review added 2026-11-18"])
    assert verdict.reasons == ("escalation still open: daily senior review added 2026-11-18",)


def test_closure_refused_with_an_open_trigger() -> None:
    verdict = gate(open_triggers=["staff uncertainty about escalation"])
    assert verdict.reasons == ("trigger still open: staff uncertainty about escalation",)


def test_closure_refused_without_interim_controls_recorded() -> None:
    verdict = gate(make_plan(interim_controls=[]))
    assert verdict.reasons == ("no interim controls are recorded",)


def test_closure_refused_when_the_accountable_lead_recorded_all_the_evidence() -> None:
    verdict = gate(evidence=full_evidence(recorded_by=LEAD))
    assert verdict.reasons == (
        "all recent evidence was recorded by the accountable lead (sg.lead@rose.example); "
        "someone else must evidence at least one pillar",
    )


def test_lead_alone_is_recognised_whatever_the_case_of_their_email() -> None:
    verdict = gate(evidence=full_evidence(recorded_by="  SG.Lead@Rose.Example "))
    assert not verdict.passed


def test_one_pillar_evidenced_by_someone_else_is_enough_to_share_the_evidence() -> None:
    evidence = [*without("audits", full_evidence(recorded_by=LEAD)),
                make_evidence("audits", 100, recorded_by=AUDITOR)]
    assert gate(evidence=evidence).passed


def test_supporting_evidence_from_someone_else_does_not_lift_the_lead_alone_refusal() -> None:
    evidence = [*full_evidence(recorded_by=LEAD),
                make_evidence("governance_minutes", None, recorded_by=AUDITOR)]
    assert gate(evidence=evidence).reasons == (
        "all recent evidence was recorded by the accountable lead (sg.lead@rose.example); "
        "someone else must evidence at least one pillar",
    )


def test_every_reason_is_given_at_once() -> None:
    verdict = gate(
        make_plan(interim_controls=[]),
        evidence=[make_evidence("audits", 85, observed_on=date(2026, 11, 20), recorded_by=LEAD)],
        reviews=[],
        open_escalations=["daily senior review"],
        open_triggers=["delayed review"],
    )
    assert verdict.reasons == (
        "no care records evidence since 2026-10-29",
        "audit of 2026-11-20 shows 85%, target at least 100%",
        "no feedback evidence since 2026-10-29",
        "no staff practice evidence since 2026-10-29",
        "target met in 0 of the last 2 review periods (0 held); 2 consecutive are needed",
        "escalation still open: daily senior review",
        "trigger still open: delayed review",
        "no interim controls are recorded",
        "all recent evidence was recorded by the accountable lead (sg.lead@rose.example); "
        "someone else must evidence at least one pillar",
    )


# --- properties ---------------------------------------------------------------------------

plans = st.sampled_from([PLAN, AT_MOST_PLAN])
sources = st.sampled_from(
    [*PILLAR_SOURCES, "safeguarding_logs", "medicines_records", "incident_trends",
     "rota_evidence", "governance_minutes"]
)
recorders = st.sampled_from([LEAD, AUDITOR, " SG.LEAD@rose.example", "ni@provider.example"])
values = st.none() | st.integers(min_value=0, max_value=100).map(float)
days = st.dates(min_value=BASELINE_ON, max_value=TODAY + timedelta(days=7))


@st.composite
def evidence_items(draw: st.DrawFn) -> Evidence:
    return make_evidence(
        draw(sources), draw(values), observed_on=draw(days), recorded_by=draw(recorders)
    )


@st.composite
def review_records(draw: st.DrawFn) -> ReviewRecord:
    return make_review(draw(days), target_met=draw(st.booleans()))


open_items = st.lists(st.sampled_from(["daily senior review", "delayed review"]), max_size=2)


@st.composite
def any_gate_input(draw: st.DrawFn) -> tuple[ActionPlan, list[Evidence], list[ReviewRecord],
                                               list[str], list[str]]:
    plan = draw(plans)
    if draw(st.booleans()):
        plan = plan.model_copy(update={"interim_controls": ()})
    return (
        plan,
        draw(st.lists(evidence_items(), max_size=12)),
        draw(st.lists(review_records(), max_size=5)),
        draw(open_items),
        draw(open_items),
    )


def run(inputs: tuple[ActionPlan, list[Evidence], list[ReviewRecord], list[str], list[str]]
        ) -> GateVerdict:
    plan, evidence, reviews, escalations, triggers = inputs
    return triangulation_gate(
        plan, evidence, reviews, as_of=TODAY, open_escalations=escalations,
        open_triggers=triggers,
    )


def fresh_measures(evidence: Sequence[Evidence], pillar: Pillar) -> list[Evidence]:
    return [
        e for e in evidence
        if e.pillar == pillar and e.value is not None and CUTOFF <= e.observed_on <= TODAY
    ]


@given(any_gate_input())
def test_gate_never_passes_when_a_pillar_lacks_fresh_measured_evidence_meeting_the_target(
    inputs: tuple[ActionPlan, list[Evidence], list[ReviewRecord], list[str], list[str]],
) -> None:
    plan, evidence = inputs[0], inputs[1]
    if run(inputs).passed:
        for pillar in TRIANGULATION_PILLARS:
            items = fresh_measures(evidence, pillar)
            assert any(plan.target.met_by(e.value) for e in items if e.value is not None)


@given(any_gate_input())
def test_gate_never_passes_without_two_consecutive_reviews_meeting_the_target(
    inputs: tuple[ActionPlan, list[Evidence], list[ReviewRecord], list[str], list[str]],
) -> None:
    reviews = sorted((r for r in inputs[2] if r.as_of <= TODAY), key=lambda r: r.as_of)
    if run(inputs).passed:
        assert len(reviews) >= CONSECUTIVE_PERIODS
        assert all(r.target_met for r in reviews[-CONSECUTIVE_PERIODS:])


@given(any_gate_input())
def test_gate_never_passes_with_an_open_escalation_or_trigger(
    inputs: tuple[ActionPlan, list[Evidence], list[ReviewRecord], list[str], list[str]],
) -> None:
    if inputs[3] or inputs[4]:
        assert not run(inputs).passed


_DAY = r"\d{4}-\d{2}-\d{2}"
_PILLAR = r"(care records|audits|feedback|staff practice)"
_NOUN = (
    r"(care record review|audit|feedback|staff practice observation"
    r"|safeguarding log review|medicines record review)"
)
#: Every reason names what is missing or short, with dates and figures a person can check.
SPECIFIC_REASONS = (
    rf"no {_PILLAR} evidence since {_DAY}",
    rf"{_PILLAR} evidence since {_DAY} has no measured value",
    rf"{_NOUN} of {_DAY} shows \d+%, target at (least|most) \d+%",
    rf"{_NOUN} of {_DAY} shows \d+%, a decline from the baseline \d+%",
    r"target met in [0-2] of the last 2 review periods \([0-2] held\); 2 consecutive are needed",
    r"escalation still open: .+",
    r"trigger still open: .+",
    r"no interim controls are recorded",
    r"all recent evidence was recorded by the accountable lead \(sg\.lead@rose\.example\); "
    r"someone else must evidence at least one pillar",
)


@given(any_gate_input())
def test_every_refusal_has_at_least_one_specific_reason(
    inputs: tuple[ActionPlan, list[Evidence], list[ReviewRecord], list[str], list[str]],
) -> None:
    verdict = run(inputs)
    assert verdict.passed == (not verdict.reasons)
    for reason in verdict.reasons:
        assert any(re.fullmatch(pattern, reason) for pattern in SPECIFIC_REASONS), reason


@st.composite
def passing_gate_input(draw: st.DrawFn) -> tuple[ActionPlan, list[Evidence], list[ReviewRecord]]:
    """Everything present: a fresh measure meeting the target latest in every pillar,
    at least one item from someone other than the lead, two met reviews last."""
    plan = draw(plans)
    target = plan.target.value
    good = (st.integers(min_value=int(target), max_value=100) if plan.target.direction ==
            "at_least" else st.integers(min_value=0, max_value=int(target))).map(float)
    fresh_days = st.dates(min_value=CUTOFF, max_value=TODAY)
    evidence: list[Evidence] = []
    for source in PILLAR_SOURCES:
        # older history of any value, then the latest measure meeting the target
        for _ in range(draw(st.integers(0, 2))):
            evidence.append(make_evidence(
                source, draw(values), recorded_by=draw(recorders),
                observed_on=draw(st.dates(BASELINE_ON, CUTOFF - timedelta(days=1))),
            ))
        evidence.append(make_evidence(
            source, draw(good), observed_on=draw(fresh_days), recorded_by=draw(recorders)
        ))
    evidence += draw(st.lists(
        st.builds(make_evidence, st.sampled_from(["rota_evidence", "governance_minutes"]),
                  values, observed_on=days, recorded_by=recorders), max_size=3))
    # someone other than the lead evidences at least one pillar
    independent = draw(st.sampled_from(PILLAR_SOURCES))
    evidence.append(make_evidence(independent, draw(good), observed_on=TODAY - timedelta(days=1),
                                  recorded_by=AUDITOR))
    history = draw(st.lists(st.builds(make_review, st.dates(BASELINE_ON, date(2026, 11, 1)),
                                      target_met=st.booleans()), max_size=4))
    reviews = [*history, *met_reviews(2, last=draw(st.dates(date(2026, 11, 10), TODAY)))]
    return plan, draw(st.permutations(evidence)), draw(st.permutations(reviews))


@given(passing_gate_input())
def test_gate_passes_when_everything_is_present(
    inputs: tuple[ActionPlan, list[Evidence], list[ReviewRecord]],
) -> None:
    plan, evidence, reviews = inputs
    verdict = triangulation_gate(plan, evidence, reviews, as_of=TODAY)
    assert verdict.passed, verdict.reasons


@given(passing_gate_input(), st.sampled_from(PILLAR_SOURCES),
       st.sampled_from(["missing", "stale", "short", "unmeasured"]))
def test_breaking_any_one_pillar_refuses_closure_and_names_that_pillar(
    inputs: tuple[ActionPlan, list[Evidence], list[ReviewRecord]], source: str, how: str,
) -> None:
    plan, evidence, reviews = inputs
    pillar = Pillar(source)
    short = plan.target.value - 1 if plan.target.direction == "at_least" else plan.target.value + 1
    replacement = {
        "missing": [],
        "stale": [make_evidence(source, 100 if plan.target.direction == "at_least" else 0,
                                observed_on=CUTOFF - timedelta(days=1))],
        "short": [make_evidence(source, short, observed_on=TODAY)],
        "unmeasured": [make_evidence(source, None, observed_on=TODAY)],
    }[how]
    verdict = triangulation_gate(plan, [*without(source, evidence), *replacement],
                                 reviews, as_of=TODAY)
    assert not verdict.passed
    if how in ("missing", "stale"):
        assert f"no {pillar.label} evidence since 2026-10-29" in verdict.reasons
    elif how == "unmeasured":
        assert f"{pillar.label} evidence since 2026-10-29 has no measured value" in (
            verdict.reasons
        )
    else:
        assert any(r.endswith(f"target {plan.target.wording}") for r in verdict.reasons)


@given(passing_gate_input(), st.sampled_from(["one_review", "last_missed", "escalation",
                                               "trigger", "no_controls", "lead_only"]))
def test_taking_away_any_other_condition_refuses_closure(
    inputs: tuple[ActionPlan, list[Evidence], list[ReviewRecord]], broken: str,
) -> None:
    plan, evidence, reviews = inputs
    escalations: list[str] = []
    triggers: list[str] = []
    ordered = sorted(reviews, key=lambda r: r.as_of)
    if broken == "one_review":
        reviews = ordered[-1:]
    elif broken == "last_missed":
        reviews = [*ordered[:-1], ordered[-1].model_copy(update={"target_met": False})]
    elif broken == "escalation":
        escalations = ["daily senior review"]
    elif broken == "trigger":
        triggers = ["unclear rationale"]
    elif broken == "no_controls":
        plan = plan.model_copy(update={"interim_controls": ()})
    else:
        evidence = [e.model_copy(update={"recorded_by": LEAD}) for e in evidence]
    verdict = triangulation_gate(plan, evidence, reviews, as_of=TODAY,
                                 open_escalations=escalations, open_triggers=triggers)
    assert not verdict.passed
    assert len(verdict.reasons) == 1


# --- a reopened action closes on a fresh path -----------------------------------------------


def test_a_reopened_action_counts_only_evidence_observed_since_it_was_reopened() -> None:
    reopened = TODAY - timedelta(days=1)
    evidence = full_evidence()
    assert all(e.observed_on < reopened for e in evidence)  # what closed it once
    verdict = gate(evidence=evidence, reopened_on=reopened)
    assert not verdict.passed
    assert {r for r in verdict.reasons if r.startswith("no ")} == {
        f"no {label} evidence since the action was reopened on {reopened.isoformat()}"
        for label in ("care records", "audits", "feedback", "staff practice")}


def test_a_reopened_action_passes_on_evidence_observed_from_the_day_it_was_reopened() -> None:
    reopened = TODAY - timedelta(days=1)
    again = [e.model_copy(update={"observed_on": reopened}) for e in full_evidence()]
    assert gate(evidence=[*full_evidence(), *again], reopened_on=reopened).passed


def test_a_reopening_older_than_the_freshness_window_keeps_the_window_wording() -> None:
    verdict = gate(evidence=without("feedback"), reopened_on=CUTOFF - timedelta(days=30))
    assert verdict.reasons == ("no feedback evidence since 2026-10-29",)
