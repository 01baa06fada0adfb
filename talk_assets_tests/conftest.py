"""Fixtures shared by the whole suite: the five sandbox servers on free ports and a state dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from talk_assets.config import SYSTEMS
from talk_assets.sandbox.runner import start_all
from talk_assets.sandbox.server import SandboxServer
from talk_assets.settings import environment

if TYPE_CHECKING:
    from talk_assets_tests.reliability.support import Harness

SEED = 7
SIZE = 60


@dataclass
class Sandbox:
    servers: dict[str, SandboxServer]

    def url(self, system: str) -> str:
        return self.servers[system].url

    def control(self, system: str, method: str, path: str, **kw: object) -> dict:
        r = requests.request(method, f"{self.url(system)}/_sandbox/{path}", timeout=10, **kw)
        r.raise_for_status()
        return r.json()

    def reset(self, *systems: str) -> None:
        for s in systems or tuple(self.servers):
            self.control(s, "POST", "reset")
            self.control(s, "PUT", "faults", json={"rate_limit_speed": 50})
        self.zero_clocks(*systems)

    def zero_clocks(self, *systems: str) -> None:
        """Each system's clock back to real time: a module that advanced one system's clock (to pass a
        lookback) must not make that system's old values look newer than another's edits in the next."""
        for s in systems or tuple(self.servers):
            offset = float(self.control(s, "GET", "clock").get("offset_s") or 0)
            if offset:
                self.control(s, "POST", "clock", json={"advance_s": -offset})

    def stats(self, system: str) -> dict:
        return self.control(system, "GET", "stats")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """All five systems, seeded alike, with the TALK_*_URL variables pointing at them."""
    servers = start_all(seed=SEED, size=SIZE, ephemeral_ports=True)
    env = {SYSTEMS[k].url_env: srv.url for k, srv in servers.items()}
    # the sandboxes' rate limits run 50x faster in tests; let the clients pace accordingly
    env.update({f"TALK_{k.upper()}_MAX_RPS": "2000" for k in servers})
    box = Sandbox(servers)
    try:
        with environment(env):
            box.reset()
            yield box
    finally:
        for srv in servers.values():
            srv.stop()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state location (TALK_DATA_DIR) for one test."""
    d = tmp_path / "data"
    monkeypatch.setenv("TALK_DATA_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def rel(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One module's small world: the shared sandbox reset to the reliability size, a private state dir."""
    from talk_assets_tests.reliability.support import Harness  # it imports this module

    saved = os.environ.get("TALK_DATA_DIR")
    h = Harness(sandbox, tmp_path_factory.mktemp("reliability"))
    os.environ["TALK_DATA_DIR"] = str(h.data)
    h.reset()
    sandbox.zero_clocks()
    try:
        yield h
    finally:
        # leave the shared sandbox as the rest of the suite expects it: its size, no faults
        for s in h.box.servers:
            h.box.control(s, "POST", "reset", json={"size": SIZE})
        h.faults()
        if saved is None:
            os.environ.pop("TALK_DATA_DIR", None)
        else:
            os.environ["TALK_DATA_DIR"] = saved
