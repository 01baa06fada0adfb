"""Both custom-API sandboxes, served once per session; tests talk to them over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from talk_assets.core.http import Pacer, RetryPolicy
from talk_assets.sandbox.server import SandboxServer
from talk_assets.systems.customapi.client import CustomApiClient
from talk_assets.systems.customapi.spec import SystemSpec
from talk_assets.systems.customcrm.client import Client as CrmClient
from talk_assets.systems.customcrm.sandbox import App as CrmApp
from talk_assets.systems.customwebshop.client import Client as ShopClient
from talk_assets.systems.customwebshop.sandbox import App as ShopApp

# Valid bodies per system and entity, for create tests.
SAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "customcrm": {
        "customers": {"name": "Testfirma AS", "email": "post@testfirma.no", "country": "NO",
                      "customer_type": "company"},
        "products": {"sku": "TEST-00001-STD", "name": "Testvare", "unit_price": "100.00"},
    },
    "customwebshop": {
        "customers": {"email": "nina.test@example.no", "first_name": "Nina",
                      "billing_address": {"street": "Storgata 1", "city": "Oslo", "country_code": "NO"}},
        "products": {"sku": "TEST-00001-STD", "title": "Testvare", "price": 12500},
    },
}
PRICE = {"customcrm": ("unit_price", "-1.00"), "customwebshop": ("price", -100)}


@dataclass
class System:
    """One running sandbox and what tests need to call it."""

    key: str
    server: SandboxServer
    client_cls: type[CustomApiClient]

    @property
    def spec(self) -> SystemSpec:
        return self.client_cls.spec

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def root(self) -> str:
        return self.server.url + self.spec.root

    @property
    def headers(self) -> dict[str, str]:
        return self.spec.auth_headers(self.spec.api_key())

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        """A raw request to the API (path under the root), authenticated."""
        headers = {**self.headers, **kw.pop("headers", {})}
        return requests.request(method, self.root + path, headers=headers, timeout=10, **kw)

    def control(self, method: str, sub: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = requests.request(method, f"{self.url}/_sandbox/{sub}", json=body, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def client(self, **kw: Any) -> CustomApiClient:
        kw.setdefault("pacer", Pacer())
        kw.setdefault("retry", RetryPolicy(max_retries=5, backoff=0.01, max_backoff=0.05))
        return self.client_cls(self.url, self.spec.api_key(), **kw)

    def sample(self, entity: str) -> dict[str, Any]:
        return dict(SAMPLES[self.key][entity])


def _start(app: Any) -> SandboxServer:
    server = SandboxServer(app, port=0).start()
    # The limiter is tested on its own; elsewhere it would only make raw bursts flaky.
    requests.put(f"{server.url}/_sandbox/faults", json={"rate_limit_enabled": False}, timeout=10)
    return server


@pytest.fixture(scope="session")
def servers() -> Iterator[dict[str, System]]:
    crm = System("customcrm", _start(CrmApp(seed=7, size=40)), CrmClient)
    shop = System("customwebshop", _start(ShopApp(seed=7, size=40)), ShopClient)
    yield {"customcrm": crm, "customwebshop": shop}
    crm.server.stop()
    shop.server.stop()


@pytest.fixture(params=["customcrm", "customwebshop"])
def system(request: pytest.FixtureRequest, servers: dict[str, System]) -> Iterator[System]:
    """Each test runs against both systems; state, faults and limiter are restored afterwards."""
    s = servers[request.param]
    yield s
    s.control("PUT", "faults", {"rate_limit_enabled": False, "rate_limit_speed": 1.0})
    s.control("POST", "reset")


@pytest.fixture
def crm(servers: dict[str, System]) -> Iterator[System]:
    yield servers["customcrm"]
    servers["customcrm"].control("POST", "reset")


@pytest.fixture
def shop(servers: dict[str, System]) -> Iterator[System]:
    yield servers["customwebshop"]
    servers["customwebshop"].control("POST", "reset")
