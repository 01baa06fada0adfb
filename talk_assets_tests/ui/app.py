"""Start `talk-assets run` (what `make run` calls) as a subprocess on free ports, and talk to it.

The UI tests drive the product as a user starts it: the same command, the same process tree, the
same DAGSTER_HOME layout under a data dir. Only the ports are free ones, the data is small and
the sandboxes' rate limits run fast (the clients pace accordingly), so a test stays within minutes.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from talk_assets.config import SYSTEMS

LOCATION = "talk_assets.definitions"
REPOSITORY = "__repository__"
SYSTEM_KEYS = list(SYSTEMS)


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """The lowest port the OS hands out for outgoing connections and `bind(0)` (Linux's default otherwise)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(count: int = 1, tries: int = 200) -> int:
    """A port with `count` consecutive free ports from it, below the OS's ephemeral range: a test that stops
    `talk-assets run` and starts it again on the same ports lost them in between to another test process's
    outgoing connection when they were ephemeral ones (seen: "Address already in use" on the second start)."""
    lo = _ephemeral_low()
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(10_000, max(10_001, lo - count))
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports found for the sandbox")


def free_port_base(count: int = len(SYSTEM_KEYS)) -> int:
    """The first of `count` consecutive free ports (the sandbox's --port-base layout)."""
    return free_port(count)


def talk_assets_command() -> list[str]:
    """`.venv/bin/talk-assets` as `make run` calls it, else the module."""
    script = Path(sys.executable).parent / "talk-assets"
    return [str(script)] if script.exists() else [sys.executable, "-m", "talk_assets.cli"]


class RunningApp:
    """One `talk-assets run` process (own process group) with its data dir, ports and log."""

    def __init__(self, data_dir: Path, *, size: int = 12, seed: int = 7, poll_interval_s: int = 3600,
                 port_base: int | None = None, ui_port: int | None = None) -> None:
        self.data_dir = data_dir
        self.size, self.seed = size, seed
        self.port_base = port_base or free_port_base()
        self.ui_port = ui_port or free_port()
        self.poll_interval_s = poll_interval_s
        self.log_path = data_dir.parent / f"talk-assets-run-{self.ui_port}.log"
        self.proc: subprocess.Popen | None = None
        self.log_offset = 0

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def sandbox_url(self, system: str) -> str:
        return f"http://127.0.0.1:{self.port_base + SYSTEMS[system].port_offset}"

    def start(self, timeout: float = 120.0) -> RunningApp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TALK_", "DAGSTER_"))}
        env["TALK_POLL_INTERVAL_S"] = str(self.poll_interval_s)
        env.update({f"TALK_{k.upper()}_MAX_RPS": "2000" for k in SYSTEM_KEYS})
        cmd = [*talk_assets_command(), "run", "--data-dir", str(self.data_dir), "--port-base", str(self.port_base),
               "--ui-port", str(self.ui_port), "--size", str(self.size), "--seed", str(self.seed)]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        sped_up = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"talk-assets run exited with {self.proc.returncode}:\n{self.log_tail()}")
            if not sped_up and "systems ready" in self.log()[self.log_offset:]:
                self.speed_up_sandbox()
                sped_up = True
            if sped_up and self._location_loaded():
                return self
            time.sleep(0.5)
        raise TimeoutError(f"the Dagster UI did not come up in {timeout:.0f}s:\n{self.log_tail()}")

    def speed_up_sandbox(self) -> None:
        """Rate limits 50x faster, as in the rest of the suite (the clients pace at MAX_RPS)."""
        for key in SYSTEM_KEYS:
            requests.put(f"{self.sandbox_url(key)}/_sandbox/faults", json={"rate_limit_speed": 50},
                         timeout=10).raise_for_status()

    def _location_loaded(self) -> bool:
        try:
            data = self.graphql("""{ workspaceOrError { ... on Workspace { locationEntries {
                name loadStatus locationOrLoadError { __typename } } } } }""", timeout=5)
        except (requests.RequestException, ValueError, KeyError):
            return False
        entries = data["workspaceOrError"].get("locationEntries") or []
        for e in entries:
            if e["name"] == LOCATION and e["loadStatus"] == "LOADED":
                if e["locationOrLoadError"]["__typename"] != "RepositoryLocation":
                    raise RuntimeError(f"the code location failed to load:\n{self.log_tail()}")
                return True
        return False

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 90.0) -> int:
        """Signal `talk-assets run` only (not its group): it must stop everything itself."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """Last resort for a test that failed half-way: the whole tree, so nothing outlives the test."""
        if self.proc is None:
            return
        for pgid in {self.proc.pid, *self.dagster_groups()}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)

    def dagster_groups(self) -> set[int]:
        """Process groups of processes whose command line names this app's UI port or data dir."""
        groups: set[int] = set()
        for pid, cmdline in _processes():
            if str(self.data_dir) in cmdline or f"-p {self.ui_port}" in cmdline or f"--port {self.ui_port}" in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    groups.add(os.getpgid(pid))
        return groups

    def leftover_processes(self) -> list[str]:
        """Processes still alive that belong to this app (after a stop this must be empty)."""
        me = os.getpid()
        out = []
        for pid, cmdline in _processes():
            if pid == me:
                continue
            if (str(self.data_dir) in cmdline or f"--ui-port {self.ui_port}" in cmdline
                    or f"-p {self.ui_port}" in cmdline) and not _is_zombie(pid):
                out.append(f"{pid}: {cmdline[:200]}")
        return out

    # -- reading -----------------------------------------------------------------------------------
    def log(self) -> str:
        """Everything `talk-assets run` printed (all starts that shared this log file)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def graphql(self, query: str, variables: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        """One GraphQL call to the webserver. A 5xx is tried again twice, a second apart: on a loaded
        machine the webserver answered `stopSensor` once with a 500 whose body the old code did not keep
        (cause not found; every query and mutation used here is idempotent); the third says its body."""
        for attempt in range(3):
            r = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}},
                              timeout=timeout)
            if r.status_code < 500:
                break
            if attempt == 2:
                raise AssertionError(f"webserver answered {r.status_code} to {query.split()[0]}: {r.text[:2000]}")
            time.sleep(1.0)
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def sensors(self) -> dict[str, dict[str, str]]:
        data = self.graphql("""query($sel: RepositorySelector!) { sensorsOrError(repositorySelector: $sel) {
            __typename ... on Sensors { results { id name sensorState { status } } } } }""",
                            {"sel": {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION}})
        return {s["name"]: {"id": s["id"], "status": s["sensorState"]["status"]}
                for s in data["sensorsOrError"]["results"]}

    def stop_sensors(self) -> None:
        for s in self.sensors().values():
            if s["status"] == "RUNNING":
                self.graphql("mutation($id: String) { stopSensor(id: $id) { __typename } }", {"id": s["id"]})

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        data = self.graphql("""query($limit: Int) { runsOrError(limit: $limit) { ... on Runs { results {
            runId status jobName assetSelection { path } tags { key value } } } } }""", {"limit": limit})
        return data["runsOrError"]["results"]

    def cancel_runs(self, keep: set[str] | None = None, queued_only: bool = False) -> int:
        """Cancel what is queued or in progress (the sensors' first ticks), so the queue is free;
        `queued_only`: leave a run that has started to finish (it holds the state file's lock)."""
        going = ("QUEUED", "NOT_STARTED") if queued_only else ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
        ids = [r["runId"] for r in self.runs() if r["status"] in going and r["runId"] not in (keep or set())]
        if ids:
            self.graphql("""mutation($ids: [String!]!) { terminateRuns(runIds: $ids,
                terminatePolicy: MARK_AS_CANCELED_IMMEDIATELY) { __typename } }""", {"ids": ids})
        return len(ids)

    def run_status(self, run_id: str) -> str:
        data = self.graphql("""query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }""",
                            {"id": run_id})
        return data["runOrError"]["status"]


def _processes() -> list[tuple[int, str]]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if raw:
            out.append((int(entry.name), raw.replace(b"\0", b" ").decode(errors="replace").strip()))
    return out


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return re.sub(r"^.*\) ", "", stat, flags=re.S)[:1] in ("Z", "X")
