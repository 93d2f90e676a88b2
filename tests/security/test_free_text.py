"""HTML, SQL and terminal markup in the free text people type are accepted where text is
expected, stored exactly as typed, and harmless: no table is touched but the one written,
the CLI shows them as text (rich markup is not interpreted, nothing crashes), and the HTML
part of every email carries them escaped. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from models.signoff import SignoffKind
from recovery.adapters import db
from recovery.application import signoff_codes, transitions
from recovery.settings import get_settings
from tests.integration.helpers import cli, dump_tables, relative_plan
from tests.security.conftest import MANAGER, World
from tests.security.corpus import HTML, SQL

MARKUP = "[/red][bold]not bold[/bold]"
TITLE = f"Night checks {MARKUP} <b>now</b>"
ISSUE = f"Checks missed {HTML} {SQL}"
CONTROL = f"Manager reviews {SQL} daily {HTML}"
REFERENCE = f"Night log p.3 {SQL} <img src=x onerror=alert(1)>"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest) -> World:
    fixture = "sqlite_world" if request.param == "sqlite" else "postgres_world"
    world: World = request.getfixturevalue(fixture)
    return world


def test_html_sql_and_markup_are_stored_literally_and_harmless(
    world: World, tmp_path: Path
) -> None:
    today = get_settings().today()
    plan = relative_plan(today, title=TITLE, interim_controls=[CONTROL],
                         baseline={"issue": ISSUE, "value": 60, "as_of": str(today)})
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
    before = dump_tables(world.url)

    opened = cli("action", "open", str(path), "--no-flow")
    assert opened.exit_code == 0, opened.stderr
    assert TITLE in opened.stdout  # shown as typed, markup not interpreted
    ref = opened.stdout.split(" ", 1)[0]
    shown = cli("action", "show", ref, "--json").json()
    assert (shown["title"], shown["baseline"]["issue"], shown["interim_controls"]) == \
        (TITLE, ISSUE, [CONTROL])
    listed = cli("action", "list")
    assert listed.exit_code == 0 and "[/red]" in listed.stdout, listed.stderr

    added = cli("evidence", "add", ref, "--source", "audits", "--value", "80", "--sample",
                "10", "--observed-on", str(today), "--reference", REFERENCE, "--by", MANAGER)
    assert added.exit_code == 0, added.stderr

    # stored exactly; every table is still there; only the expected tables grew
    with db.engine_for(world.url).connect() as conn:
        stored = conn.execute(text("SELECT title FROM recovery_action WHERE ref = :r"),
                              {"r": ref}).scalar_one()
        reference = conn.execute(text("SELECT reference FROM evidence")).scalar_one()
    assert (stored, reference) == (TITLE, REFERENCE)
    after = dump_tables(world.url)
    assert set(after) == set(before)
    grew = {t for t in after if len(after[t]) != len(before[t])}
    assert grew == {"recovery_action", "action_statement", "plan_revision", "evidence",
                    "audit_log"}, grew
    assert cli("audit", "verify").exit_code == 0
    assert cli("audit", "show", ref).exit_code == 0

    # the sign-off email: HTML escaped in the HTML part, plain in the text part
    with db.unit_of_work() as session:
        transitions.submit_plan(session, ref, actor="lifecycle")
        signoff_codes.open_signoff(session, ref, SignoffKind.PLAN, flow_run_id=None)
    with db.engine_for(world.url).connect() as conn:
        html, plain = conn.execute(text(
            "SELECT html_body, text_body FROM outbox WHERE dedupe_key = :k"),
            {"k": f"signoff:{ref}:plan:1"}).one()
    assert "<b>now</b>" not in html and "&lt;b&gt;now&lt;/b&gt;" in html
    assert TITLE in plain
