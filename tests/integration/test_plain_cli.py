"""The CLI speaks plainly: every rule in words, dates as it prints them (day first) or ISO,
a summary of a review cycle a person can read, a hint to run `recovery init`, and the
running demo found from `<home>/demo.json`. Exact words, in-process on SQLite (the words do
not depend on the database); the hint to run `recovery init` on PostgreSQL too."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer
from sqlalchemy import text

from models.dates import DATE_HELP
from recovery.adapters import db
from recovery.cli import app
from recovery.settings import get_settings
from tests.integration.conftest import PG_ADMIN_URL, PG_SERVER
from tests.integration.helpers import EXAMPLES, cli, relative_plan, write_plan

REF = "ROSE-SG-001"
REVIEWER = "ni@harbourcare.example"

#: Every date option of the CLI and the arguments its command needs besides the date. The
#: test below reads the options off the typer app, so a new one must be added here.
DATE_OPTIONS: dict[tuple[str, ...], list[str]] = {
    ("action", "extend", "--deadline"): [
        REF, "--control-change", "Second senior on every shift from Monday",
        "--by", "provider.lead@harbourcare.example"],
    ("evidence", "add", "--observed-on"): [
        REF, "--source", "audits", "--value", "90", "--sample", "20", "--reference",
        "Safeguarding audit file, week 2", "--by", "rm@rose.example"],
    ("gate", "--as-of"): [REF],
    ("review", "run", "--as-of"): ["daily"],
    ("report", "governance", "--as-of"): ["--out", "{tmp}/governance.md"],
    ("report", "commissioner", "--as-of"): ["--out", "{tmp}/commissioner.md"],
    ("report", "inspector", "--as-of"): ["--out", "{tmp}/inspector.md"],
    ("export", "tracker", "--as-of"): ["--out", "{tmp}/tracker.csv"],
    ("people", "away", "--from"): [
        REVIEWER, "--to", (date.today() + timedelta(days=30)).isoformat(), "--by", REVIEWER],
    ("people", "away", "--to"): [
        REVIEWER, "--from", date.today().isoformat(), "--by", REVIEWER],
}


def date_options() -> set[tuple[str, ...]]:
    """(command path..., option) for every option whose help names the date formats."""
    found: set[tuple[str, ...]] = set()

    def walk(command: Any, path: tuple[str, ...]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))
        for param in command.params:
            if param.param_type_name == "option" and (
                    DATE_HELP in (param.help or "") or "YYYY" in (param.help or "")
                    or param.name in {"as_of", "deadline", "observed_on"}):
                found.add((*path, param.opts[0]))

    walk(typer.main.get_command(app), ())
    return found


@pytest.fixture
def directory(database_url: str, tmp_path: Path) -> str:
    assert cli("init").exit_code == 0
    assert cli("people", "import", str(EXAMPLES / "people.yaml")).exit_code == 0
    plan = write_plan(tmp_path / "plan.yaml", relative_plan(get_settings().today()))
    opened = cli("action", "open", str(plan), "--no-flow", "--json")
    assert opened.exit_code == 0, opened.stderr
    assert opened.json()["ref"] == REF
    return database_url


@pytest.mark.sqlite_only
def test_every_date_option_is_known_and_says_both_formats() -> None:
    assert date_options() == set(DATE_OPTIONS)
    for *path, option in DATE_OPTIONS:
        command: Any = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]
        [param] = [p for p in command.params if option in getattr(p, "opts", [])]
        assert DATE_HELP in (param.help or ""), (path, param.help)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("key", list(DATE_OPTIONS), ids=lambda k: " ".join(k))
def test_every_date_option_refuses_a_non_date_naming_both_formats(
        directory: str, tmp_path: Path, key: tuple[str, ...]) -> None:
    *path, option = key
    args = [a.replace("{tmp}", str(tmp_path)) for a in DATE_OPTIONS[key]]
    result = cli(*path, *args, option, "31/02/2026", "--json")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.error_json() == {
        "error": "'31/02/2026' is not a date: give it as 2026-12-03 or 03/12/2026 (day first)",
        "field": option.lstrip("-").replace("-", "_")}


@pytest.mark.sqlite_only
@pytest.mark.parametrize("key", list(DATE_OPTIONS), ids=lambda k: " ".join(k))
def test_every_date_option_takes_the_day_first_as_printed(
        directory: str, tmp_path: Path, key: tuple[str, ...]) -> None:
    """The same command, once with 2026-12-03 style and once day first: the same day (a
    deadline moves later each time, as an extension must)."""
    *path, option = key
    today = get_settings().today()
    days = ([today + timedelta(days=90), today + timedelta(days=120)]
            if option in ("--deadline", "--to") else [today - timedelta(days=1)] * 2)
    outputs = []
    for day, shown in zip(days, (days[0].isoformat(), days[1].strftime("%d/%m/%Y")),
                          strict=True):
        args = [a.replace("{tmp}", str(tmp_path / shown.replace("/", "-")))
                for a in DATE_OPTIONS[key]]
        if args[:1] == ["--out"]:
            Path(args[1]).parent.mkdir(parents=True, exist_ok=True)
        result = cli(*path, *args, option, shown, "--json")
        assert result.exit_code in {0, 3}, (shown, result.stdout, result.stderr)
        written = Path(args[1]).read_text() if args[:1] == ["--out"] else ""
        forms = (day.isoformat(), f"{day:%d/%m/%Y}", f"{day.day} {day:%B %Y}")
        outputs.append(written)
        # the tracker export carries no as-of date: both runs must then write the same file
        assert any(f in result.stdout + written for f in forms) or key[0] == "export", \
            (shown, result.stdout)
    assert outputs[0] == outputs[1]
    if option == "--observed-on":  # the evidence itself: stored under the day given
        with db.engine_for(directory).connect() as conn:
            stored = conn.execute(text("SELECT observed_on FROM evidence")).scalars().all()
        assert [str(s)[:10] for s in stored] == [days[0].isoformat()] * 2


@pytest.mark.sqlite_only
def test_an_unknown_by_is_no_one_in_the_staff_directory(directory: str) -> None:
    result = cli("action", "extend", REF, "--deadline", "2027-03-01", "--control-change",
                 "Second senior on every shift", "--by", "nobody@rose.example")
    assert result.exit_code == 2
    assert result.stderr_lines() == [
        "error by: no one with the email 'nobody@rose.example' is in the staff directory"]


@pytest.mark.sqlite_only
def test_a_plan_naming_an_unknown_reviewer_says_so(directory: str, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "p.yaml", relative_plan(
        get_settings().today(), senior_reviewer="nobdy@provider.example"))
    result = cli("action", "open", str(plan), "--no-flow", "--json")
    assert result.exit_code == 2
    assert result.error_json() == {
        "error": "no one with the email 'nobdy@provider.example' is in the staff directory",
        "field": "senior_reviewer"}


@pytest.mark.sqlite_only
def test_a_short_reason_says_the_20_character_rule(directory: str) -> None:
    result = cli("action", "reopen", REF, "--by", REVIEWER, "--reason", "ok", "--json")
    assert result.exit_code == 2
    assert result.error_json() == {
        "error": "say why it is reopened (at least 20 characters)", "field": "reason"}


@pytest.fixture
def empty_database(database_url: str, is_postgres: bool, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database nobody has run `recovery init` on (the session's own stays intact)."""
    if not is_postgres:
        url = f"sqlite:///{tmp_path / 'empty.db'}"
        monkeypatch.setenv("RECOVERY_DATABASE_URL", url)
        get_settings.cache_clear()
        yield url
        return
    name = f"rg_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = f"{PG_SERVER}/{name}"
    monkeypatch.setenv("RECOVERY_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    db.engine_for(url).dispose()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_a_command_before_init_says_to_run_init(empty_database: str) -> None:
    for args in (("action", "list"), ("audit", "show")):
        result = cli(*args)
        assert result.exit_code == 1
        assert result.stderr_lines() == [
            "error database: the database has no tables yet: run `recovery init` first"]
    as_json = cli("action", "list", "--json")
    assert as_json.error_json() == {
        "error": "the database has no tables yet: run `recovery init` first",
        "field": "database"}


@pytest.mark.sqlite_only
def test_a_daily_review_prints_a_summary_and_the_structure_with_json(
        directory: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing there
    day = get_settings().today()
    human = cli("review", "run", "daily", "--as-of", day.strftime("%d/%m/%Y"))
    assert human.exit_code == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[:2] == ["daily cycle done", f"as of {day:%d/%m/%Y}"]
    assert "escalated: none" in lines
    assert not any("{" in line or "[" in line for line in lines), lines
    again = cli("review", "run", "daily", "--as-of", day.isoformat(), "--json")
    data = again.json()
    assert data["as_of"] == day.isoformat() and isinstance(data["ratings"], dict)


@pytest.mark.sqlite_only
def test_the_cli_finds_the_running_demo_from_demo_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "demo-home"
    home.mkdir()
    (home / "demo.json").write_text(json.dumps({"pid": 1, "port": 4311}) + "\n")
    monkeypatch.setenv("RECOVERY_HOME", str(home))
    for name in ("RECOVERY_PREFECT_API_URL", "RECOVERY_PREFECT_UI_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.prefect_api_url == "http://127.0.0.1:4311/api"
    assert settings.prefect_ui_url == "http://127.0.0.1:4311"
    monkeypatch.setenv("RECOVERY_PREFECT_API_URL", "http://127.0.0.1:4999/api")
    get_settings.cache_clear()
    assert get_settings().prefect_api_url == "http://127.0.0.1:4999/api"  # the env wins
    get_settings.cache_clear()


@pytest.mark.sqlite_only
def test_doctor_names_the_port_it_tried_and_where_it_looked(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recovery.adapters import prefect_api

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("RECOVERY_PREFECT_API_URL", raising=False)
    monkeypatch.setattr(prefect_api, "_api_source", [])
    get_settings.cache_clear()
    home = get_settings().home
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    [line] = [c["detail"] for c in result.json() if c["name"] == "prefect server"]
    assert line.endswith(
        f"; tried port 4200 (from the default); looked for a running demo in "
        f"{(home / 'demo.json').resolve()}: none there"), line


@pytest.mark.sqlite_only
def test_dates_are_printed_as_they_are_read(directory: str) -> None:
    """The human line prints the day first; the same text is accepted back."""
    today = get_settings().today()
    shown = (today + timedelta(days=90)).strftime("%d/%m/%Y")
    done = cli("action", "extend", REF, "--deadline", shown, "--control-change",
               "Second senior on every shift from Monday", "--by",
               "provider.lead@harbourcare.example", "--json")
    assert done.exit_code == 0, done.stderr
    assert done.json()["deadline"] == (today + timedelta(days=90)).isoformat()


@pytest.mark.sqlite_only
def test_a_cycle_summary_words_counts_lists_and_flags() -> None:
    from recovery.cli.admin import cycle_summary

    text = cycle_summary("weekly", {
        "as_of": "2026-12-03", "flow_run_id": "x", "ratings": {"on_track": 2, "off_track": 0,
                                                               "not_yet_evidenced": 1},
        "escalated": [], "reopened": ["QUAY-MED-001"], "emailed": True, "skipped": None,
        "packs": 3})
    assert text.splitlines() == [
        "weekly cycle done", "as of 03/12/2026", "ratings: 2 on track, 1 not yet evidenced",
        "escalated: none", "reopened: QUAY-MED-001", "emailed: yes", "packs: 3"]
