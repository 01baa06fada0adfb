"""A running Squarespace sandbox for the whole module, plus clients and a raw HTTP session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from talk_assets.config import SQUARESPACE
from talk_assets.sandbox.server import SandboxServer
from talk_assets.systems.squarespace.client import Client
from talk_assets.systems.squarespace.sandbox import App

KEY = SQUARESPACE.settings["api_key"].default


@pytest.fixture(scope="session")
def server() -> Iterator[SandboxServer]:
    srv = SandboxServer(App(seed=7, size=40), port=0).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh(server: SandboxServer) -> Iterator[SandboxServer]:
    """Reset data, faults and rate limits before and after a test that changes them."""
    requests.put(f"{server.url}/_sandbox/faults", json={"rate_limit_speed": 1.0, "rate_limit_enabled": True})
    requests.post(f"{server.url}/_sandbox/reset", json={})
    yield server
    requests.put(f"{server.url}/_sandbox/faults", json={"rate_limit_speed": 1.0, "rate_limit_enabled": True})
    requests.post(f"{server.url}/_sandbox/reset", json={})


@pytest.fixture
def client(server: SandboxServer) -> Iterator[Client]:
    c = Client(server.url, KEY, min_interval=0.0)
    yield c
    c.close()


@pytest.fixture
def raw(server: SandboxServer) -> Iterator[requests.Session]:
    """Plain HTTP with the right credentials, for asserting wire-level behaviour."""
    s = requests.Session()
    s.headers.update({"Authorization": f"Bearer {KEY}", "User-Agent": "talk-assets-tests"})
    yield s
    s.close()
