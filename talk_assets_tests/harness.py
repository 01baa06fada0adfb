"""The one test harness for sync cycles: runs Dagster's `sync_job` in process (talk_assets/sync/runner.py)
against the sandbox, in one Dagster instance per harness, and reads the state file.

`talk_assets_tests/sync/test_sync.py` (`Sync`) and the reliability suite (`Harness`) use it; they
differ only in whether a cycle with errors fails the test and in how fast the clients give up.
"""

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

import dagster as dg

from talk_assets.config import SYSTEMS
from talk_assets.resources import client_from_env
from talk_assets.sync.assets import HttpTuning
from talk_assets.sync.declaration import View
from talk_assets.sync.merge import table
from talk_assets.sync.push import PushSettings
from talk_assets.sync.runner import CycleReport, run_cycle
from talk_assets.sync.store import connect
from talk_assets_tests.conftest import Sandbox

SYSTEM_KEYS = tuple(SYSTEMS)
REPO = Path(__file__).resolve().parents[1]

# small timeouts and short backoff: a fault costs seconds, not minutes (what `fast_client` gives a client);
# the fields of the `http` resource (a resource object as a class attribute trips Dagster's descriptor)
FAST_HTTP: dict[str, float] = {"timeout_s": 2.0, "backoff_s": 0.02, "max_backoff_s": 0.2, "default_retry_after_s": 0.1}


@dataclass
class Worker:
    """What one sync subprocess did before it ended or was killed."""

    killed: bool
    returncode: int | None
    cycles: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""


class SyncHarness:
    """Cycles through the one runner, the sandbox's counters and the state file of one test module."""

    strict = True  # a cycle with errors fails the test unless `allow_errors=True`
    http: dict[str, float] | None = None  # fields of the `http` resource; None: the clients' defaults

    def __init__(self, box: Sandbox, data: Path) -> None:
        self.box = box
        self.data = data
        self.instance = dg.DagsterInstance.ephemeral()  # one per module: observations persist across cycles
        self._clients: dict[str, Any] = {}
        self.reports: list[CycleReport] = []

    # -- cycles ----------------------------------------------------------------------------------
    def cycle(self, **kw: Any) -> CycleReport:
        """One run of `sync_job` (pushes confirmed unless `settings` says otherwise)."""
        os.environ["TALK_DATA_DIR"] = str(self.data)
        allow_errors = kw.pop("allow_errors", not self.strict)
        kw.setdefault("http", HttpTuning(**self.http) if self.http else None)
        report = run_cycle(settings=kw.pop("settings", None) or PushSettings(confirm_large=True),
                           instance=self.instance, **kw)
        self.reports.append(report)
        assert allow_errors or not report.errors, report.errors
        self.assert_link_version_current()
        return report

    def assert_link_version_current(self) -> None:
        """The link table's last version, kept up by deltas (`links.record_version`), says what the table
        holds whenever no row was written since: a writer that does not note its rows fails here."""
        from talk_assets.sync.links import whole_data_version

        with connect() as con:
            if not con.execute("SELECT 1 FROM links_touched LIMIT 1").fetchall():
                last = con.execute("SELECT data_version FROM link_versions ORDER BY version DESC LIMIT 1").fetchall()
                if last:
                    assert last[0][0] == whole_data_version(con), "the last link version is not the table's content"

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
            report = self.cycle(allow_errors=False)
            writes = self.writes()
            if report.writes == 0 and not any(writes.values()):
                return n, []
            detail = [f"{k}: {p.as_metadata()} {p.failures[:2]}" for k, p in report.pushed.items()
                      if p.created or p.updated or p.failed]
            detail.append(f"sandbox writes {writes}")
        return 0, detail

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TALK_DATA_DIR"] = str(self.data)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def worker(self, cycles: int = 1, kill_after: float | None = None, timeout: float = 240.0) -> Worker:
        """Cycles in a subprocess (cycle_worker); SIGKILL it after `kill_after` seconds if still running."""
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

    # -- sandbox ---------------------------------------------------------------------------------
    def client(self, system: str) -> Any:
        if system not in self._clients:
            self._clients[system] = client_from_env(system)
        return self._clients[system]

    def faults(self, systems: tuple[str, ...] = SYSTEM_KEYS, **faults: Any) -> None:
        for s in systems:
            self.box.control(s, "PUT", "faults", json={"rate_limit_speed": 50, **faults})

    def reset_stats(self) -> None:
        for s in SYSTEM_KEYS:
            self.box.control(s, "POST", "stats/reset")

    def stats(self) -> dict[str, dict[str, Any]]:
        return {s: self.box.stats(s) for s in SYSTEM_KEYS}

    def writes(self) -> dict[str, int]:
        """Data writes per system: the sandbox counts a request that could change data (a Shopify
        GraphQL mutation, not a query; not a PowerOffice token request)."""
        return {s: st["writes"] for s, st in self.stats().items()}

    # -- the state file --------------------------------------------------------------------------
    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        with connect(self.data / "talk.duckdb") as con:
            return con.execute(query, params or []).fetchall()

    def norm(self, view: View, record_id: Any, prop: str) -> Any:
        rows = self.sql(f'SELECT "{prop}" FROM {table("norm", view.vkey)} WHERE record_id = ?', [str(record_id)])
        return rows[0][0] if rows else None

    def value(self, view: View, record_id: Any, prop: str) -> Any:
        rows = self.sql(f"SELECT {prop} FROM {table('norm', view.vkey)} WHERE record_id = ?", [str(record_id)])
        return rows[0][0] if rows else None

    def gid_of(self, view: View, record_id: Any) -> str | None:
        rows = self.sql("SELECT gid FROM links WHERE view = ? AND record_id = ?", [view.vkey, str(record_id)])
        return rows[0][0] if rows else None

    def member(self, gid: str, view: View) -> str | None:
        rows = self.sql("SELECT record_id FROM links WHERE gid = ? AND view = ?", [gid, view.vkey])
        return rows[0][0] if rows else None

    def counterpart(self, view_from: View, record_id: Any, view_to: View) -> str | None:
        """The record of `view_to` linked to `record_id` of `view_from`."""
        rows = self.sql("SELECT t.record_id FROM links s JOIN links t ON t.gid = s.gid AND t.view = ? "
                        "WHERE s.view = ? AND s.record_id = ?", [view_to.vkey, view_from.vkey, str(record_id)])
        return rows[0][0] if rows else None


def wait_for(predicate: Any, timeout: float = 10.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False
