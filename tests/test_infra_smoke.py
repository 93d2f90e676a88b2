"""Smoke tests for the test infrastructure: a real Prefect server + served flow that suspends
for input, and the SMTP mail sink fed by yagmail."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from devstack.mailsink import MailSink
from tests.support.prefect_server import (
    PrefectServer,
    ServeProcess,
    wait_for_final,
    wait_for_pause,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_serve(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    serve = ServeProcess(
        [sys.executable, "-m", "tests.support.demo_flows"],
        env=prefect_server.subprocess_env({"PREFECT_RUNNER_POLL_FREQUENCY": "1"}),
        cwd=REPO_ROOT,
        log_path=tmp_path_factory.mktemp("serve") / "serve.log",
    ).start()
    try:
        yield serve
    finally:
        serve.stop()


@pytest.mark.prefect
@pytest.mark.timeout(180)
def test_served_flow_suspends_and_resumes_with_input(
    prefect_server: PrefectServer, demo_serve: ServeProcess
) -> None:
    from prefect import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run
    from prefect.input import read_flow_run_input

    from tests.support.demo_flows import DEPLOYMENT_NAME

    with prefect_server.settings(), get_client(sync_client=True) as client:
        wait_until(
            lambda: client.read_deployment_by_name(DEPLOYMENT_NAME),
            timeout=60,
            message=f"deployment {DEPLOYMENT_NAME}\n{demo_serve.output()}",
        )
        label = f"smoke-{uuid.uuid4().hex[:6]}"
        # Prefect's sync/async dispatch types these calls as "X | Coroutine"; they are sync here.
        flow_run = cast(
            FlowRun, run_deployment(DEPLOYMENT_NAME, parameters={"label": label}, timeout=0)
        )

        # What is the run waiting for? The pause key and input keyset are on the state.
        run = wait_for_pause(client, flow_run.id, key=f"{label}-1", timeout=60)
        assert run.state.name == "Suspended"
        keyset = run.state.state_details.run_input_keyset
        assert keyset["schema"] == f"suspended-{label}-1-schema"
        schema = cast(dict[str, Any], read_flow_run_input(keyset["schema"], flow_run.id))
        assert schema["required"] == ["value"]
        assert schema["properties"]["value"]["minLength"] == 3
        description = cast(str, read_flow_run_input(keyset["description"], flow_run.id))
        assert "Attempt **1**" in description

        # The server validates the input against the stored schema.
        with pytest.raises(RuntimeError, match="is too short"):
            resume_flow_run(flow_run.id, run_input={"value": "x"})
        state = client.read_flow_run(flow_run.id).state
        assert state is not None and state.is_paused()

        # Refused by the flow itself: it starts from the top, gets the first input back from
        # suspend_flow_run(key=...-1), and suspends again under a new key.
        resume_flow_run(flow_run.id, run_input={"value": "again"})
        wait_for_pause(client, flow_run.id, key=f"{label}-2", timeout=60)

        resume_flow_run(flow_run.id, run_input={"value": "hello"})
        final = wait_for_final(client, flow_run.id, timeout=60)
        assert final.state.is_completed(), final.state
        assert final.state.message == "value=hello attempts=2"
        assert prefect_server.flow_run_url(flow_run.id).endswith(f"/runs/flow-run/{flow_run.id}")


def test_mail_sink_receives_yagmail_html_and_text(tmp_path: Path) -> None:
    import yagmail

    with MailSink(tmp_path / "mail", host="127.0.0.1", port=None) as sink:
        smtp = yagmail.SMTP(
            user="recovery@example.org",
            host=sink.host,
            port=sink.port,
            smtp_ssl=False,
            smtp_starttls=False,
            smtp_skip_login=True,
        )
        try:
            smtp.send(
                to="manager@example.org",
                bcc="auditor@example.org",
                subject="Sign-off needed: plan P-1",
                contents="<h1>Plan P-1</h1><p>Code: <b>123456</b></p>",
                prettify_html=False,
            )
        finally:
            smtp.close()
        [message] = sink.wait_for_messages(1, timeout=10)

    assert message["Subject"] == "Sign-off needed: plan P-1"
    assert message["To"] == "manager@example.org"
    assert message["X-Envelope-From"] == "recovery@example.org"
    assert message["X-Envelope-To"] == "manager@example.org, auditor@example.org"
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    assert html is not None and text is not None
    assert "<b>123456</b>" in html.get_content()
    assert "123456" in text.get_content()
    assert [p.name for p in sink.paths()] == [p.name for p in (tmp_path / "mail").glob("*.eml")]
    assert not list((tmp_path / "mail").glob(".incoming-*"))
