"""`make run` end to end: `python -m devstack.demo` brings up a real Prefect server, the mail
sink, `recovery serve` and the three examples, in a temporary working directory with its
own RECOVERY_HOME and ports; `--check` exits once they wait for plan sign-off.

The tests share one home, in file order: the first run opens everything, the second must
reuse it, and the Ctrl-C test then signs one plan off and stops the demo mid-run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.mailsink import read_message
from devstack.processes import free_port, port_in_use, wait_until

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("recovery")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "recovery.cli"]
EXAMPLES = {  # plan file -> (location, senior reviewer)
    "safeguarding-rose-house.yaml": ("Rose House", "ni@harbourcare.example"),
    "medicines-quay-house.yaml": ("Quay House", "rm@quay.example"),
    "staffing-elm-court.yaml": ("Elm Court", "provider.lead@harbourcare.example"),
}
DEMO_TIMEOUT = 600  # the demo's own waits add up to less


@dataclass
class DemoSite:
    work: Path
    home: Path
    port: int
    smtp_port: int
    env: dict[str, str]

    @property
    def mail_dir(self) -> Path:
        return self.home / "mail"

    def demo(self, *args: str, timeout: float = DEMO_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devstack.demo", *args], cwd=self.work, env=self.env,
            capture_output=True, text=True, timeout=timeout, check=False)

    def recovery(self, *args: str) -> Any:
        result = subprocess.run([*CLI, *args, "--json"], cwd=self.work, env=self.env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, f"recovery {' '.join(args)}: {result.stderr}"
        return json.loads(result.stdout)

    def actions(self) -> list[dict[str, Any]]:
        return list(self.recovery("action", "list"))

    def mails(self) -> list[Path]:
        return sorted(self.mail_dir.glob("*.eml"))

    def leftovers(self) -> list[int]:
        """Live processes started with this home: none may survive the demo."""
        marker = f"RECOVERY_HOME={self.home}\0".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes():
                    stat = (entry / "stat").read_text()
                    if stat[stat.rfind(")") + 2] != "Z":
                        found.append(int(entry.name))
            except OSError:
                continue
        return found


def _text(path: Path) -> str:
    body = read_message(path).get_body(("plain",))
    assert body is not None, path
    return str(body.get_content())


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def _assert_stopped_cleanly(site: DemoSite) -> None:
    assert not port_in_use(site.port), "the Prefect server still holds its port"
    assert not port_in_use(site.smtp_port), "the mail sink still holds its port"
    assert site.leftovers() == [], "processes of the demo outlived it"
    assert not (site.home / "demo.json").exists()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> DemoSite:
    root = tmp_path_factory.mktemp("demo")
    work, home = root / "work", root / "home"
    work.mkdir()
    port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECOVERY_", "PREFECT_"))}
    env.update({
        "RECOVERY_HOME": str(home),
        "RECOVERY_DEMO_PORT": str(port),
        "RECOVERY_SMTP_PORT": str(smtp_port),
        # what the CLI needs to reach the demo's server (the demo sets these itself)
        "RECOVERY_PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "RECOVERY_PREFECT_UI_URL": f"http://127.0.0.1:{port}",
        "COLUMNS": "200",
    })
    return DemoSite(work=work, home=home, port=port, smtp_port=smtp_port, env=env)


@pytest.fixture(scope="module")
def first_run(site: DemoSite) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = site.demo("--check")
    return result, time.monotonic() - started


@pytest.mark.prefect
@pytest.mark.slow
@pytest.mark.timeout(DEMO_TIMEOUT + 60)
def test_first_run_opens_the_three_examples_waiting_for_plan_signoff(
    site: DemoSite, first_run: tuple[subprocess.CompletedProcess[str], float]
) -> None:
    result, seconds = first_run
    print(f"first run: {seconds:.1f}s\n{result.stdout}")
    assert result.returncode == 0, _describe(result)
    assert "ready" in result.stdout

    actions = site.actions()
    assert len(actions) == 3
    assert {a["location"] for a in actions} == {loc for loc, _ in EXAMPLES.values()}
    for action in actions:
        assert action["status"] == "awaiting_plan_signoff", action
        assert action["flow_run_id"], action

    mails = site.mails()
    assert len(mails) == 3, [p.name for p in mails]
    reviewers = {loc: reviewer for loc, reviewer in EXAMPLES.values()}
    for action in actions:
        [path] = [p for p in mails
                  if str(read_message(p)["Subject"]).startswith(f"{action['ref']}:")]
        mail = read_message(path)
        assert "plan sign-off is needed" in str(mail["Subject"])
        assert str(mail["X-Envelope-To"]) == reviewers[action["location"]]
        assert action["flow_run_id"] in _text(path)  # the link to the run
    _assert_stopped_cleanly(site)


@pytest.mark.prefect
@pytest.mark.slow
@pytest.mark.timeout(DEMO_TIMEOUT + 60)
def test_second_run_reuses_everything(
    site: DemoSite, first_run: tuple[subprocess.CompletedProcess[str], float]
) -> None:
    assert first_run[0].returncode == 0, _describe(first_run[0])
    actions_before = site.actions()
    mails_before = [p.name for p in site.mails()]
    audit_before = site.recovery("audit", "show")

    started = time.monotonic()
    result = site.demo("--check")
    print(f"second run: {time.monotonic() - started:.1f}s\n{result.stdout}")
    assert result.returncode == 0, _describe(result)
    assert "ready" in result.stdout
    assert result.stdout.count("already open") == 3, result.stdout
    assert "run started" not in result.stdout

    assert site.actions() == actions_before  # same refs, same runs, same statuses
    assert [p.name for p in site.mails()] == mails_before  # no new email
    assert site.recovery("audit", "show") == audit_before  # nothing recorded at all
    assert site.recovery("audit", "verify")
    _assert_stopped_cleanly(site)


@pytest.mark.prefect
@pytest.mark.slow
@pytest.mark.timeout(DEMO_TIMEOUT + 120)
def test_ctrl_c_while_a_run_works_lets_it_reach_its_next_wait(
    site: DemoSite, first_run: tuple[subprocess.CompletedProcess[str], float]
) -> None:
    """Stopping `serve` while a flow-run process is between steps would cancel or crash the
    run for good: Ctrl-C must wait for it to suspend again."""
    assert first_run[0].returncode == 0, _describe(first_run[0])
    [rose] = [a for a in site.actions() if a["location"] == "Rose House"]
    [path] = [p for p in site.mails()
              if str(read_message(p)["Subject"]).startswith(f"{rose['ref']}:")]
    code = re.search(r"code: (\d{6})", _text(path))
    assert code is not None

    out_path = site.home / "interactive.out"
    with out_path.open("w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "devstack.demo"], cwd=site.work, env=site.env,
            stdout=out, stderr=subprocess.STDOUT, text=True)
    signoff: subprocess.Popen[str] | None = None
    try:
        wait_until(lambda: "Ready" in out_path.read_text() or demo.poll() is not None,
                   timeout=DEMO_TIMEOUT, message="the demo to be ready")
        assert demo.poll() is None, out_path.read_text()

        signoff = subprocess.Popen(
            [*CLI, "signoff", rose["ref"], "--by", "ni@harbourcare.example",
             "--code", code.group(1), "--decision", "approve",
             "--rationale", "Interim controls are proportionate and the steps are clear"],
            cwd=site.work, env=site.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        api = f"http://127.0.0.1:{site.port}/api/flow_runs/{rose['flow_run_id']}"
        wait_until(lambda: httpx.get(api, timeout=5).json()["state_type"] in
                   ("PENDING", "RUNNING"), timeout=120, interval=0.05,
                   message="the runner to pick the resumed run up")
        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends (children have own sessions)
        assert demo.wait(timeout=120) == 0, out_path.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
        if signoff is not None and signoff.poll() is None:
            signoff.wait(timeout=120)

    assert signoff is not None
    signoff_out = signoff.stdout.read() if signoff.stdout else ""
    assert signoff.returncode == 0, signoff_out
    assert "sign-off applied" in signoff_out
    _assert_stopped_cleanly(site)
    [rose_after] = [a for a in site.actions() if a["ref"] == rose["ref"]]
    assert rose_after["status"] == "in_recovery"
    # The run waits for the closure request: still resumable, not Cancelled or Crashed.
    db = sqlite3.connect(site.home / "prefect" / "prefect.db")
    try:
        row = db.execute("SELECT state_type, state_name FROM flow_run WHERE id = ?",
                         (rose["flow_run_id"],)).fetchone()
    finally:
        db.close()
    assert row == ("PAUSED", "Suspended")


def test_port_taken_by_something_else_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RECOVERY_", "PREFECT_"))}
        env.update({"RECOVERY_HOME": str(tmp_path / "home"), "RECOVERY_DEMO_PORT": str(port)})
        result = subprocess.run([sys.executable, "-m", "devstack.demo", "--check"],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=60, check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0] and "in use" in lines[0]
    assert not (tmp_path / "home").exists()  # nothing was started
