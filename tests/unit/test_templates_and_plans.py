"""Built-in templates from the seed's examples, and reading plan and people files."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from models.action import Direction, RiskDomain, TriggerKind
from models.catalogue import builtin_framework
from models.errors import InvalidInput
from models.people import Role
from models.planfile import MAX_FILE_BYTES, load_yaml, parse_people, parse_plan
from models.templates import builtin_templates, get_template

from .factories import BASELINE_ON, plan_yaml

SAFEGUARDING = "safeguarding-same-day-review"
MEDICINES = "medicines-24-hour-gap-explanation"
STAFFING = "staffing-deployment-assessed-need"
TEMPLATE_KEYS = ("title", "risk_domain", "quality_statements", "steps")


def refused(data: bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_plan(data)
    return caught.value


def from_template(template_id: str, **overrides: object) -> bytes:
    """A plan that names a template and leaves out everything the template carries."""
    return plan_yaml(
        template=template_id,
        drop=tuple(k for k in TEMPLATE_KEYS if k not in overrides),
        baseline={"value": 60, "as_of": BASELINE_ON},
        **overrides,
    )


def minimal_from_template(template_id: str) -> bytes:
    data = yaml.safe_load(from_template(template_id))
    data["baseline"] = {"value": 60, "as_of": BASELINE_ON}
    data["target"] = {}
    return yaml.safe_dump(data).encode()


# --- templates ----------------------------------------------------------------------------


def test_the_three_seed_examples_are_built_in_templates() -> None:
    assert list(builtin_templates()) == [SAFEGUARDING, MEDICINES, STAFFING]


@pytest.mark.parametrize("template_id", [SAFEGUARDING, MEDICINES, STAFFING])
def test_each_template_carries_everything_the_seed_example_names(template_id: str) -> None:
    template = get_template(template_id)
    assert len(template.steps) == 5
    assert template.what_can_go_wrong and template.warning_signs
    assert template.escalation_actions and template.triggers and template.audit_cadence
    assert {"audits", "feedback", "staff_practice"} <= set(template.evidence_sources)
    framework = builtin_framework()
    framework.resolve(list(template.quality_statements))


@pytest.mark.parametrize(
    ("template_id", "roles"),
    [
        (SAFEGUARDING, ["safeguarding_lead", "registered_manager", "duty_manager",
                        "team_leader", "nominated_individual"]),
        (MEDICINES, ["medicines_lead", "registered_manager", "senior_carer",
                     "medicines_lead", "nominated_individual"]),
        (STAFFING, ["registered_manager", "rota_coordinator", "shift_leader",
                    "deputy_manager", "provider_lead"]),
    ],
)
def test_template_steps_follow_the_seed_roles_in_order(template_id: str, roles: list[str]) -> None:
    assert [s.role.value for s in get_template(template_id).steps] == roles


@pytest.mark.parametrize(
    ("template_id", "domain", "value", "weeks"),
    [(SAFEGUARDING, RiskDomain.SAFEGUARDING, 100, 6), (MEDICINES, RiskDomain.MEDICINES, 100, 6),
     (STAFFING, RiskDomain.STAFFING, 95, 8)],
)
def test_template_targets_match_the_seed(
    template_id: str, domain: RiskDomain, value: float, weeks: int
) -> None:
    template = get_template(template_id)
    assert template.risk_domain == domain
    assert (template.target.direction, template.target.value, template.target.weeks) == (
        "at_least", value, weeks)


@pytest.mark.parametrize(
    ("template_id", "weekly", "monthly"),
    [(SAFEGUARDING, Role.REGISTERED_MANAGER, Role.NOMINATED_INDIVIDUAL),
     (MEDICINES, Role.MEDICINES_LEAD, Role.NOMINATED_INDIVIDUAL),
     (STAFFING, Role.REGISTERED_MANAGER, Role.PROVIDER_LEAD)],
)
def test_template_audit_cadence_matches_the_seed(
    template_id: str, weekly: Role, monthly: Role
) -> None:
    cadence = {(a.role, a.frequency) for a in get_template(template_id).audit_cadence}
    assert cadence == {(weekly, "weekly"), (monthly, "monthly")}


def test_unknown_template_is_refused_and_the_known_ones_listed() -> None:
    with pytest.raises(InvalidInput) as caught:
        get_template("falls-prevention")
    assert caught.value.field == "template"
    assert SAFEGUARDING in caught.value.rule and STAFFING in caught.value.rule


# --- a plan from a template ---------------------------------------------------------------


def test_template_fills_what_the_plan_leaves_out() -> None:
    plan = parse_plan(from_template(SAFEGUARDING))
    template = get_template(SAFEGUARDING)
    assert plan.template == SAFEGUARDING
    assert plan.title == template.title
    assert plan.risk_domain == RiskDomain.SAFEGUARDING
    assert plan.quality_statements == template.quality_statements
    assert plan.steps == template.steps
    assert plan.what_can_go_wrong == template.what_can_go_wrong
    assert plan.warning_signs == template.warning_signs
    assert plan.escalation_actions == template.escalation_actions
    assert plan.triggers == template.triggers
    assert plan.audit_cadence == template.audit_cadence
    assert plan.evidence_sources == template.evidence_sources


def test_template_fills_the_baseline_issue_and_target_with_a_deadline_from_its_weeks() -> None:
    plan = parse_plan(minimal_from_template(STAFFING))
    template = get_template(STAFFING)
    assert plan.baseline.issue == template.baseline_issue
    assert plan.target.measure == template.target.measure
    assert plan.target.direction == Direction.AT_LEAST
    assert plan.target.value == 95
    assert plan.target.deadline == BASELINE_ON + timedelta(weeks=8)


def test_plan_overrides_win_over_the_template() -> None:
    own_steps = [{"role": "registered_manager", "action": "Check every concern at 4pm",
                  "record": "Daily management log"}]
    plan = parse_plan(from_template(
        SAFEGUARDING, title="Our own title", steps=own_steps,
        quality_statements=["safe.safeguarding"], warning_signs=["Only this sign"],
        triggers=[{"description": "Poor feedback", "kind": "poor_feedback"}],
    ))
    assert plan.title == "Our own title"
    assert [s.action for s in plan.steps] == ["Check every concern at 4pm"]
    assert plan.quality_statements == ("safe.safeguarding",)
    assert plan.warning_signs == ("Only this sign",)
    assert [t.kind for t in plan.triggers] == [TriggerKind.POOR_FEEDBACK]


def test_plan_target_parts_override_the_template_target() -> None:
    data = yaml.safe_load(minimal_from_template(STAFFING))
    data["target"] = {"value": 90, "deadline": BASELINE_ON + timedelta(weeks=4)}
    plan = parse_plan(yaml.safe_dump(data).encode())
    assert plan.target.value == 90
    assert plan.target.deadline == BASELINE_ON + timedelta(weeks=4)
    assert plan.target.measure == get_template(STAFFING).target.measure


def test_plan_naming_a_template_by_a_number_is_refused() -> None:
    assert refused(plan_yaml(template=3)).field == "template"


def test_plan_naming_an_unknown_template_is_refused() -> None:
    assert refused(plan_yaml(template="nope")).field == "template"


# --- plan files ---------------------------------------------------------------------------


def test_a_complete_plan_file_is_read() -> None:
    plan = parse_plan(plan_yaml())
    assert plan.location == "Rose House"
    assert plan.risk.potential_harm == 5
    assert plan.target.deadline > plan.baseline.as_of


def test_missing_target_is_refused_naming_the_field() -> None:
    err = refused(plan_yaml(drop=("target",)))
    assert (err.field, err.rule) == ("target", "is required")


def test_missing_steps_without_a_template_are_refused() -> None:
    err = refused(plan_yaml(drop=("steps",)))
    assert (err.field, err.rule) == ("steps", "is required")


def test_plan_without_any_quality_statement_is_refused() -> None:
    assert refused(plan_yaml(quality_statements=[])).field == "quality_statements"


@pytest.mark.parametrize("bad", [0, 6, "5", True, 4.5])
def test_factor_out_of_range_or_not_a_whole_number_names_the_factor(bad: object) -> None:
    assert refused(plan_yaml(risk={"potential_harm": bad})).field == "risk.potential_harm"


def test_factor_out_of_range_says_the_range() -> None:
    err = refused(plan_yaml(risk={"control_strength": 6}))
    assert (err.field, err.rule) == (
        "risk.control_strength", "Input should be less than or equal to 5"
    )


@pytest.mark.parametrize("value", [55, 60])
def test_target_that_is_no_improvement_on_the_baseline_is_refused(value: int) -> None:
    err = refused(plan_yaml(target={"value": value}))
    assert (err.field, err.rule) == (
        "target", f"at least {value}% is no improvement on the baseline 60%"
    )


def test_at_most_target_must_be_below_the_baseline() -> None:
    err = refused(plan_yaml(target={"direction": "at_most", "value": 70}))
    assert (err.field, err.rule) == ("target", "at most 70% is no improvement on the baseline 60%")
    assert parse_plan(plan_yaml(target={"direction": "at_most", "value": 10})).target.value == 10


def test_deadline_on_or_before_the_baseline_date_is_refused() -> None:
    err = refused(plan_yaml(target={"deadline": BASELINE_ON}))
    assert (err.field, err.rule) == ("target", "deadline must be after the baseline date")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"risk_domain": "finance"}, "risk_domain"),
        ({"target": {"direction": "more"}}, "target.direction"),
        ({"target": {"unit": "count"}}, "target.unit"),
        ({"baseline": {"value": 120}}, "baseline.value"),
        ({"steps": [{"role": "chef", "action": "Cook", "record": "Menu"}]}, "steps.0.role"),
        ({"title": "   "}, "title"),
        ({"steps": []}, "steps"),
    ],
)
def test_bad_plan_values_are_refused_naming_the_field(
    overrides: dict[str, object], field: str
) -> None:
    assert refused(plan_yaml(**overrides)).field == field


def test_unknown_key_is_reported_as_not_known() -> None:
    assert refused(plan_yaml(colour="red")).rule == "is not a known key"


def test_yaml_alias_is_refused() -> None:
    laughs = b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    err = refused(laughs)
    assert (err.field, err.rule) == ("file", "YAML aliases are not allowed (line 2)")


@pytest.mark.parametrize(
    "tag",
    ["!!python/object/apply:os.system ['true']", "!!python/name:os.system",
     "!!python/object:collections.OrderedDict {}"],
)
def test_python_object_tags_are_refused(tag: str) -> None:
    err = refused(f"title: {tag}\n".encode())
    assert err.field == "file"
    assert err.rule.startswith("YAML tag not allowed")


def test_non_utf8_file_is_refused() -> None:
    err = refused("title: Café\n".encode("latin-1"))
    assert (err.field, err.rule) == ("file", "is not UTF-8 text (byte 10)")


def test_file_that_is_not_yaml_is_refused_with_its_line() -> None:
    assert refused(b"title: ok\nsteps: [unclosed\n").rule.startswith("is not valid YAML at line")


@pytest.mark.parametrize("data", [b"", b"- a list\n", b"just text\n"])
def test_plan_file_that_is_not_a_mapping_is_refused(data: bytes) -> None:
    assert refused(data).rule == "a plan file must be a YAML mapping of keys to values"


def test_oversized_file_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(InvalidInput) as caught:
        load_yaml(b"#" * (MAX_FILE_BYTES + 1))
    assert caught.value.rule == "is larger than 256 KiB"


# --- people files -------------------------------------------------------------------------

PEOPLE = b"""
provider: Rose Care Ltd
people:
  - {name: Sam Jones, email: Sam.Jones@Rose.example, role: registered_manager, location: Rose House}
  - {name: Nia Patel, email: ni@provider.example, role: nominated_individual}
"""


def test_people_file_is_read_with_emails_normalised() -> None:
    people = parse_people(PEOPLE)
    assert people.provider == "Rose Care Ltd"
    assert [p.email for p in people.people] == ["sam.jones@rose.example", "ni@provider.example"]
    assert people.people[1].location is None


def test_people_file_listing_an_email_twice_in_different_case_is_refused() -> None:
    data = PEOPLE + b"  - {name: S. Jones, email: ' SAM.JONES@rose.example', role: team_leader}\n"
    with pytest.raises(InvalidInput) as caught:
        parse_people(data)
    assert caught.value.field == "people.2.email"
    assert caught.value.rule == "sam.jones@rose.example is listed twice"


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (b"{name: A, email: a@rose.example, role: chef}", "people.2.role"),
        (b"{name: A, email: not-an-email, role: team_leader}", "people.2.email"),
        (b"{name: ' ', email: a@rose.example, role: team_leader}", "people.2.name"),
    ],
)
def test_bad_person_is_refused_naming_the_field(entry: bytes, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_people(PEOPLE + b"  - " + entry + b"\n")
    assert caught.value.field == field
