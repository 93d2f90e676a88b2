"""Shared helpers for the integration tests: database snapshots, plans, CLI runners."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text
from sqlmodel import Session, SQLModel
from typer.testing import CliRunner

from models.action import ActionPlan
from models.planfile import parse_people, plan_from_mapping
from recovery.adapters import db
from recovery.application import action_plans, registry
from recovery.cli import app

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
RECOVERY_BIN = REPO_ROOT / ".venv" / "bin" / "recovery"
SEED_PLANS = {
    "ROSE-SG-001": EXAMPLES / "safeguarding-rose-house.yaml",
    "QUAY-MED-001": EXAMPLES / "medicines-quay-house.yaml",
    "ELM-STF-001": EXAMPLES / "staffing-elm-court.yaml",
}
#: Every table the product owns.
TABLES = [t.name for t in SQLModel.metadata.sorted_tables]


# ---------------------------------------------------------------- database snapshots


def dump_tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in a stable order: the before/after picture of a command."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine_for(url).connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            rows = conn.execute(table.select()).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def row_counts(url: str) -> dict[str, int]:
    with db.engine_for(url).connect() as conn:
        return {
            t: int(conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one())
            for t in TABLES
        }


# ---------------------------------------------------------------- seeding and plans


def seed_directory() -> None:
    """The built-in catalogue and the example provider's staff directory."""
    with db.unit_of_work() as session:
        registry.initialise(session)
        registry.import_people(session, parse_people((EXAMPLES / "people.yaml").read_bytes()))


def plan_mapping(**overrides: Any) -> dict[str, Any]:
    """A valid high-risk Rose House safeguarding plan (template-filled) as a YAML mapping.
    Dates are fixed; storage tests pass `today` explicitly."""
    plan: dict[str, Any] = {
        "location": "Rose House",
        "title": "Same-day management review of safeguarding concerns",
        "template": "safeguarding-same-day-review",
        "risk_domain": "safeguarding",
        "quality_statements": ["safe.safeguarding"],
        "risk": {"potential_harm": 5, "people_affected": 3, "likelihood_of_recurrence": 4,
                 "regulatory_impact": 4, "control_strength": 4},
        "accountable_lead": "sg.lead@rose.example",
        "senior_reviewer": "ni@harbourcare.example",
        "baseline": {"issue": "Delayed escalation decisions", "value": 60,
                     "as_of": date(2026, 1, 5)},
        "target": {"measure": "Concerns with same-day review", "direction": "at_least",
                   "value": 95, "deadline": date(2026, 3, 1)},
        "interim_controls": ["Registered manager reviews every open concern daily"],
    }
    for key, value in overrides.items():
        if value is None:
            plan.pop(key, None)
        else:
            plan[key] = value
    return plan


def relative_plan(today: date, **overrides: Any) -> dict[str, Any]:
    """The same plan with dates around `today` (for CLI runs, which use the real date)."""
    dated: dict[str, Any] = {
        "baseline": {"issue": "Delayed escalation decisions", "value": 60,
                     "as_of": today - timedelta(days=10)},
        "target": {"measure": "Concerns with same-day review", "direction": "at_least",
                   "value": 95, "deadline": today + timedelta(days=60)},
    }
    return plan_mapping(**{**dated, **overrides})


def make_plan(**overrides: Any) -> ActionPlan:
    return plan_from_mapping(plan_mapping(**overrides))


def write_plan(path: Path, mapping: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def business_day(day: date) -> Iterator[None]:
    """Record what the block records on `day` (RECOVERY_BUSINESS_DATE), as a provider
    replaying that day would: a pack as of a past date reads what was recorded by then."""
    from recovery.settings import get_settings

    before = os.environ.get("RECOVERY_BUSINESS_DATE")
    os.environ["RECOVERY_BUSINESS_DATE"] = day.isoformat()
    get_settings.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RECOVERY_BUSINESS_DATE", None)
        else:
            os.environ["RECOVERY_BUSINESS_DATE"] = before
        get_settings.cache_clear()


def open_plan(plan: ActionPlan, actor: str = "test") -> str:
    with db.unit_of_work() as session:
        return action_plans.open_action(session, plan, actor=actor).ref


# ---------------------------------------------------------------- the CLI


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error_json(self) -> Any:
        return json.loads(self.stderr)

    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


_runner = CliRunner()


def cli(*args: str) -> Outcome:
    """The CLI in-process (the environment is what the `database_url` fixture set)."""
    result = _runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return Outcome(result.exit_code, result.stdout, result.stderr)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["COLUMNS"] = "200"
    return env


def run_recovery(*args: str, timeout: float = 60) -> Outcome:
    """The real `recovery` executable in a subprocess."""
    proc = subprocess.run(
        [str(RECOVERY_BIN), *[str(a) for a in args]], env=subprocess_env(), cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def start_recovery(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(RECOVERY_BIN), *[str(a) for a in args]], env=subprocess_env(), cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> Outcome:
    stdout, stderr = proc.communicate(timeout=timeout)
    return Outcome(proc.returncode, stdout, stderr)


def session_for(url: str) -> Session:
    return Session(db.engine_for(url), expire_on_commit=False)
