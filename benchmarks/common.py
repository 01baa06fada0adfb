"""Shared helpers: result records, timing, peak-memory sampling and sandboxes in their own process.

The sandbox servers run in a child process so the client under test does not share a GIL (and
two cores) with the server it measures; everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

RESULTS_DIR = Path(__file__).parent / "results"
LATEST = RESULTS_DIR / "latest.json"


def machine() -> str:
    """A short description of where the figure was measured (figures only compare on one machine)."""
    mem = psutil.virtual_memory().total / 2**30
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu {mem:.0f} GiB py{platform.python_version()}"


@dataclass
class Result:
    """One figure next to the baseline it was measured against in the same run."""

    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float | None
    size: int | str
    ratio: float | None = None
    note: str = ""
    date: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    machine: str = field(default_factory=machine)

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline_value:
            self.ratio = round(self.value / self.baseline_value, 3)

    def line(self) -> str:
        base = f"{self.baseline_value:g}" if self.baseline_value is not None else "n/a"
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else "n/a"
        note = f"  ({self.note})" if self.note else ""
        return f"{self.name:<44} {self.value:>12.3f} {self.unit:<10} vs {self.baseline} {base}  ratio {ratio}{note}"


class Recorder:
    """Collects results, prints each as it comes and appends them to `results/latest.json`."""

    def __init__(self, path: Path = LATEST) -> None:
        self.path = path
        self.results: list[Result] = []

    def add(self, result: Result) -> Result:
        self.results.append(result)
        print("  " + result.line(), flush=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing: list[dict[str, Any]] = []
        if self.path.exists():
            try:
                existing = json.loads(self.path.read_text())
            except ValueError:
                existing = []
        existing.append({k: v for k, v in asdict(result).items()})
        self.path.write_text(json.dumps(existing, indent=1, ensure_ascii=False) + "\n")
        return result


class PeakRss:
    """Samples this process's resident memory every few ms (DuckDB allocates outside Python's view)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.proc = psutil.Process()
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 2**20


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - t0


# -- sandboxes in a child process ----------------------------------------------------------------
_CHILD = """
import json, sys, signal
from talk_assets.sandbox.runner import start_all
seed, size, systems = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
servers = start_all(seed=seed, size=size, systems=systems, ephemeral_ports=True, consistent=sys.argv[4] == "1")
print("URLS " + json.dumps({k: s.url for k, s in servers.items()}), flush=True)
sys.stdin.read()  # until the parent closes it
for s in servers.values():
    s.stop()
"""


class Sandboxes:
    """The sandbox servers of `systems`, seeded with (seed, size), running in a child process;
    `consistent`: already in the state the sync makes of them (`talk_assets/sandbox/consistent.py`; the
    first time for a seed, size and code this converges them, which takes as long as that does)."""

    def __init__(self, systems: list[str], size: int, seed: int = 1, timeout_s: float = 600,
                 consistent: bool = False) -> None:
        if consistent:
            timeout_s = max(timeout_s, 6 * 3600)
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(seed), str(size), ",".join(systems),
                                      "1" if consistent else "0"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # the URLs come on a line of their own: the consistent seed's convergence logs to stdout before them
        # (a 1M run failed on "no sync state at ..." read as the URLs)
        try:
            self.urls: dict[str, str] = self._ready(timeout_s)
        except BaseException:  # no orphan: the child of a failed start went on converging for an hour
            self.proc.kill()
            raise

    def _ready(self, timeout_s: float) -> dict[str, str]:
        line = ""
        deadline = time.monotonic() + timeout_s
        assert self.proc.stdout is not None
        while not line.startswith("URLS ") and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line.startswith("URLS ") and line:
                print(f"   sandbox: {line.rstrip()}", file=sys.stderr, flush=True)
            if self.proc.poll() is not None:
                raise RuntimeError("sandbox process exited before it was ready")
        if not line.startswith("URLS "):
            raise RuntimeError(f"sandbox process not ready after {timeout_s:.0f} s")
        return json.loads(line.removeprefix("URLS "))

    def env(self) -> None:
        """Point the engine's clients at these servers (TALK_<SYSTEM>_URL)."""
        from talk_assets.config import SYSTEMS

        for key, url in self.urls.items():
            os.environ[SYSTEMS[key].url_env] = url

    def control(self, system: str, method: str, sub: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(method, f"{self.urls[system]}/_sandbox/{sub}", json=body, timeout=60)
        resp.raise_for_status()
        return resp.json()

    def faults(self, body: dict[str, Any], systems: list[str] | None = None) -> None:
        for s in systems or list(self.urls):
            self.control(s, "PUT", "faults", body)

    def stats(self, system: str) -> dict[str, Any]:
        return self.control(system, "GET", "stats")

    def reset_stats(self) -> None:
        for s in self.urls:
            self.control(s, "POST", "stats/reset")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=10)

    def __enter__(self) -> Sandboxes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shopify_size_for(customers: int) -> int:
    """The sandbox `size` that seeds about `customers` Shopify customers (size 100,000 gives 70,144)."""
    return int(customers / 0.7014) + 1
