"""One PowerOffice sandbox for the whole module set, reset before every test."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from talk_assets.config import POWEROFFICE
from talk_assets.core.http import Pacer, RetryPolicy
from talk_assets.sandbox.server import SandboxServer
from talk_assets.systems.poweroffice.client import Client
from talk_assets.systems.poweroffice.sandbox import App

APP_KEY = POWEROFFICE.settings["app_key"].default
CLIENT_KEY = POWEROFFICE.settings["client_key"].default
SUB_KEY = POWEROFFICE.settings["subscription_key"].default


class Sandbox:
    """The running server plus shortcuts for raw HTTP calls at the API boundary."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.app: App = server.app  # type: ignore[assignment]
        self.url = server.url
        self.http = requests.Session()

    def control(self, method: str, sub: str, body: dict[str, Any] | None = None) -> Any:
        resp = self.http.request(method, f"{self.url}/_sandbox/{sub}", json=body)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def token(self) -> str:
        basic = base64.b64encode(f"{APP_KEY}:{CLIENT_KEY}".encode()).decode()
        resp = self.http.post(f"{self.url}/OAuth/Token", data={"grant_type": "client_credentials"},
                              headers={"Authorization": f"Basic {basic}", "Ocp-Apim-Subscription-Key": SUB_KEY})
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}", "Ocp-Apim-Subscription-Key": SUB_KEY}

    def get(self, path: str, **kw: Any) -> requests.Response:
        if "headers" not in kw:
            kw["headers"] = self.headers()
        return self.http.get(f"{self.url}/v2/{path}", **kw)

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "stats")


@pytest.fixture(scope="session")
def po_server() -> Iterator[SandboxServer]:
    server = SandboxServer(App(seed=7, size=40), port=0).start()
    yield server
    server.stop()


@pytest.fixture
def sb(po_server: SandboxServer) -> Sandbox:
    """A clean sandbox: reseeded, no faults, rate limit off (tests that need it turn it on)."""
    s = Sandbox(po_server)
    s.control("POST", "reset")
    s.control("PUT", "faults", {"rate_limit_enabled": False, "rate_limit_speed": 1.0})
    s.control("PUT", "token_ttl", {"seconds": 1200})
    return s


def make_client(sb: Sandbox, **kw: Any) -> Client:
    kw.setdefault("pacer", Pacer(min_interval=0.0))
    kw.setdefault("retry", RetryPolicy(max_retries=5, backoff=0.01, max_backoff=0.05))
    return Client(sb.url, APP_KEY, CLIENT_KEY, SUB_KEY, **kw)


@pytest.fixture
def client(sb: Sandbox) -> Iterator[Client]:
    c = make_client(sb)
    yield c
    c.close()
