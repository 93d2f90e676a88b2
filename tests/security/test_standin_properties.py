"""Properties of stand-in reviewers, on a real SQLite database.

No sequence of absences, reassignments (by anyone, to anyone), changes of role in the
directory and sign-off decisions (by anyone, with any code) lets the accountable lead or
a non-senior sign, or lets a sign-off be applied by anyone but the person the request is
assigned to at that moment (the named reviewer, or the stand-in it was handed to).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from models.errors import DomainError
from models.people import SENIOR_ROLES, Role, normalise_email
from models.signoff import SignoffKind, Submission
from recovery.adapters import db
from recovery.adapters import repository as repo
from recovery.adapters.mail import outgoing
from recovery.adapters.tables import DecisionRow, OutboxRow
from recovery.application import absences, signoff_codes, signoffs, standins
from tests.security.conftest import LEAD, MANAGER, REVIEWER
from tests.security.driver import CODE_RE, GOOD_RATIONALE, Driver, fresh_world, other_code

PROVIDER_LEAD = "provider.lead@harbourcare.example"
JUNIOR = "team.leader@rose.example"
OTHER_MANAGER = "rm@quay.example"
PEOPLE = [REVIEWER, PROVIDER_LEAD, MANAGER, LEAD, JUNIOR, OTHER_MANAGER]
PILLARS = ("care_records", "audits", "feedback", "staff_practice")
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def live_code(session: Session, ref: str, request: Any) -> str:
    """The code of the request as it stands (its first email, or the latest reissue or
    reassignment, keyed by the code's tag); a request held for an away reviewer has none
    (any code is then as good as a guess)."""
    if not request.code_hash:
        return "000000"
    base = f"signoff:{ref}:{request.kind}:{request.attempt}"
    for key in (f"{base}:{signoff_codes.code_tag(request)}", base):
        row = session.exec(select(OutboxRow).where(OutboxRow.dedupe_key == key)).first()
        if row is not None:
            found = CODE_RE.search(outgoing(row)[1])
            assert found
            return found.group(1)
    raise AssertionError(f"no email for {base}")


@dataclass
class StandinDriver(Driver):
    applied_by_assignee: int = 0

    def away(self, who: str, start: int, length: int) -> None:
        self.attempt(f"away {who} +{start} for {length}", lambda s: absences.record_absence(
            s, who, starts_on=self.day + timedelta(days=start),
            ends_on=self.day + timedelta(days=start + length), by=who, today=self.day).id)

    def reassign(self, to: str, by: str) -> None:
        with db.unit_of_work() as session:  # the run has asked, as it does before waiting
            kind = standins.WAITING_KIND.get(repo.get_action(session, self.ref).status)
            if kind is not None:
                signoff_codes.open_signoff(session, self.ref, kind, flow_run_id=None,
                                           now=self.now())
        self.attempt(f"reassign to {to} by {by}", lambda s: standins.reassign(
            s, self.ref, to=to, by=by, reason="The reviewer is away this week",
            now=self.now(), today=self.day).standin)

    def demote(self, who: str) -> None:
        """The directory changes under a waiting request (someone moves to a junior role)."""
        with db.unit_of_work() as session:
            person = repo.get_person(session, who, field="who")
            person.role = Role.TEAM_LEADER.value
            session.add(person)
        self.log.append(f"demote {who}")

    def sign(self, kind: SignoffKind, signer: str, right_code: bool, decision: str) -> None:
        with db.unit_of_work() as session:
            try:
                wait = signoff_codes.open_signoff(session, self.ref, kind, flow_run_id=None,
                                             now=self.now())
            except DomainError as exc:
                self.log.append(f"open {kind.value}: {exc}")
                return
            row = repo.get_action(session, self.ref)
            request = signoff_codes.current_request(session, row.id or 0, kind)
            assert request is not None
            code = live_code(session, self.ref, request)
            assignee = request.reviewer_email
            lead = repo.person_by_id(session, row.accountable_lead_id).email
        if signer == "assignee":  # whoever holds the request now, as they would sign
            signer = assignee
        submission = Submission(reviewer_email=signer,
                                code=code if right_code else other_code(code),
                                decision=decision, rationale=GOOD_RATIONALE)
        try:
            with db.unit_of_work() as session:
                outcome = signoffs.apply_signoff(session, self.ref, kind,
                                                 pause_key=wait.pause_key,
                                                 submission=submission, now=self.now())
        except DomainError as exc:
            self.log.append(f"{kind.value} sign-off by {signer}: {exc}")
            return
        self.log.append(f"{kind.value} sign-off by {signer} ({right_code}, {decision}): "
                        f"{outcome.applied} {outcome.reasons}")
        if outcome.applied:
            assert normalise_email(signer) == assignee, self.log
            assert normalise_email(signer) != lead, self.log
            with db.unit_of_work() as session:
                person = repo.get_person(session, signer, field="signer")
                assert Role(person.role) in SENIOR_ROLES, self.log
            self.applied_by_assignee += 1


@dataclass(frozen=True)
class Op:
    name: str
    args: tuple[Any, ...] = ()

    def apply(self, driver: StandinDriver) -> None:
        getattr(driver, self.name)(*self.args)


def ops(name: str, *strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[Op]:
    return st.tuples(*strategies).map(lambda args: Op(name, tuple(args)))


people = st.sampled_from(PEOPLE)
anything = st.one_of(
    ops("away", st.sampled_from([REVIEWER, REVIEWER, PROVIDER_LEAD, MANAGER]),
        st.integers(0, 2), st.integers(0, 5)),
    ops("reassign", people, st.sampled_from([REVIEWER, PROVIDER_LEAD, MANAGER, LEAD, JUNIOR])),
    ops("sign", st.sampled_from([SignoffKind.PLAN, SignoffKind.CLOSURE]),
        st.sampled_from([*PEOPLE, "assignee", "assignee", "assignee"]),
        st.booleans(), st.sampled_from(["approve", "approve", "reject"])),
    ops("advance", st.integers(1, 3)),
    ops("demote", st.sampled_from([PROVIDER_LEAD, MANAGER, REVIEWER])),
    ops("evidence", st.just(PILLARS), st.just(100.0), st.just(MANAGER), st.just(0)),
    ops("daily"),
    ops("request_closure", st.just(LEAD),
        st.just("All four pillars at 100% and two reviews on target")),
    ops("gate"),
)


def check(driver: StandinDriver) -> None:
    """Every decision stored was made by a senior who is not the lead (at the time: the
    sign op asserts it as it is applied), on a request then assigned to them."""
    with db.unit_of_work() as session:
        row = repo.get_action(session, driver.ref)
        lead = repo.person_by_id(session, row.accountable_lead_id).email
        for decision in session.exec(select(DecisionRow).where(
                DecisionRow.action_id == row.id)):
            assert normalise_email(decision.reviewer_email) != lead, driver.log


@SETTINGS
@given(sequence=st.lists(anything, max_size=18), first=st.booleans())
def test_no_sequence_lets_the_lead_a_junior_or_anyone_but_the_assignee_sign(
    world_template: Path, sequence: list[Op], first: bool
) -> None:
    with fresh_world(world_template):
        driver = StandinDriver()
        driver.submit()
        start = [Op("away", (REVIEWER, 0, 3)), Op("reassign", (PROVIDER_LEAD, REVIEWER))] \
            if first else []
        # each sequence ends with the assignee's own answer, so many do decide
        finish = [Op("sign", (SignoffKind.PLAN, "assignee", True, "approve")),
                  Op("sign", (SignoffKind.CLOSURE, "assignee", True, "approve"))]
        for op in [*start, *sequence, *finish]:
            op.apply(driver)
            check(driver)
        event(f"applied {min(driver.applied_by_assignee, 2)}")


def test_a_standin_signs_and_the_named_reviewer_no_longer_can(world_template: Path) -> None:
    """The property above is not vacuous: the stand-in's decision is applied."""
    with fresh_world(world_template):
        driver = StandinDriver()
        driver.submit()
        driver.away(REVIEWER, 0, 3)
        driver.reassign(PROVIDER_LEAD, REVIEWER)
        driver.sign(SignoffKind.PLAN, REVIEWER, True, "approve")
        assert driver.applied_by_assignee == 0, driver.log
        driver.sign(SignoffKind.PLAN, PROVIDER_LEAD, True, "approve")
        assert driver.applied_by_assignee == 1, driver.log
        assert driver.status().value == "in_recovery"


def test_a_signoff_asked_of_an_away_reviewer_waits_with_no_code(world_template: Path) -> None:
    """Nobody away is asked automatically: no code goes out, the seniors are told, nobody
    can sign until a stand-in is named."""
    with fresh_world(world_template):
        driver = StandinDriver()
        driver.away(REVIEWER, 0, 3)
        driver.submit()
        driver.sign(SignoffKind.PLAN, REVIEWER, True, "approve")
        driver.sign(SignoffKind.PLAN, "assignee", True, "approve")
        assert driver.applied_by_assignee == 0, driver.log
        with db.unit_of_work() as session:
            keys = [r.dedupe_key for r in session.exec(select(OutboxRow))]
        assert not any(k.startswith("signoff:ROSE-SG-001:plan") for k in keys), keys
        assert any(k.startswith("signoff.held:ROSE-SG-001:plan:1") for k in keys), keys
        driver.reassign(PROVIDER_LEAD, REVIEWER)
        driver.sign(SignoffKind.PLAN, PROVIDER_LEAD, True, "approve")
        assert driver.applied_by_assignee == 1, driver.log
