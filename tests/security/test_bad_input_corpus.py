"""The bad-input corpus (tests/security/corpus.py) through the command line: every row on
SQLite, the rows marked `postgres` and every tracker row on PostgreSQL too. One clear
error, and the database dumped before and after is byte-for-byte the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from recovery.settings import get_settings
from tests.integration.helpers import Outcome, cli
from tests.security.conftest import World
from tests.security.corpus import (
    CLI,
    CLOSURE_FORM,
    EVIDENCE,
    SIGNOFF_DOMAIN,
    SIGNOFF_FORM,
    TRACKER,
    Case,
    TrackerCase,
)

#: An error line may quote what was typed, but never at length.
MAX_LINE = 1500

PG_CASES = [c for c in CLI if c.postgres]


def check_human(case: Case, result: Outcome) -> None:
    assert result.exit_code == case.exit_code, (result.exit_code, result.stderr[:3000])
    assert result.stdout == ""
    lines = result.stderr_lines()
    assert all(len(line) < MAX_LINE for line in lines), [len(line) for line in lines]
    if case.exit_code == 2:
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"error {case.field}: "), lines
        assert case.says in lines[0], (case.says, lines[0])
    else:
        assert lines[0] == f"refused by {case.field}:", lines
        assert len(lines) >= 2 and all(line.startswith("  - ") for line in lines[1:]), lines
        assert any(case.says in line for line in lines[1:]), (case.says, lines)


def check_json(case: Case, result: Outcome) -> None:
    assert result.exit_code == case.exit_code, result.stderr[:3000]
    assert result.stdout == ""
    assert len(result.stderr_lines()) == 1, result.stderr_lines()
    assert len(result.stderr) < MAX_LINE
    error = result.error_json()
    assert error["field"] == case.field, error
    assert isinstance(error["error"], str) and error["error"]
    if case.exit_code == 2:
        assert set(error) == {"error", "field"}
        assert case.says.replace("\\n", "\n") in error["error"] or case.says in error["error"]
    else:
        assert error["error"] == f"refused by {case.field}"
        assert any(case.says in reason for reason in error["reasons"]), error


def run_case(case: Case, world: World, tmp_path: Path) -> None:
    args = case.args(tmp_path, get_settings().today())
    before = world.dump()
    check_human(case, cli(*args))
    check_json(case, cli(*args, "--json"))
    assert world.dump() == before, "the database changed"


def test_the_corpus_is_large_and_covers_every_kind() -> None:
    forms = len(SIGNOFF_FORM) + len(SIGNOFF_DOMAIN) + len(CLOSURE_FORM)
    assert len(CLI) + forms + len(TRACKER) >= 60
    assert len(CLI) >= 60
    assert len({c.name for c in CLI}) == len(CLI), "case names are unique"
    assert {c.exit_code for c in CLI} == {2, 3}
    assert len(PG_CASES) >= 15


@pytest.mark.parametrize("case", CLI, ids=[c.name for c in CLI])
def test_refused_on_sqlite_and_nothing_written(
    case: Case, sqlite_world: World, tmp_path: Path, no_pwned_file: None
) -> None:
    run_case(case, sqlite_world, tmp_path)


@pytest.mark.postgres
@pytest.mark.parametrize("case", PG_CASES, ids=[c.name for c in PG_CASES])
def test_refused_on_postgresql_and_nothing_written(
    case: Case, postgres_world: World, tmp_path: Path, no_pwned_file: None
) -> None:
    run_case(case, postgres_world, tmp_path)


def run_tracker_case(case: TrackerCase, world: World, tmp_path: Path) -> None:
    args = case.args(tmp_path, get_settings().today())
    before = world.dump()

    human = cli(*args)
    assert human.exit_code == 2, (human.stdout, human.stderr[:2000])
    assert human.stdout == ""
    lines = human.stderr_lines()
    assert lines[0].startswith("error file: "), lines
    assert case.says in "\n".join(lines), (case.says, lines)
    assert all(len(line) < MAX_LINE for line in lines)
    if case.column:
        assert "nothing was imported" in lines[0], lines
        rows = [line for line in lines[1:] if f"column '{case.column}'" in line]
        assert rows and case.says in rows[0], (case.says, lines)
        assert not any("row 2," in line for line in lines), "the valid row has no error"

    machine = cli(*args, "--json")
    assert machine.exit_code == 2 and len(machine.stderr_lines()) == 1
    error = machine.error_json()
    assert error["field"] == "file"
    if case.column:
        assert any(e["column"] == case.column for e in error["errors"]), error

    assert world.dump() == before, "the database changed"


@pytest.mark.parametrize("case", TRACKER, ids=[c.name for c in TRACKER])
def test_tracker_import_refused_and_nothing_written(
    case: TrackerCase, sqlite_world: World, tmp_path: Path
) -> None:
    run_tracker_case(case, sqlite_world, tmp_path)


@pytest.mark.postgres
@pytest.mark.parametrize("case", TRACKER, ids=[c.name for c in TRACKER])
def test_tracker_import_refused_on_postgresql_and_nothing_written(
    case: TrackerCase, postgres_world: World, tmp_path: Path
) -> None:
    run_tracker_case(case, postgres_world, tmp_path)


@pytest.mark.parametrize("case", EVIDENCE, ids=[c.name for c in EVIDENCE])
def test_evidence_import_refused_and_nothing_written(
    case: TrackerCase, sqlite_world: World, tmp_path: Path
) -> None:
    run_tracker_case(case, sqlite_world, tmp_path)


@pytest.mark.postgres
@pytest.mark.parametrize("case", EVIDENCE, ids=[c.name for c in EVIDENCE])
def test_evidence_import_refused_on_postgresql_and_nothing_written(
    case: TrackerCase, postgres_world: World, tmp_path: Path
) -> None:
    run_tracker_case(case, postgres_world, tmp_path)
