"""The gate snapshot a closure decision is bound to (models/gate.py: gate_snapshot,
verdict_changed): pure, no I/O."""

from __future__ import annotations

from datetime import timedelta

from models.gate import gate_snapshot, triangulation_gate, verdict_changed

from .factories import TODAY, full_evidence, make_evidence, make_plan, met_reviews

PLAN = make_plan()


def numbered(evidence: list, start: int = 1) -> list:  # type: ignore[type-arg]
    return [e.model_copy(update={"id": start + i}) for i, e in enumerate(evidence)]


def snapshot(evidence: list, reviews: list | None = None) -> tuple[bool, str]:  # type: ignore[type-arg]
    held = list(enumerate(reviews if reviews is not None else met_reviews(), start=1))
    verdict = triangulation_gate(PLAN, evidence, [r for _, r in held], as_of=TODAY)
    return verdict.passed, gate_snapshot(verdict, evidence, held)


def test_the_same_facts_give_the_same_reference() -> None:
    evidence = numbered(full_evidence())
    assert snapshot(evidence) == snapshot(list(reversed(evidence)))
    passed, ref = snapshot(evidence)
    assert passed and ref.startswith("gs-") and len(ref) == 15


def test_a_new_item_an_edited_value_or_a_new_review_gives_another_reference() -> None:
    evidence = numbered(full_evidence())
    _, before = snapshot(evidence)
    extra = make_evidence("audits", 100, id=99)
    assert snapshot([*evidence, extra])[1] != before
    edited = [evidence[0].model_copy(update={"value": 99.5}), *evidence[1:]]
    assert snapshot(edited)[1] != before
    assert snapshot(evidence, met_reviews(3))[1] != before


def test_evidence_outside_the_window_is_not_counted() -> None:
    evidence = numbered(full_evidence())
    stale = make_evidence("audits", 100, observed_on=TODAY - timedelta(days=60), id=50)
    later = make_evidence("audits", 100, observed_on=TODAY + timedelta(days=1), id=51)
    assert snapshot([*evidence, stale, later])[1] == snapshot(evidence)[1]


def test_a_below_target_audit_changes_the_verdict() -> None:
    evidence = numbered(full_evidence())
    passed, _ = snapshot(evidence)
    low = make_evidence("audits", 70, observed_on=TODAY - timedelta(days=1), id=77)
    now = triangulation_gate(PLAN, [*evidence, low], met_reviews(), as_of=TODAY)
    assert verdict_changed(passed, now)
    assert not now.passed and any("audits" in r.lower() or "audit" in r for r in now.reasons)


def test_evidence_that_keeps_the_verdict_does_not_change_it() -> None:
    evidence = numbered(full_evidence())
    passed, _ = snapshot(evidence)
    good = make_evidence("feedback", 100, observed_on=TODAY - timedelta(days=1), id=78)
    now = triangulation_gate(PLAN, [*evidence, good], met_reviews(), as_of=TODAY)
    assert not verdict_changed(passed, now)
