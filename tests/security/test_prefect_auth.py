"""The production profile's Prefect API auth: a real server started with
PREFECT_SERVER_API_AUTH_STRING refuses a client without the matching
PREFECT_API_AUTH_STRING (401), and `recovery doctor`'s server check, Prefect's client and
the product's calls succeed with it."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from recovery.adapters import prefect_api
from tests.security.conftest import AUTH
from tests.support.prefect_server import PrefectServer
from tests.support.recovery_stack import RECOVERY_BIN, REPO_ROOT, _clean_environ

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

@pytest.fixture
def server(auth_server: PrefectServer) -> PrefectServer:
    return auth_server


def basic(value: str) -> httpx.BasicAuth:
    user, _, password = value.partition(":")
    return httpx.BasicAuth(user, password)


def test_an_unauthenticated_client_is_refused(server: PrefectServer) -> None:
    api = server.api_url
    for request in (
        lambda auth: httpx.post(f"{api}/flow_runs/filter", json={}, auth=auth, timeout=10),
        lambda auth: httpx.post(f"{api}/deployments/filter", json={}, auth=auth, timeout=10),
        lambda auth: httpx.get(f"{api}/admin/version", auth=auth, timeout=10),
        lambda auth: httpx.post(f"{api}/flows/", json={"name": "intruder"}, auth=auth,
                                timeout=10),
    ):
        assert request(None).status_code == 401
        assert request(basic("recovery-admin:wrong")).status_code == 401
        assert request(basic(AUTH)).status_code in (200, 201)
    # what auth does not cover: the liveness probe answers anyone
    assert httpx.get(f"{api}/health", timeout=10).status_code == 200
    # and the UI is told to ask for the credentials
    settings = httpx.get(f"{server.ui_url}/ui-settings", timeout=10, follow_redirects=True)
    assert settings.status_code == 200 and settings.json()["auth"] == "BASIC"


def test_check_server_sends_the_auth_string(
    server: PrefectServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", server.api_url)
    monkeypatch.delenv("PREFECT_API_AUTH_STRING", raising=False)
    # nor from Prefect's settings: this process may have loaded them while a stack's
    # environment carried the string
    with temporary_settings(restore_defaults={PREFECT_API_AUTH_STRING}), \
            pytest.raises(ConnectionError, match="401 Unauthorized.*PREFECT_API_AUTH_STRING"):
        prefect_api.check_server()
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "recovery-admin:wrong")
    with pytest.raises(ConnectionError, match="401"):
        prefect_api.check_server()
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", AUTH)
    prefect_api.check_server()


def test_prefect_client_works_only_with_the_auth_string(server: PrefectServer) -> None:
    from prefect import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url},
                            restore_defaults={PREFECT_API_AUTH_STRING}), \
            get_client(sync_client=True) as client, \
            pytest.raises(PrefectHTTPStatusError, match="401"):
        client.read_flows()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url,
                                     PREFECT_API_AUTH_STRING: AUTH}), \
            get_client(sync_client=True) as client:
        assert "intruder" in {f.name for f in client.read_flows()}  # made with the string


def test_recovery_doctor_passes_the_server_check_with_the_auth_string(
    server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The real `recovery doctor` (without the string it fails with 401: the in-process
    check above)."""
    env = {**_clean_environ(), "RECOVERY_HOME": str(tmp_path_factory.mktemp("doctor-home")),
           "RECOVERY_PREFECT_API_URL": server.api_url, "PREFECT_API_URL": server.api_url,
           "PREFECT_API_AUTH_STRING": AUTH}
    proc = subprocess.run([str(RECOVERY_BIN), "doctor", "--json"], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["prefect server"]["ok"], checks
    # the deployments check then talks to the API with the same credentials: it answers
    # about the deployments (none served for this server, or, when an earlier module of the
    # session served some on it, served or stale), never a 401
    detail = checks["deployments"]["detail"]
    if not checks["deployments"]["ok"]:
        assert "not served" in detail or "not ready" in detail, checks
    assert "401" not in detail and "nauthori" not in detail, checks
