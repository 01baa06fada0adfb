"""The sandbox control API (`/_sandbox/...`): open on loopback, token-guarded elsewhere, no secrets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
import requests

from talk_assets.devserver import ui_banner_url
from talk_assets.sandbox.server import (
    CONTROL_TOKEN_ENV,
    CONTROL_TOKEN_HEADER,
    Request,
    SandboxServer,
    control_refusal,
)
from talk_assets.systems.customcrm.sandbox import App as CrmApp
from talk_assets.systems.shopify.sandbox import App as ShopifyApp

TOKEN = "control-token-for-the-test"


@pytest.fixture(scope="module")
def servers() -> Iterator[list[SandboxServer]]:
    started = [SandboxServer(CrmApp(seed=3, size=20), port=0).start(),
               SandboxServer(ShopifyApp(seed=3, size=20), port=0).start()]
    yield started
    for s in started:
        s.stop()


@pytest.mark.parametrize("client", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_loopback_may_use_the_control_api_without_a_token(client: str) -> None:
    assert control_refusal(client, None, None) is None
    assert control_refusal(client, None, TOKEN) is None


@pytest.mark.parametrize("client", ["192.0.2.10", "10.1.2.3", "::ffff:192.0.2.10", "2001:db8::1", "garbage"])
def test_any_other_interface_needs_the_token(client: str) -> None:
    without_setting = control_refusal(client, TOKEN, None)
    assert without_setting and CONTROL_TOKEN_ENV in without_setting
    assert CONTROL_TOKEN_HEADER in (control_refusal(client, None, TOKEN) or "")
    assert control_refusal(client, "wrong", TOKEN)
    assert control_refusal(client, TOKEN, TOKEN) is None


@pytest.mark.parametrize("sub", ["info", "stats", "reset", "faults", "clock"])
def test_the_app_refuses_a_remote_caller_with_403_and_does_nothing(
        servers: list[SandboxServer], sub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the app's own dispatch with a remote peer address (the test cannot be remote itself)."""
    app = servers[0].app
    monkeypatch.delenv(CONTROL_TOKEN_ENV, raising=False)
    before = app.clock_offset
    body = json.dumps({"advance_s": 3600}).encode()
    resp = app.handle(Request("POST", f"/_sandbox/{sub}", {}, body, client="192.0.2.10"))
    assert resp.status == 403
    assert CONTROL_TOKEN_ENV in resp.body["error"]
    assert app.clock_offset == before
    monkeypatch.setenv(CONTROL_TOKEN_ENV, TOKEN)
    resp = app.handle(Request("GET", "/_sandbox/info", {CONTROL_TOKEN_HEADER: TOKEN}, b"", client="192.0.2.10"))
    assert resp.status == 200


def test_loopback_http_still_drives_the_control_api(servers: list[SandboxServer],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONTROL_TOKEN_ENV, TOKEN)  # a token set does not lock out this machine
    for s in servers:
        assert requests.get(f"{s.url}/_sandbox/stats", timeout=10).status_code == 200
        assert requests.post(f"{s.url}/_sandbox/reset", json={}, timeout=10).json()["reset"] is True


def test_info_returns_no_credentials(servers: list[SandboxServer]) -> None:
    for s in servers:
        r = requests.get(f"{s.url}/_sandbox/info", timeout=10)
        assert r.status_code == 200
        body = r.json()
        assert "credentials" not in body
        assert body["system"] == s.app.name and body["api_root"] == s.app.api_root()
        secrets = [v for v in s.app.credentials().values() if v not in s.app.api_root()]  # not the API version
        assert secrets and not any(v in r.text or v.split()[-1] in r.text for v in secrets)


def test_run_banner_names_the_host_the_ui_listens_on() -> None:
    assert ui_banner_url("127.0.0.1", 3000) == "http://127.0.0.1:3000"
    assert ui_banner_url("192.0.2.7", 3100) == "http://192.0.2.7:3100"
    assert ui_banner_url("::1", 3000) == "http://[::1]:3000"
    wildcard = ui_banner_url("0.0.0.0", 3000)
    assert wildcard.startswith("http://0.0.0.0:3000") and "127.0.0.1" not in wildcard
    assert f"http://{socket.gethostname()}:3000" in wildcard
