"""Helpers of the reliability suite: cycles in- and out-of-process, the state file, sandbox control."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talk_assets.config import SYSTEMS
from talk_assets.sync.cycle import CycleReport, run_cycle
from talk_assets.sync.declaration import View
from talk_assets.sync.merge import table
from talk_assets.sync.push import PushSettings
from talk_assets.sync.store import connect
from talk_assets_tests.conftest import Sandbox
from talk_assets_tests.reliability.cycle_worker import fast_client

SYSTEM_KEYS = tuple(SYSTEMS)
SIZE = 20  # a smaller world than the suite's: the initial sync takes ~10 s instead of ~30 s
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    """What one sync subprocess did before it ended or was killed."""

    killed: bool
    returncode: int | None
    cycles: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""


class Harness:
    """One module's sandbox systems (reset to a small world) and state directory."""

    def __init__(self, box: Sandbox, data: Path) -> None:
        self.box = box
        self.data = data
        self._clients: dict[str, Any] = {}

    # -- sandbox ---------------------------------------------------------------------------------
    def reset(self, size: int = SIZE) -> None:
        for s in SYSTEM_KEYS:
            self.box.control(s, "POST", "reset", json={"size": size})
        self.faults()

    def faults(self, systems: tuple[str, ...] = SYSTEM_KEYS, **faults: Any) -> None:
        for s in systems:
            self.box.control(s, "PUT", "faults", json={"rate_limit_speed": 50, **faults})

    def reset_stats(self) -> None:
        for s in SYSTEM_KEYS:
            self.box.control(s, "POST", "stats/reset")

    def stats(self) -> dict[str, dict[str, Any]]:
        return {s: self.box.stats(s) for s in SYSTEM_KEYS}

    def writes(self) -> dict[str, int]:
        """Data writes per system (a PowerOffice token request is a POST but writes no data)."""
        out = {}
        for s, st in self.stats().items():
            out[s] = sum(n for k, n in st["requests"].items()
                         if k.split(" ", 1)[0] in ("POST", "PUT", "PATCH", "DELETE") and "OAuth/Token" not in k)
        return out

    def client(self, system: str) -> Any:
        if system not in self._clients:
            self._clients[system] = fast_client(system, timeout=10.0)
        return self._clients[system]

    # -- cycles ----------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TALK_DATA_DIR"] = str(self.data)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def cycle(self, **kw: Any) -> CycleReport:
        """One cycle in this process, with fast-failing clients."""
        os.environ["TALK_DATA_DIR"] = str(self.data)
        clients: dict[str, Any] = {}

        def get(system: str) -> Any:
            if system not in clients:
                clients[system] = fast_client(system)
            return clients[system]

        try:
            return run_cycle(get, settings=kw.pop("settings", None) or PushSettings(confirm_large=True), **kw)
        finally:
            for c in clients.values():
                c.close()

    def until_quiet(self, limit: int = 6) -> int:
        """Clean cycles until one writes nothing (by its own count and by the sandboxes' counters)."""
        n, detail = self.try_quiet(limit)
        if n:
            return n
        raise AssertionError(f"still writing after {limit} clean cycles; the last one:\n" + "\n".join(detail))

    def try_quiet(self, limit: int = 6) -> tuple[int, list[str]]:
        """(cycles until one wrote nothing, or 0; what the last cycle wrote)."""
        detail: list[str] = []
        for n in range(1, limit + 1):
            self.reset_stats()
            report = self.cycle()
            assert not report.errors, report.errors
            writes = self.writes()
            if report.writes == 0 and not any(writes.values()):
                return n, []
            detail = [f"{k}: {p.as_metadata()} {p.failures[:2]}" for k, p in report.pushed.items()
                      if p.created or p.updated or p.failed]
            detail.append(f"sandbox writes {writes}")
        return 0, detail

    def worker(self, cycles: int = 1, kill_after: float | None = None, timeout: float = 240.0) -> Worker:
        """Cycles in a subprocess; SIGKILL it after `kill_after` seconds if it is still running."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "talk_assets_tests.reliability.cycle_worker", "--cycles", str(cycles)],
            env=self.env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        killed = False
        try:
            proc.wait(timeout=kill_after if kill_after is not None else timeout)
        except subprocess.TimeoutExpired:
            if kill_after is None:
                proc.kill()
                out, err = proc.communicate()
                raise AssertionError(f"sync worker still running after {timeout}s: {err[-2000:]}") from None
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        out, err = proc.communicate()
        done = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return Worker(killed, proc.returncode, done, err)

    # -- the state file --------------------------------------------------------------------------
    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        with connect(self.data / "talk.duckdb") as con:
            return con.execute(query, params or []).fetchall()

    def norm(self, view: View, record_id: Any, prop: str) -> Any:
        rows = self.sql(f'SELECT "{prop}" FROM {table("norm", view.vkey)} WHERE record_id = ?', [str(record_id)])
        return rows[0][0] if rows else None


def wait_for(predicate: Any, timeout: float = 10.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False
