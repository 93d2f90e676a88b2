"""The product's calls to the Prefect API: start lifecycle runs, answer their waits.

The CLI uses these so that `recovery signoff` and `recovery closure request` resume the
same suspended run a reviewer would resume from the UI, with the same form validation.
"""

from __future__ import annotations

import os
import time
from typing import Any
from uuid import UUID

import httpx

from models.errors import InvalidInput, RuleRefused
from recovery.adapters import db
from recovery.adapters import repository as repo
from recovery.adapters.orchestration import PrefectBusy, PrefectUnavailable
from recovery.settings import get_settings

LIFECYCLE_DEPLOYMENT = "high-risk-action/high-risk-action"


def deployment_missing(name: str) -> PrefectUnavailable:
    return PrefectUnavailable(
        f"the deployment {name} is not on the Prefect server at {api_url()}: start "
        f"`recovery serve` (or `make run`)")


def run_missing(ref: str, flow_run_id: str) -> PrefectUnavailable:
    return PrefectUnavailable(
        f"the lifecycle run {flow_run_id} of {ref} is not on the Prefect server at "
        f"{api_url()}: is PREFECT_API_URL the server that started it?")


_api_source: list[str] = []


def api_url() -> str:
    """Never let Prefect fall back to an ephemeral server: the CLI talks to the real one."""
    given = os.environ.get("PREFECT_API_URL")
    if not _api_source:
        _api_source.append("PREFECT_API_URL" if given else get_settings().prefect_api_source)
    url = given or get_settings().prefect_api_url
    os.environ["PREFECT_API_URL"] = url
    return url


def api_source() -> str:
    """Where the URL `api_url` gives came from: PREFECT_API_URL, RECOVERY_PREFECT_API_URL,
    the running demo's demo.json, or the default."""
    api_url()
    return _api_source[0]


def auth_headers() -> dict[str, str]:
    """The header Prefect's own client sends when PREFECT_API_AUTH_STRING ("user:password")
    is set (the server compares the decoded string with PREFECT_SERVER_API_AUTH_STRING)."""
    import base64

    value = os.environ.get("PREFECT_API_AUTH_STRING")
    if value is None:  # a Prefect profile or temporary setting may carry it
        from prefect.settings import get_current_settings

        secret = get_current_settings().api.auth_string
        value = secret.get_secret_value() if secret is not None else None
    if not value:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


def check_server() -> None:
    """The server answers and accepts our credentials. `/health` answers anyone, even with
    API auth on, so an authenticated call follows it: a missing or wrong
    PREFECT_API_AUTH_STRING is reported here, not as a 401 in the middle of a command."""
    url = api_url().rstrip("/")
    try:
        response = httpx.get(f"{url}/health", timeout=15)  # a busy server is not a down one
        response.raise_for_status()
        response = httpx.get(f"{url}/admin/version", headers=auth_headers(), timeout=15)
        if response.status_code == 401:
            raise PrefectUnavailable(
                f"{url}: 401 Unauthorized: the server has API auth on; set "
                f"PREFECT_API_AUTH_STRING (user:password) to its auth string")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise PrefectUnavailable(
            f"no Prefect server answers at {url} ({type(exc).__name__}): start it "
            f"(`make run` starts it and `recovery serve`)") from None


def run_name(ref: str, title: str) -> str:
    return f"{ref} · {title}"[:120]


def start_lifecycle(ref: str) -> str:
    """Start (once) the lifecycle run of an action and remember its id."""
    check_server()
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from recovery.adapters import tags as run_tags

    with db.unit_of_work() as session:
        row = repo.get_action(session, ref)
        if row.flow_run_id:
            return row.flow_run_id
        name, tags = run_name(row.ref, row.title), run_tags.for_action(session, row)
        # the same start asked twice (a retry, two operators) creates one run
        # (each reopening by a person starts one new run of its own)
        reopened = repo.times_reopened(session, row.ref)
        key = (f"lifecycle:{row.ref}:{row.created_at.isoformat()}:{row.monitoring_since}"
               + (f":reopened-{reopened}" if reopened else ""))
        queue = None
        if get_settings().work_pool_queues:
            queue = "high-risk" if row.risk_level == "high" else "routine"
    try:
        flow_run = run_deployment(
            LIFECYCLE_DEPLOYMENT, parameters={"action_ref": ref}, timeout=0,
            flow_run_name=name, tags=tags, idempotency_key=key, as_subflow=False,
            work_queue_name=queue,
        )
    except ObjectNotFound:
        raise deployment_missing(LIFECYCLE_DEPLOYMENT) from None
    assert isinstance(flow_run, FlowRun)  # a sync caller gets the run, not a coroutine
    with db.unit_of_work() as session:
        row = repo.get_action(session, ref, for_update=True)
        row.flow_run_id = str(flow_run.id)
        session.add(row)
    return str(flow_run.id)


def _client() -> Any:
    from prefect import get_client

    api_url()
    return get_client(sync_client=True)


def _waiting(flow_run_id: str, *, timeout: float) -> tuple[str, dict[str, str]] | None:
    """(pause key, input keyset) of a suspended run, once its input schema is stored."""
    from prefect.input import read_flow_run_input

    deadline = time.monotonic() + timeout
    with _client() as client:
        while True:
            run = client.read_flow_run(UUID(flow_run_id))
            state = run.state
            if state is not None and state.is_paused() and state.state_details.pause_key:
                keyset = state.state_details.run_input_keyset or {}
                if keyset and read_flow_run_input(keyset["schema"], UUID(flow_run_id)):
                    return str(state.state_details.pause_key), dict(keyset)
            if state is not None and state.is_final():
                return None
            if time.monotonic() > deadline:
                return None
            time.sleep(0.3)


def _paused_under(flow_run_id: str, key: str) -> bool:
    """Whether the run still waits under `key` (not resumed, not moved to another wait)."""
    with _client() as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    return bool(state is not None and state.is_paused()
                and state.state_details.pause_key == key)


def waiting_key(flow_run_id: str, *, timeout: float = 30.0) -> str | None:
    """The pause key a suspended run waits under, once its input schema is stored."""
    found = _waiting(flow_run_id, timeout=timeout)
    return found[0] if found else None


#: The answers of a busy server: Prefect's client retries them with backoff before raising.
BUSY_STATUS = {408, 429, 502, 503, 504}


def _busy(exc: BaseException) -> bool:
    from prefect.exceptions import PrefectHTTPStatusError

    return isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code in BUSY_STATUS


def busy_refusal(what: str) -> PrefectBusy:
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

    tries = PREFECT_CLIENT_MAX_RETRIES.value() + 1
    return PrefectBusy(
        f"the Prefect server at {api_url()} was too busy to take this {what} ({tries} tries "
        f"over about {2 ** tries - 2} s): nothing was recorded and the run still waits; "
        "try again in a minute")


def resume_wait(ref: str, expected_prefix: str, run_input: dict[str, Any]) -> str:
    """Resume the run of `ref` waiting under a key starting with `expected_prefix`.
    Returns the key answered. The server validates the form; refusals come back as
    InvalidInput naming the field. A server busy past every retry raises PrefectBusy,
    having checked that the answer was not taken."""
    check_server()
    with db.unit_of_work() as session:
        row = repo.get_action(session, ref)
    if not row.flow_run_id:
        raise RuleRefused("sign-off", [f"{row.ref} has no lifecycle run; run "
                                       f"`recovery action start {row.ref}`"])
    from prefect.exceptions import ObjectNotFound

    try:
        waiting = _waiting(row.flow_run_id, timeout=30.0)
    except ObjectNotFound:
        raise run_missing(row.ref, row.flow_run_id) from None
    except Exception as exc:
        if _busy(exc):
            raise busy_refusal("answer") from None
        raise
    key = waiting[0] if waiting else None
    if waiting is None or key is None or not key.startswith(expected_prefix):
        raise RuleRefused("sign-off", [
            f"{row.ref} is not waiting for {expected_prefix.rstrip('-').replace('-', ' ')} "
            f"(status {row.status}; run waiting on: {key or 'nothing'})"])
    return answer_wait(row.ref, row.flow_run_id, waiting, run_input)


def answer_wait(ref: str, flow_run_id: str, waiting: tuple[str, dict[str, str]],
                run_input: dict[str, Any]) -> str:
    """Resume `flow_run_id` with `run_input` as the answer to the wait `waiting` (its pause
    key and input keyset, read just before). Refused, changing nothing, when the run took
    another answer to that wait first, even if it already waits for something else."""
    from prefect.exceptions import NotPausedError
    from prefect.flow_runs import resume_flow_run

    key = waiting[0]
    taken = RuleRefused("sign-off", [
        f"{ref} stopped waiting under {key} before this submission arrived: another "
        f"submission was taken first; nothing was changed by this one"])
    try:
        resume_flow_run(UUID(flow_run_id), run_input=run_input)
    except NotPausedError:
        raise taken from None
    except RuntimeError as exc:
        message = str(exc).removeprefix("Cannot resume this run: ")
        if "not paused" in message or not _paused_under(flow_run_id, key):
            # the other submission was taken and the run already waits for something else:
            # the server checked this answer against that next wait's form, not this one's
            raise taken from None
        field = "input"
        for name in run_input:
            if f"'{name}'" in message:
                field = name
                break
        from models.signoff import FORM_RULES

        raise InvalidInput(field, FORM_RULES.get(field, message)) from None
    except Exception as exc:
        if not _busy(exc):
            raise
        # Prefect's client retried with backoff and the server stayed busy; its resume is
        # one transaction, so the answer is either stored with the run resumed, or absent
        if _taken_as(flow_run_id, waiting, run_input) is None:
            raise busy_refusal("answer") from None
    # At the same moment as another submission, the server may have aborted this resume
    # without an error (the run was no longer paused) and stored the other answer: report
    # success only when the answer the run takes is this one.
    answered = _taken_as(flow_run_id, waiting, run_input)
    if answered is None:
        raise taken
    return answered


def _taken_as(flow_run_id: str, waiting: tuple[str, dict[str, str]],
              run_input: dict[str, Any]) -> str | None:
    """The pause key under which the run stored `run_input` as its answer, or None."""
    from prefect.input import read_flow_run_input

    key = waiting[0]

    def stored_under(response_key: str) -> Any:
        try:
            return read_flow_run_input(response_key, UUID(flow_run_id))
        except Exception:  # noqa: BLE001 - nothing stored for this wait: not this one either
            return None

    if stored_under(waiting[1]["response"]) == run_input:
        return key
    # The other answer was refused (a wrong code) and the run at once waited again under
    # the next key with the same form: the server took this answer for that wait. Its
    # response key is this one's with the pause key moved on (Prefect prefixes both with
    # the paused state's name, so it is derived from the keyset read, not built anew).
    base, number = key.rsplit("-", 1)
    after = f"{base}-{int(number) + 1}"
    if stored_under(waiting[1]["response"].replace(key, after, 1)) == run_input:
        return after
    return None


def wait_for_outcome(ref: str, pause_key: str, *, timeout: float = 90.0) -> list[str] | None:
    """After a resume, wait until the run has processed the input; its outcome detail."""
    from sqlmodel import select

    from recovery.adapters.tables import WaitRow

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.unit_of_work() as session:
            row = repo.get_action(session, ref)
            wait = session.exec(select(WaitRow).where(WaitRow.action_id == row.id,
                                                      WaitRow.pause_key == pause_key)).first()
            if wait is not None:
                return [wait.outcome, *wait.detail]
        time.sleep(0.3)
    return None


def wait_for_gate(ref: str, *, timeout: float = 60.0) -> tuple[bool, list[str]] | None:
    """After a closure request, wait for the gate's verdict on it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.unit_of_work() as session:
            row = repo.get_action(session, ref)
            request = repo.latest_closure_request(session, row.id or 0)
            if request is not None and request.gate_passed is not None:
                return bool(request.gate_passed), list(request.gate_reasons)
        time.sleep(0.3)
    return None


def nudge_lifecycle(ref: str) -> None:
    """A plan revision was recorded: wake the run waiting for it. Raises
    PrefectUnavailable when the server, or the run on it, is not there."""
    from prefect.exceptions import ObjectNotFound
    from prefect.flow_runs import resume_flow_run

    check_server()
    with db.unit_of_work() as session:
        row = repo.get_action(session, ref)
    if not row.flow_run_id:
        return
    try:
        key = waiting_key(row.flow_run_id, timeout=2)
        if key and key.startswith("plan-revision-"):
            resume_flow_run(UUID(row.flow_run_id), run_input={"plan_version": row.plan_version})
        elif key:  # a sign-off reassigned while the server was away
            wake_answered_wait(ref, timeout=2)
    except ObjectNotFound:
        raise run_missing(row.ref, row.flow_run_id) from None
    except RuntimeError:  # woken meanwhile by another revision or the UI
        return


def wake_answered_wait(ref: str, *, timeout: float = 10.0) -> bool:
    """Wake the run of `ref` when the wait it is suspended in was answered outside the run
    (a sign-off reassigned to a stand-in): it starts again from the top and waits under the
    next key, which the app database now derives. Its form cannot be resumed empty (the
    server checks the answer against the form), so the suspended state is moved on as a
    resume moves it: Scheduled, named "Resuming". True when a run was woken. Raises
    PrefectUnavailable when the server, or the run on it, is not there."""
    from datetime import UTC, datetime

    from prefect.exceptions import ObjectNotFound
    from prefect.states import Scheduled

    check_server()
    with db.unit_of_work() as session:
        row = repo.get_action(session, ref)
    if not row.flow_run_id:
        return False
    try:
        key = waiting_key(row.flow_run_id, timeout=timeout)
        if not key:
            return False
        with db.unit_of_work() as session:
            answered = repo.already_processed(session, row.id or 0, key) is not None
        if not answered or not _paused_under(row.flow_run_id, key):
            return False
        with _client() as client:
            client.set_flow_run_state(
                UUID(row.flow_run_id), force=True,
                state=Scheduled(scheduled_time=datetime.now(UTC), name="Resuming"))
    except ObjectNotFound:
        raise run_missing(row.ref, row.flow_run_id) from None
    return True


def start_or_explain(ref: str) -> str | None:
    """Start the lifecycle run for `ref`; None when started, else one line saying what is
    missing and how to start it (the action stays a draft that `recovery action start REF`
    starts later)."""
    try:
        start_lifecycle(ref)
    except PrefectUnavailable as exc:
        return f"{exc}; {ref} stays a draft: then run `recovery action start {ref}`"
    return None


def nudge(ref: str) -> str | None:
    """A revision arrived: wake the run that waits on it. None when woken (or nothing
    waits), else one line saying what is missing and how to wake it later."""
    try:
        nudge_lifecycle(ref)
    except PrefectUnavailable as exc:
        return (f"{exc}; the revision of {ref} is recorded but its run was not woken: then "
                f"run `recovery action start {ref}`")
    return None
