"""The `recovery` CLI end to end on SQLite and PostgreSQL: a real subprocess run of the
README journey, then every command in-process (typer's CliRunner) for speed."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from recovery.adapters import db
from recovery.settings import get_settings
from tests.integration.helpers import (
    EXAMPLES,
    SEED_PLANS,
    cli,
    dump_tables,
    finish,
    relative_plan,
    run_recovery,
    start_recovery,
    write_plan,
)

CONTRACT = ("ref", "status", "risk", "review_cadence")


def _today() -> date:
    return get_settings().today()


@pytest.fixture
def directory(database_url: str) -> str:
    """`recovery init` and the example staff directory, through the CLI."""
    assert cli("init").exit_code == 0
    result = cli("people", "import", str(EXAMPLES / "people.yaml"), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json() == {"people_added": 13, "people_updated": 0, "locations_added": 3}
    return database_url


def _open(path: Path) -> dict[str, Any]:
    result = cli("action", "open", str(path), "--no-flow", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert isinstance(data, dict)
    return data


def _assert_contract(data: dict[str, Any]) -> None:
    for key in CONTRACT:
        assert key in data
    risk = data["risk"]
    assert isinstance(risk, dict)
    assert risk["level"] in {"high", "medium", "low"}
    assert isinstance(risk["score"], int)
    assert isinstance(risk["reasons"], list) and all(isinstance(r, str) for r in risk["reasons"])
    assert data["review_cadence"] in {"daily", "weekly", "monthly"}


# ---------------------------------------------------------------- the real executable


def test_readme_journey_in_real_subprocesses(database_url: str, is_postgres: bool) -> None:
    if not is_postgres:  # a brand-new SQLite file: `init` creates and migrates it
        Path(database_url.split("///", 1)[1]).unlink()
    init = run_recovery("init", "--json")
    assert init.exit_code == 0, init.stderr
    assert init.json()["database"] == database_url
    assert init.json()["framework"] == "cqc-saf-2024"

    # in-process between the real calls: the subprocesses are CPU-bound start-ups
    people = cli("people", "import", str(EXAMPLES / "people.yaml"))
    assert people.exit_code == 0, people.stderr
    assert "13 added" in people.stdout

    opened = run_recovery("action", "open", str(SEED_PLANS["ROSE-SG-001"]), "--no-flow",
                          "--json")
    assert opened.exit_code == 0, opened.stderr
    data = opened.json()
    _assert_contract(data)
    assert (data["ref"], data["status"], data["risk"]["level"], data["review_cadence"]) == (
        "ROSE-SG-001", "draft", "high", "daily")

    # independent read-only commands run side by side
    gate = start_recovery("gate", "rose-sg-001", "--json")
    missing = start_recovery("action", "show", "ROSE-SG-404")
    gate_out, missing_out = finish(gate), finish(missing)

    assert gate_out.exit_code == 3
    verdict = gate_out.json()
    assert verdict["ref"] == "ROSE-SG-001" and verdict["passed"] is False
    assert any(r.startswith("no feedback evidence since") for r in verdict["reasons"])
    assert missing_out.exit_code == 2 and missing_out.stdout == ""
    assert missing_out.stderr_lines() == ["error action: no such action 'ROSE-SG-404'"]

    verify = cli("audit", "verify", "--json")
    assert verify.exit_code == 0
    assert verify.json()["ok"] is True and verify.json()["entries"] == 3


# ---------------------------------------------------------------- catalogue and templates


def test_catalogue_and_templates(directory: str) -> None:
    rows = cli("catalogue", "--json").json()
    assert len(rows) == 34
    assert {r["framework_id"] for r in rows} == {"cqc-saf-2024"}
    assert {"safe.safeguarding", "well-led.governance-management-sustainability",
            "caring.responding-to-immediate-needs"} <= {r["id"] for r in rows}
    assert set(rows[0]) == {"framework_id", "id", "key_question", "title"}
    assert {r["key_question"] for r in rows} == {
        "Safe", "Effective", "Caring", "Responsive", "Well-led"}
    human = cli("catalogue")
    assert human.exit_code == 0 and "Safeguarding" in human.stdout

    templates = cli("templates", "--json").json()
    assert {t["id"] for t in templates} == {
        "safeguarding-same-day-review", "medicines-24-hour-gap-explanation",
        "staffing-deployment-assessed-need"}
    for template in templates:
        assert template["steps"] and template["triggers"] and template["warning_signs"]
    assert "safeguarding-same-day-review" in cli("templates").stdout


def test_a_second_framework_loads_beside_the_first(directory: str, tmp_path: Path) -> None:
    ref = _open(SEED_PLANS["ROSE-SG-001"])["ref"]
    with db.engine_for(directory).connect() as conn:
        links_before = conn.execute(text(
            "SELECT action_id, framework_id, statement_id FROM action_statement "
            "ORDER BY statement_id")).all()
    framework = tmp_path / "cqc-sector-2026.yaml"
    framework.write_text(
        "framework_id: cqc-sector-2026\n"
        "name: CQC sector-specific assessment (draft)\n"
        "version: '2026'\n"
        "evidence_categories:\n"
        "  - {id: peoples-experience, name: People's experience}\n"
        "quality_statements:\n"
        "  - {id: safe.safeguarding, key_question: Safe, title: Safeguarding people}\n"
        "  - {id: safe.medicines, key_question: Safe, title: Safe use of medicines}\n",
        encoding="utf-8",
    )
    loaded = cli("catalogue", "load", str(framework), "--json")
    assert loaded.exit_code == 0, loaded.stderr
    assert loaded.json() == {"framework_id": "cqc-sector-2026", "loaded": True, "statements": 2}
    again = cli("catalogue", "load", str(framework), "--json")
    assert again.exit_code == 0 and again.json()["loaded"] is False

    assert len(cli("catalogue", "--json").json()) == 36
    new = cli("catalogue", "--framework", "cqc-sector-2026", "--json").json()
    assert sorted((r["framework_id"], r["id"], r["title"]) for r in new) == [
        ("cqc-sector-2026", "safe.medicines", "Safe use of medicines"),
        ("cqc-sector-2026", "safe.safeguarding", "Safeguarding people")]
    assert len(cli("catalogue", "--framework", "cqc-saf-2024", "--json").json()) == 34

    with db.engine_for(directory).connect() as conn:
        assert conn.execute(text(
            "SELECT action_id, framework_id, statement_id FROM action_statement "
            "ORDER BY statement_id")).all() == links_before
    shown = cli("action", "show", str(ref), "--json").json()
    assert shown["quality_statements"] == [
        "safe.safeguarding", "well-led.governance-management-sustainability"]

    # a new action can link to the new framework's statements
    plan = relative_plan(_today(), framework_id="cqc-sector-2026",
                         quality_statements=["safe.medicines"], risk_domain="medicines")
    opened = _open(write_plan(tmp_path / "new.yaml", plan))
    assert opened["ref"] == "ROSE-MED-001"
    with db.engine_for(directory).connect() as conn:
        assert conn.execute(text(
            "SELECT framework_id, statement_id FROM action_statement s "
            "JOIN recovery_action a ON a.id = s.action_id WHERE a.ref = 'ROSE-MED-001'"
        )).all() == [("cqc-sector-2026", "safe.medicines")]
    assert cli("audit", "verify").exit_code == 0


# ---------------------------------------------------------------- the seed examples


def test_seed_examples_open_high_daily_and_the_gate_refuses_each(directory: str) -> None:
    expected_scores = {"ROSE-SG-001": 25, "QUAY-MED-001": 24, "ELM-STF-001": 22}
    cutoff = (_today() - timedelta(days=get_settings().evidence_freshness_days)).isoformat()
    for ref, path in SEED_PLANS.items():
        data = _open(path)
        _assert_contract(data)
        assert data["ref"] == ref
        assert data["status"] == "draft"
        assert data["risk"]["level"] == "high"
        assert data["risk"]["score"] == expected_scores[ref]
        assert data["risk"]["reasons"][0].startswith(f"score {expected_scores[ref]} of 30")
        assert data["review_cadence"] == "daily"

        gate = cli("gate", ref, "--json")
        assert gate.exit_code == 3
        verdict = gate.json()
        assert verdict["ref"] == ref and verdict["passed"] is False
        for pillar in ("care records", "audits", "feedback", "staff practice"):
            assert f"no {pillar} evidence since {cutoff}" in verdict["reasons"]
        assert any("review periods" in r for r in verdict["reasons"])

        human = cli("gate", ref)
        assert human.exit_code == 3
        assert f"closure refused for {ref}" in human.stdout
        assert f"- no feedback evidence since {cutoff}" in human.stdout

    human = cli("action", "show", "ELM-STF-001")
    assert human.exit_code == 0
    assert "risk: high (score 22)" in human.stdout and "review: daily" in human.stdout
    assert "provider.lead@harbourcare.example" in human.stdout


# ---------------------------------------------------------------- show, list, evidence, gate


def test_show_and_list_with_filters(directory: str, tmp_path: Path) -> None:
    for path in SEED_PLANS.values():
        _open(path)
    today = _today()
    medium = relative_plan(today, location="Quay House", risk_domain="safety",
                           quality_statements=["safe.safe-environments"],
                           accountable_lead="senior.carer@quay.example",
                           senior_reviewer="rm@quay.example",
                           risk={"potential_harm": 3, "people_affected": 3,
                                 "likelihood_of_recurrence": 3, "regulatory_impact": 3,
                                 "control_strength": 3})
    low = relative_plan(today, location="ELM", risk_domain="care_planning",
                        quality_statements=["effective.assessing-needs"],
                        accountable_lead="deputy@elm.example", senior_reviewer="rm@elm.example",
                        risk={"potential_harm": 2, "people_affected": 2,
                              "likelihood_of_recurrence": 2, "regulatory_impact": 2,
                              "control_strength": 2})
    m = _open(write_plan(tmp_path / "medium.yaml", medium))
    lo = _open(write_plan(tmp_path / "low.yaml", low))
    assert (m["ref"], m["risk"]["level"], m["review_cadence"]) == ("QUAY-SF-001", "medium",
                                                                   "weekly")
    assert (lo["ref"], lo["risk"]["level"], lo["review_cadence"]) == ("ELM-CP-001", "low",
                                                                      "monthly")

    everything = cli("action", "list", "--json").json()
    assert sorted(a["ref"] for a in everything) == sorted(
        [*SEED_PLANS, "QUAY-SF-001", "ELM-CP-001"])
    for item in everything:
        _assert_contract(item)
    high = cli("action", "list", "--level", "high", "--json").json()
    assert sorted(a["ref"] for a in high) == sorted(SEED_PLANS)
    assert [a["ref"] for a in cli("action", "list", "--level", "medium", "--json").json()] == [
        "QUAY-SF-001"]
    assert len(cli("action", "list", "--status", "draft", "--json").json()) == 5
    assert cli("action", "list", "--status", "closed", "--json").json() == []
    assert [a["ref"] for a in cli("action", "list", "--status", "draft", "--level", "low",
                                  "--location", "Elm Court", "--json").json()] == ["ELM-CP-001"]
    table = cli("action", "list", "--level", "high")
    assert table.exit_code == 0 and all(ref in table.stdout for ref in SEED_PLANS)

    shown = cli("action", "show", " quay-med-001 ", "--json")
    assert shown.exit_code == 0
    data = shown.json()
    _assert_contract(data)
    assert (data["ref"], data["accountable_lead"], data["senior_reviewer"]) == (
        "QUAY-MED-001", "meds.lead@quay.example", "rm@quay.example")
    assert data["target"]["deadline"] == "2026-12-30"

    bad = cli("action", "list", "--level", "urgent", "--json")
    assert bad.exit_code == 2 and bad.error_json()["field"] == "level"
    bad = cli("action", "list", "--status", "finished")
    assert bad.exit_code == 2 and bad.stderr_lines()[0].startswith("error status:")


def test_evidence_add_changes_the_gate_reasons(directory: str) -> None:
    _open(SEED_PLANS["ROSE-SG-001"])
    today = _today().isoformat()
    added = cli("evidence", "add", "ROSE-SG-001", "--source", "audits", "--value", "85",
                "--sample", "20", "--observed-on", today, "--reference",
                "Safeguarding audit file, week 2", "--by", " RM@rose.example", "--json")
    assert added.exit_code == 0, added.stderr
    data = added.json()
    assert (data["ref"], data["source"], data["pillar"], data["value"]) == (
        "ROSE-SG-001", "audits", "audits", 85.0)
    human = cli("evidence", "add", "rose-sg-001", "--source", "safeguarding_logs", "--value",
                "100", "--sample", "12", "--observed-on", today, "--reference",
                "Safeguarding log p.14", "--by", "duty.manager@rose.example")
    assert human.exit_code == 0 and "(care_records)" in human.stdout

    gate = cli("gate", "ROSE-SG-001", "--json")
    assert gate.exit_code == 3
    reasons = gate.json()["reasons"]
    assert f"audit of {today} shows 85%, target at least 100%" in reasons
    assert not any(r.startswith(("no audits evidence", "no care records evidence"))
                   for r in reasons)
    assert any(r.startswith("no feedback evidence since") for r in reasons)
    assert any(r.startswith("no staff practice evidence since") for r in reasons)

    verify = cli("audit", "verify", "--json")
    assert verify.exit_code == 0
    assert verify.json()["ok"] is True and verify.json()["entries"] == 5
    assert verify.json()["first_bad_seq"] is None
    shown = cli("audit", "show", "ROSE-SG-001", "--json").json()
    assert [e["event"] for e in shown] == ["action.opened", "evidence.added", "evidence.added"]


def test_extension_through_the_cli(directory: str) -> None:
    _open(SEED_PLANS["ELM-STF-001"])
    before = dump_tables(directory)
    refused = cli("action", "extend", "ELM-STF-001", "--deadline", "2027-02-01",
                  "--control-change", "try harder", "--by", "provider.lead@harbourcare.example")
    assert refused.exit_code == 3
    lines = refused.stderr_lines()
    assert lines[0] == "refused by deadline extension:"
    assert any("control-change" in line for line in lines[1:])
    as_json = cli("action", "extend", "ELM-STF-001", "--deadline", "2027-02-01",
                  "--control-change", " ", "--by", "provider.lead@harbourcare.example", "--json")
    assert as_json.exit_code == 3
    error = as_json.error_json()
    assert error["field"] == "deadline extension" and error["reasons"]
    assert dump_tables(directory) == before

    change = "Second senior carer on the 07:00-10:00 shift, dependency re-scored weekly"
    done = cli("action", "extend", "ELM-STF-001", "--deadline", "2027-02-01",
               "--control-change", change, "--by", "Provider.Lead@harbourcare.example",
               "--json")
    assert done.exit_code == 0, done.stderr
    assert done.json() == {"ref": "ELM-STF-001", "deadline": "2027-02-01"}
    assert cli("action", "show", "ELM-STF-001", "--json").json()["target"]["deadline"] == \
        "2027-02-01"
    with db.engine_for(directory).connect() as conn:
        assert conn.execute(text(
            "SELECT what, decided_by, reason FROM control_change")).all() == [
            (change, "provider.lead@harbourcare.example", "extension")]
    assert cli("audit", "verify").exit_code == 0


def test_audit_verify_reports_a_tampered_row(directory: str) -> None:
    _open(SEED_PLANS["QUAY-MED-001"])
    assert cli("audit", "verify").exit_code == 0
    with db.engine_for(directory).begin() as conn:
        conn.execute(text("UPDATE audit_log SET event = 'action.closed' WHERE seq = 3"))
    result = cli("audit", "verify", "--json")
    assert result.exit_code == 3
    data = result.json()
    assert data["ok"] is False and data["first_bad_seq"] == 3
    human = cli("audit", "verify")
    assert human.exit_code == 3 and "audit chain broken" in human.stdout


def test_entries_deleted_from_the_tail_are_found_through_the_anchor(directory: str) -> None:
    _open(SEED_PLANS["QUAY-MED-001"])
    anchored = cli("audit", "anchor", "--json")
    assert anchored.exit_code == 0, anchored.stderr
    head = anchored.json()
    assert head["seq"] >= 3 and len(head["hash"]) == 64
    # the anchor file is outside the database, one line per anchor, appended once per head
    from recovery.adapters import anchors

    assert [(a.seq, a.hash) for a in anchors.read_file()] == [(head["seq"], head["hash"])]
    assert cli("audit", "anchor").exit_code == 0
    assert len(anchors.read_file()) == 1
    assert cli("audit", "verify", "--no-prefect").exit_code == 0
    with db.engine_for(directory).begin() as conn:  # the newest entries deleted
        conn.execute(text("DELETE FROM audit_log WHERE seq >= :s"), {"s": head["seq"] - 1})
    result = cli("audit", "verify", "--no-prefect", "--json")
    assert result.exit_code == 3
    data = result.json()
    assert data["ok"] is False and data["first_bad_seq"] == head["seq"] - 1
    assert f"holds entry {head['seq']}: entries {head['seq'] - 1} to {head['seq']} or more " \
           "were deleted" in data["reason"]
    # the same anchor given by hand (as printed in a weekly email), without the file
    anchors.anchor_file().unlink()
    assert cli("audit", "verify", "--no-prefect").exit_code == 0  # nothing left to compare
    given = cli("audit", "verify", "--no-prefect", "--anchor", f"{head['seq']}:{head['hash']}")
    assert given.exit_code == 3 and "were deleted" in given.stdout


@pytest.mark.parametrize("value", ["12", "x:" + "a" * 64, "3:abc", "0:" + "a" * 64])
def test_a_malformed_anchor_is_refused_by_name(directory: str, value: str) -> None:
    result = cli("audit", "verify", "--no-prefect", "--anchor", value)
    assert result.exit_code == 2
    assert "--anchor" in result.stderr and "SEQ:HASH" in result.stderr


def test_an_edited_anchor_file_is_reported_not_ignored(directory: str) -> None:
    _open(SEED_PLANS["QUAY-MED-001"])
    assert cli("audit", "anchor").exit_code == 0
    from recovery.adapters import anchors

    path = anchors.anchor_file()
    path.write_text(path.read_text().replace('"seq": ', '"seq": "x'), encoding="utf-8")
    result = cli("audit", "verify", "--no-prefect")
    assert result.exit_code == 2
    assert f"{path} line 1" in result.stderr and "the file was edited" in result.stderr


def test_people_name_their_location_by_name_or_code(directory: str) -> None:
    for email, location in (("a@rose.example", "  rose HOUSE "), ("b@rose.example", "rose")):
        added = cli("people", "add", "--name", "New Starter", "--email", email, "--role",
                    "senior_carer", "--provider", "Harbour Care Group", "--location", location,
                    "--json")
        assert added.exit_code == 0, added.stderr
        assert added.json()["locations_added"] == 0
    with db.engine_for(directory).connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM location")).scalar_one() == 3
        assert conn.execute(text(
            "SELECT DISTINCT l.name FROM person p JOIN location l ON l.id = p.location_id "
            "WHERE p.email IN ('a@rose.example', 'b@rose.example')")).all() == [("Rose House",)]
    again = cli("people", "import", str(EXAMPLES / "people.yaml"), "--json")
    assert again.json() == {"people_added": 0, "people_updated": 13, "locations_added": 0}


def test_one_provider_per_database_and_no_undeclared_location(directory: str,
                                                              tmp_path: Path) -> None:
    def counts() -> tuple[int, int, int]:
        with db.engine_for(directory).connect() as conn:
            return tuple(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                         for t in ("provider", "location", "person"))  # type: ignore[return-value]

    # the provider named in another case and spacing is the same provider
    same = cli("people", "add", "--name", "New Starter", "--email", "new@rose.example",
               "--role", "senior_carer", "--provider", "  harbour care GROUP ",
               "--location", "Rose House", "--json")
    assert same.exit_code == 0, same.stderr
    assert counts() == (1, 3, 14)
    other = tmp_path / "other.yaml"
    other.write_text("provider: Another Provider\nlocations:\n  - {name: Birch Lodge}\n"
                     "people:\n  - {name: A Manager, email: am@other.example, "
                     "role: registered_manager, location: Birch Lodge}\n", encoding="utf-8")
    refused = cli("people", "import", str(other), "--json")
    assert refused.exit_code == 2
    assert refused.error_json()["field"] == "provider"
    assert "Harbour Care Group" in refused.error_json()["error"]
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text("provider: Harbour Care Group\nlocations:\n  - {name: Birch Lodge}\n"
                        "people:\n  - {name: A Manager, email: am@birch.example, "
                        "role: registered_manager, location: Birch Lodge}\n"
                        "  - {name: A Carer, email: ac@birch.example, role: senior_carer, "
                        "location: Birch Lodgw}\n", encoding="utf-8")
    refused = cli("people", "import", str(misspelt), "--json")
    assert refused.exit_code == 2
    assert refused.error_json()["field"] == "people.1.location"
    assert "Birch Lodgw" in refused.error_json()["error"]
    assert counts() == (1, 3, 14)  # nothing written, not even the declared Birch Lodge
    misspelt.write_text(misspelt.read_text().replace("Lodgw", "Lodge"), encoding="utf-8")
    assert cli("people", "import", str(misspelt), "--json").json() == {
        "people_added": 2, "people_updated": 0, "locations_added": 1}
