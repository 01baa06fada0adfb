"""Fixtures shared by the whole suite: the five sandbox servers on free ports and a state dir."""

from __future__ import annotations

import contextlib
import os
import shutil
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
    from talk_assets_tests.harness import SyncHarness
    from talk_assets_tests.reliability.support import Harness

SEED = 7
SIZE = 60

# The suite's cycles follow one another within seconds, so under the production lookback (300 s) each
# would re-read, for late commits, every entity changed in the last five minutes: at SIZE a quiet cycle
# cost 1.5 s of CPU instead of 0.1 s and an edit cycle 6.3 s instead of 4.3 s. The suite runs without
# it (set before any test process or subprocess starts, so all inherit it); the tests of the recheck
# itself set their own (sync/test_plan.py), and test_settings checks the default from an empty env.
os.environ.setdefault("TALK_COLLECT_LOOKBACK_S", "0")
# Squarespace's whole inventory is read once per wall-clock period of TALK_SQUARESPACE_INVENTORY_FULL_READ_S
# (900 s: a boundary at every quarter hour). A test asserting that a cycle is quiet failed whenever a
# boundary fell between its cycles (seen: test_plan's `test_an_edit_runs_only_what_it_reaches_and_arrives`
# in a 20-minute run). The suite runs in one period; the tests of the period set their own
# (systems/squarespace/test_inventory_probe.py, sync/test_plan.py), and test_inventory_probe.py checks the
# 900 s default without the variable.
os.environ.setdefault("TALK_SQUARESPACE_INVENTORY_FULL_READ_S", "1000000000")
# Three test processes share two cores (`make test`): DuckDB's own thread per core in each only adds
# switching for the suite's small tables (a small world's first sync: 17.5 s of CPU with 1, 19.9 s without).
os.environ.setdefault("TALK_DUCKDB_THREADS", "1")

# The modules that take longest (measured, `pytest --durations=0`), slowest first. `make test` spreads
# whole modules over three processes (`--dist loadfile --no-loadscope-reorder`) in collection order, a
# module to a process as it becomes free: a long module started last keeps one process busy while
# the others idle, so these start first. Order only: every module still runs, its tests in any order.
SLOW_FIRST = (
    "reliability/test_held_and_dead.py",
    "sync/test_sync.py",
    "sync/test_plan.py",
    "reliability/test_held_and_dead_writes.py",
    "reliability/test_chaos.py",
    "reliability/test_lost_state.py",
    "sync/test_tax_and_currency.py",
    "sync/test_order_matching.py",
    "ui/test_ui_browser.py",
    "sync/test_hostile_values.py",
    "sync/test_real_apis.py",
    "systems/poweroffice/test_locked_orders.py",
    "ui/test_run.py",
    "systems/shopify/test_shopify_cycle.py",
    "sync/test_provenance.py",
    "reliability/test_security.py",
    "reliability/test_bad_input.py",
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow modules (`SLOW_FIRST`) first; a stable sort keeps every other order as it was."""
    rank = {f"talk_assets_tests/{m}": i for i, m in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


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


@contextlib.contextmanager
def running_sandboxes() -> Iterator[Sandbox]:
    """A sandbox of every system in use, seeded alike, with the TALK_*_URL variables pointing at them
    for the block (the suite's fixture, and the subprocess workers that set TALK_SYSTEMS or plugins)."""
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


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """All five systems, seeded alike, with the TALK_*_URL variables pointing at them."""
    with running_sandboxes() as box:
        yield box


class Worlds:
    """Synced-until-quiet worlds, built once per test run and restored for each module that needs one.

    Syncing a fresh world until quiet takes three or four full cycles (30-90 s on a shared machine); a
    module that only needs a converged world as its starting point gets a copy of one: the five
    sandboxes' data as the last of those cycles left it and the state file beside it. The test processes
    of one run (pytest-xdist's workers) share the copies: the first to need a world builds it while
    holding its lock, the others wait for the lock and restore it (each built it once before: ~50 s of
    a worker's time per world and worker on two cores). The sandboxes are
    saved and restored as the consistent seed does it (`devserver.save_sandbox`, `consistent.restore`:
    one snapshot format for `make run`, the benchmarks and the tests). A restored world must be quiet:
    `converge` runs a cycle on it and fails when it writes anything, so a copy that missed something
    cannot pass for a synced world.
    """

    def __init__(self, box: Sandbox, root: Path) -> None:
        self.box = box
        self.root = root

    def converge(self, h: SyncHarness, limit: int = 6) -> int:
        """Bring `h` (a sandbox freshly reset, a new state dir) to the synced world of the sandbox's seed
        and size: synced until quiet the first time, a copy of that world afterwards. Returns the cycles
        run (0 for a copy)."""
        from talk_assets.devserver import save_sandbox
        from talk_assets.sandbox.consistent import restore

        info = self.box.control("customcrm", "GET", "info")
        folder = self.root / f"world-{info['seed']}-{info['size']}"
        with _locked(folder.with_suffix(".lock")):
            if not (folder / DONE).exists():
                n = h.until_quiet(limit)
                shutil.rmtree(folder, ignore_errors=True)  # a builder that failed half-way left a part
                save_sandbox(self.box.servers, folder)
                for f in h.data.glob("talk.duckdb*"):
                    shutil.copy2(f, folder / f.name)
                (folder / DONE).touch()
                return n
        for srv in self.box.servers.values():
            srv.app.reset()  # control state (counters, buckets, webhook subscriptions) as after any reset
        restore(self.box.servers, folder)
        self.box.zero_clocks()
        h.data.mkdir(parents=True, exist_ok=True)
        for f in h.data.glob("talk.duckdb*"):
            f.unlink()
        for f in folder.glob("talk.duckdb*"):
            shutil.copy2(f, h.data / f.name)
        n, detail = h.try_quiet(1)
        assert n == 1, "a restored synced world is not quiet:\n" + "\n".join(detail)
        return 0


@pytest.fixture(scope="session")
def worlds(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Worlds:
    """The synced worlds of this test run (`Worlds`): beside the workers' own temporary folders when
    pytest-xdist runs several (each has its own under the run's), else in this process's."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "worlds"
    root.mkdir(parents=True, exist_ok=True)
    return Worlds(sandbox, root)


DONE = "complete"  # written last into a world's folder: a folder without it is not a world


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` between the test processes (released when the holder dies)."""
    import fcntl

    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
