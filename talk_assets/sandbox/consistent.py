"""A consistent seed: the five sandboxes start with the records the sync itself produces (issue #15).

A fresh world (`world.py`) seeds each system with its own share of the entities; the first sync
cycles then create what each system lacks (about 4 writes per unit of `size`, minutes at 10,000+).
A benchmark that measures cycles on a converged world should not pay that each time, and the
records must still be the engine's, not a second hand-written copy of every dataflow's mapping.

So the consistent world is made by the engine: the sandboxes of (seed, size) are started in this
process and real planned cycles (`sync.runner.run_cycle`, the same job the UI runs) are run against
them until one writes nothing; then each sandbox's data is saved (`devserver.save_sandbox`, the
same pickle `talk-assets run` keeps between starts) under a key of seed, size and a digest of the
code (engine, declaration, sandboxes). Later starts of that key restore it in a second. A fresh
state file reading the restored world links every record by the merge keys and origin references
the convergence wrote, with nothing to write (`talk_assets_tests/sandbox/test_consistent.py`).

Fast path of the convergence (sandbox settings only, never engine behaviour): the sandboxes' rate
limits are off, the clients' pace is 2,000 requests/s and Shopify's cost bucket is made large (the
control API's `PUT /_sandbox/graphql/cost` does the same), as `benchmarks/sync_cycle.py` sets them.
The cache folder is `TALK_SANDBOX_CACHE` (default `~/.cache/talk-assets/sandbox`); it holds pickles
this program wrote, loaded only from there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("talk_assets.sandbox")

CACHE_ENV = "TALK_SANDBOX_CACHE"
MAX_CYCLES = 6
DONE = "complete"  # marker file: the folder holds a whole snapshot


@dataclass
class Convergence:
    """How a consistent world was made: the cycles' (seconds, writes), or restored from the cache."""

    folder: Path
    cycles: list[tuple[float, int]] = field(default_factory=list)
    restored: bool = False
    seconds: float = 0.0


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "talk-assets" / "sandbox")


def code_key() -> str:
    """A digest of every source file of the package: what the sync would write depends on the engine,
    the declaration and the sandboxes' behaviour, all of which are code."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.md5()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def folder_for(seed: int, size: int, systems: list[str]) -> Path:
    return cache_root() / f"consistent-seed{seed}-size{size}-{'-'.join(sorted(systems))}-{code_key()}"


@contextlib.contextmanager
def _engine_env(servers: dict[str, Any], state_dir: Path) -> Iterator[None]:
    """The environment a sync run in this process reads: the servers' URLs, a scratch state folder,
    the benchmark's pace (TALK_<SYSTEM>_MAX_RPS) and no circuit breaker for the first mass creates."""
    from talk_assets.config import SYSTEMS

    saved = dict(os.environ)
    os.environ["TALK_DATA_DIR"] = str(state_dir)
    os.environ["DAGSTER_HOME"] = str(state_dir / "dagster_home")
    os.environ["TALK_CIRCUIT_BREAKER_SHARE"] = "1.0"
    for key, srv in servers.items():
        os.environ[SYSTEMS[key].url_env] = srv.url
        os.environ[f"TALK_{key.upper()}_MAX_RPS"] = "2000"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _fast(servers: dict[str, Any]) -> Iterator[None]:
    """Sandbox settings for the convergence: no rate limits, a Shopify cost bucket that never empties;
    the settings are put back afterwards."""
    saved: list[tuple[Any, bool]] = []
    for srv in servers.values():
        for name in ("limiter", "order_limiter"):
            limiter = getattr(srv.app, name, None)
            if limiter is not None:
                saved.append((limiter, limiter.enabled))
                limiter.enabled = False
        # Shopify's GraphQL API is built on its first request: build it now, or the bucket set below
        # would be the one a later request creates (the standard plan's: the convergence's creates
        # then waited for it, hours at 115,000)
        api = srv.app.graphql_api() if hasattr(srv.app, "graphql_api") else None
        if api is not None:
            saved.append((api.bucket, (api.bucket.size, api.bucket.restore_rate)))  # type: ignore[arg-type]
            api.bucket.size = api.bucket.restore_rate = 1e9
            api.bucket.reset()
    try:
        yield
    finally:
        for obj, value in saved:
            if isinstance(value, tuple):
                obj.size, obj.restore_rate = value
                obj.reset()
            else:
                obj.enabled = value


def converge(servers: dict[str, Any], state_dir: Path | None = None) -> list[tuple[float, int]]:
    """Run planned sync cycles against `servers` (in this process) until one writes nothing; every
    cycle's (seconds, writes). Raises when a cycle fails or leaves dead letters: the world would not
    be one the sync accepts as it is. `state_dir`: keep the convergence's state file there (tests)."""
    import dagster as dg

    from talk_assets.sync.runner import run_cycle
    from talk_assets.sync.store import connect, first

    cycles: list[tuple[float, int]] = []
    keep = state_dir is not None
    state_dir = state_dir or Path(tempfile.mkdtemp(prefix="talk-consistent-"))
    try:
        with _engine_env(servers, state_dir), _fast(servers):
            instance = dg.DagsterInstance.ephemeral()
            try:
                for _ in range(MAX_CYCLES):
                    t0 = time.perf_counter()
                    rep = run_cycle(instance=instance)
                    cycles.append((time.perf_counter() - t0, rep.writes))
                    log.info("consistent seed: cycle %d took %.1fs, %d writes", len(cycles), *cycles[-1])
                    if not rep.success or rep.errors:
                        raise RuntimeError(f"consistent seed: a sync cycle failed: {rep.errors[:3]}")
                    if rep.writes == 0:
                        break
                else:
                    raise RuntimeError(f"consistent seed: still writing after {MAX_CYCLES} cycles: {cycles}")
                with connect() as con:
                    dead = first(con, "SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL")
                if dead and dead[0]:
                    raise RuntimeError(f"consistent seed: the convergence left {dead[0]} dead letters")
            finally:
                instance.dispose()
    finally:
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)
    return cycles


def restore(servers: dict[str, Any], folder: Path) -> None:
    """Put the saved data into freshly seeded (or reset) apps: control state (buckets, counters, bulk
    operations, webhook subscriptions) is the fresh app's, the records are the snapshot's."""
    from talk_assets.devserver import load_sandbox

    outcome = load_sandbox(servers, folder)
    bad = {k: v for k, v in outcome.items() if not v.startswith("restored")}
    if bad:
        raise RuntimeError(f"consistent seed: not restored from {folder}: {bad}")
    for srv in servers.values():
        app = srv.app
        with app.lock:
            app.counts.clear()
            app.write_counts.clear()
            app.status_counts.clear()


class _One:
    """A server-shaped holder of one app, for `load_sandbox`."""

    def __init__(self, app: Any) -> None:
        self.app = app


def restore_app(app: Any) -> Path:
    """The control API's `POST /_sandbox/reset {"consistent": true}`: reseed this app and put in its
    data from the consistent world of its seed and size. The world is made by all five sandboxes
    together, so it must exist already (`talk-assets sandbox --consistent` made it); else a
    `FileNotFoundError` naming what to run."""
    from talk_assets.config import SYSTEMS

    folder = getattr(app, "consistent_folder", None) or folder_for(app.seed, app.size, list(SYSTEMS))
    if not (folder / DONE).exists():
        raise FileNotFoundError(
            f"no consistent world for seed {app.seed} size {app.size} made by this code in {cache_root()} "
            f"(set by {CACHE_ENV}); start the sandbox once with `talk-assets sandbox --consistent --seed "
            f"{app.seed} --size {app.size}` to make it")
    restore({app.name: _One(app)}, folder)
    app.consistent_folder = folder
    return folder


def make_consistent(servers: dict[str, Any], seed: int, size: int, state_dir: Path | None = None) -> Convergence:
    """Bring running `servers` (seeded with seed/size) to the consistent world: from the cache when
    this code made it before, else by converging them and saving the result (`state_dir`: where that
    convergence keeps its state file)."""
    from talk_assets.devserver import save_sandbox

    t0 = time.perf_counter()
    folder = folder_for(seed, size, list(servers))
    out = Convergence(folder)
    if not (folder / DONE).exists():
        out.cycles = converge(servers, state_dir)
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        save_sandbox(servers, tmp)
        (tmp / DONE).write_text(repr(out.cycles) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        for srv in servers.values():  # the control state the convergence left (bulk operations, buckets)
            srv.app.reset()
    else:
        out.restored = True
    restore(servers, folder)  # also after a convergence: the same start state either way
    # (`servers` come freshly seeded from `start_all`, or reset above: not seeded a second time here)
    for srv in servers.values():
        srv.app.consistent_folder = folder
    out.seconds = time.perf_counter() - t0
    log.info("consistent seed %s/%s: %s in %.1fs", seed, size,
             "restored" if out.restored else f"converged in {len(out.cycles)} cycles", out.seconds)
    return out
