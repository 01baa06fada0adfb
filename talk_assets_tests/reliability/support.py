"""Helpers of the reliability suite: the shared harness (talk_assets_tests/harness.py) with fast-failing
clients, and a smaller world."""

from __future__ import annotations

from typing import Any

from talk_assets_tests.harness import FAST_HTTP, REPO, SYSTEM_KEYS, SyncHarness, Worker, wait_for
from talk_assets_tests.reliability.cycle_worker import fast_client

__all__ = ["REPO", "SIZE", "SYSTEM_KEYS", "Harness", "Worker", "wait_for"]

SIZE = 20  # a smaller world than the suite's: the initial sync takes ~10 s instead of ~30 s


class Harness(SyncHarness):
    """One module's sandbox systems (reset to a small world) and state directory; cycles run with short
    client timeouts and backoff (the `http` resource), and a cycle's errors are the test's to judge."""

    strict = False
    http = FAST_HTTP

    def reset(self, size: int = SIZE) -> None:
        for s in SYSTEM_KEYS:
            self.box.control(s, "POST", "reset", json={"size": size})
        self.faults()

    def client(self, system: str) -> Any:
        if system not in self._clients:
            self._clients[system] = fast_client(system, timeout=10.0)
        return self._clients[system]
