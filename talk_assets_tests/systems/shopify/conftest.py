"""One Shopify sandbox per test session, reset before every test that asks for `shop`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from talk_assets import config
from talk_assets.core.http import RetryPolicy
from talk_assets.sandbox.server import SandboxServer
from talk_assets.systems.shopify.client import Client
from talk_assets.systems.shopify.sandbox import App

TOKEN = config.SHOPIFY.settings["access_token"].default
API = "/admin/api/2026-07"


class Shop:
    """The running sandbox plus helpers to call it the way any HTTP client would."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.url = server.url
        self.http = requests.Session()
        self.http.headers["X-Shopify-Access-Token"] = TOKEN

    def api(self, method: str, path: str, **kw: object) -> requests.Response:
        target = path if path.startswith("http") else f"{self.url}{API}/{path}"
        return self.http.request(method, target, timeout=10, **kw)

    def control(self, method: str, path: str, body: dict | None = None) -> dict:
        resp = requests.request(method, f"{self.url}/_sandbox/{path}", json=body, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def faults(self, **settings: object) -> None:
        self.control("PUT", "faults", {"rate_limit_speed": 50, **settings})

    def advance(self, seconds: float) -> None:
        self.control("POST", "clock", {"advance_s": seconds})

    @property
    def app(self) -> App:
        return self.server.app  # type: ignore[return-value]


@pytest.fixture(scope="session")
def server() -> Iterator[SandboxServer]:
    srv = SandboxServer(App(seed=7, size=40), port=0).start()
    yield srv
    srv.stop()


@pytest.fixture
def shop(server: SandboxServer) -> Shop:
    s = Shop(server)
    s.control("POST", "reset")
    s.faults()  # no faults; the bucket leaks 50x faster so tests never wait real seconds
    return s


@pytest.fixture
def client(shop: Shop) -> Iterator[Client]:
    c = Client(shop.url, TOKEN, retry=RetryPolicy(max_retries=5, backoff=0.01, max_backoff=0.05))
    yield c
    c.close()
