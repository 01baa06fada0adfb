"""`talk-assets run` (what `make run` calls): the sandbox and `dagster dev` as one product.

What this module adds around `dagster dev`:
- a Dagster instance in `data/dagster_home` whose `dagster.yaml` is written on first start
  (one run at a time, pools `duckdb` and `<system>_api` of one slot each), so the DuckDB file
  never sees two writers and no system is called by two steps at once;
- the sandbox's records kept in `data/sandbox/` between starts, so the link table in
  `data/talk.duckdb` and the systems it points at stay consistent after a restart;
- one place that stops everything: Ctrl-C or SIGTERM stops `dagster dev` (which stops its
  webserver, daemon, code servers and runs), then the sandbox; whatever is left in the process
  group is terminated, so nothing is orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from talk_assets.config import SYSTEMS

log = logging.getLogger("talk_assets.devserver")

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_POLL_INTERVAL_S = "10"
STOP_TIMEOUT_S = 45.0
SNAPSHOT_FORMAT = 1
AUTOSAVE_S = 60.0

# What `dagster.yaml` holds on first start. Storage stays Dagster's default (SQLite files in
# DAGSTER_HOME); deploy/dagster.postgres.yaml is the shared-storage variant.
INSTANCE_YAML = """\
# Written by `talk-assets run` on first start; edit freely, it is not overwritten.
# Storage: SQLite files in this folder (Dagster's default). For Postgres see deploy/README.md.
concurrency:
  runs:
    max_concurrent_runs: 1      # one sync run at a time: the queue orders sensor and UI requests
  pools:
    default_limit: 1            # every pool (duckdb, <system>_api) one step at a time
    granularity: op
run_queue:
  dequeue_interval_seconds: 1   # a queued run is launched within a second (default 5): edit to visible, issue #16
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  poll_interval_seconds: 30
telemetry:
  enabled: false
nux:
  enabled: false                # no "join the Dagster community" dialog over a first visit's page
"""


def pools() -> dict[str, int]:
    """The concurrency pools the assets use and their slot counts (see sync/assets.py)."""
    return {"duckdb": 1, **{f"{key}_api": 1 for key in SYSTEMS}}


def write_instance_yaml(home: Path) -> Path:
    """`dagster.yaml` in `home`, written once: a user's edits survive restarts."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if not path.exists():
        path.write_text(INSTANCE_YAML)
    return path


def set_pool_limits(home: Path, limits: dict[str, int] | None = None) -> dict[str, int]:
    """Give every pool its slot count in the instance, so the UI lists them before the first run.

    Done in this process, before `dagster dev` opens the storage: pools that a user already
    configured (through the UI or `dagster instance concurrency set`) are left as they are.
    """
    from dagster import DagsterInstance

    limits = limits or pools()
    done: dict[str, int] = {}
    with DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        known = set(storage.get_concurrency_keys())
        for pool, slots in limits.items():
            if pool not in known:
                storage.set_concurrency_slots(pool, slots)
            done[pool] = storage.get_concurrency_info(pool).slot_count
    return done


# -- sandbox state across restarts ----------------------------------------------------------------
# A sandbox app keeps its records in plain attributes (Tables, indexes, counters) that `seed_data`
# rebuilds. These attributes are runtime machinery, not data, and are never saved.
_RUNTIME_ATTRS = frozenset({
    "routes", "lock", "limiter", "order_limiter", "counts", "status_counts", "faults", "_rng", "spec",
    "name", "title",
})


def _state_of(app: Any) -> dict[str, Any]:
    """The app's data attributes that pickle; the rest is rebuilt from code at start."""
    state: dict[str, Any] = {}
    for attr, value in vars(app).items():
        if attr in _RUNTIME_ATTRS or callable(value):
            continue
        try:
            pickle.dumps(value)
        except Exception as exc:  # a lock or handle among the data: skip it, say so once
            log.debug("sandbox %s: not saving %s (%s)", app.name, attr, exc)
            continue
        state[attr] = value
    return state


def save_sandbox(servers: dict[str, Any], folder: Path) -> list[Path]:
    """Write every sandbox's data to `folder/<system>.pickle` (atomically: tmp file + rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key, srv in servers.items():
        app = srv.app
        with app.lock:
            blob = pickle.dumps({"format": SNAPSHOT_FORMAT, "system": key, "seed": app.seed, "size": app.size,
                                 "saved_at": time.time(), "state": _state_of(app)},
                                protocol=pickle.HIGHEST_PROTOCOL)
        path = folder / f"{key}.pickle"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        written.append(path)
    return written


def load_sandbox(servers: dict[str, Any], folder: Path) -> dict[str, str]:
    """Restore each sandbox from its snapshot when one matches its seed and size.

    Returns what happened per system ("restored", or why it was seeded fresh), for the banner.
    The snapshot is this program's own file in the user's data folder, hence pickle.
    """
    outcome: dict[str, str] = {}
    for key, srv in servers.items():
        app = srv.app
        path = folder / f"{key}.pickle"
        if not path.exists():
            outcome[key] = "seeded (no saved state)"
            continue
        try:
            snap = pickle.loads(path.read_bytes())  # noqa: S301 - our own file, see docstring
        except Exception as exc:
            outcome[key] = f"seeded (saved state unreadable: {type(exc).__name__})"
            continue
        if snap.get("format") != SNAPSHOT_FORMAT or (snap.get("seed"), snap.get("size")) != (app.seed, app.size):
            outcome[key] = (f"seeded (saved state is for seed {snap.get('seed')} size {snap.get('size')}, "
                            f"not {app.seed}/{app.size})")
            continue
        with app.lock:
            for attr, value in snap["state"].items():
                setattr(app, attr, value)
            app.limiter.reset()
        outcome[key] = "restored from " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap["saved_at"]))
    return outcome


class _Autosave(threading.Thread):
    """Saves the sandbox every `AUTOSAVE_S` seconds, so a killed process loses at most that much."""

    def __init__(self, servers: dict[str, Any], folder: Path, every: float = AUTOSAVE_S) -> None:
        super().__init__(name="sandbox-autosave", daemon=True)
        self.servers, self.folder, self.every = servers, folder, every
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                save_sandbox(self.servers, self.folder)
            except Exception:
                log.exception("sandbox autosave failed")


# -- the dagster dev child -------------------------------------------------------------------------
def _die_with_parent() -> None:
    """In the child, before exec: own process group, and SIGTERM when `talk-assets run` dies (Linux)."""
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _group_alive(pgid: int, proc: subprocess.Popen) -> bool:
    """Whether any process of the group is left (reaping our own child first)."""
    proc.poll()
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_process_group(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGINT (dagster dev's Ctrl-C path), then SIGTERM and SIGKILL to whatever is left in its group."""
    pgid = proc.pid
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("dagster dev did not stop in %.0fs; terminating it", timeout)
    # children of dagster dev (runs, code servers) that outlived it
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        if not _group_alive(pgid, proc):
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pgid, proc):
            time.sleep(0.1)
    return proc.wait()


def ui_banner_url(ui_host: str, ui_port: int) -> str:
    """Where the UI listens, as the banner says it: the host it was given (IPv6 in brackets), and
    for a wildcard address the fact that it listens on every interface, with this machine's name."""
    if ui_host in ("", "0.0.0.0", "::"):
        shown = "0.0.0.0" if ui_host == "" else ui_host
        bracket = f"[{shown}]" if ":" in shown else shown
        return (f"http://{bracket}:{ui_port} (every interface; e.g. http://{socket.gethostname()}:{ui_port} "
                "from another machine)")
    return f"http://[{ui_host}]:{ui_port}" if ":" in ui_host else f"http://{ui_host}:{ui_port}"


def run_dev(
    *,
    data_dir: Path,
    ui_host: str,
    ui_port: int,
    sandbox: bool,
    host: str,
    port_base: int,
    seed: int,
    size: int,
    fresh_sandbox: bool = False,
    out: Callable[[str], None] = lambda m: print(m, flush=True),
) -> int:
    """Start sandbox + `dagster dev`, wait for Ctrl-C/SIGTERM or for dagster dev to exit, stop all."""
    from talk_assets.sandbox.runner import banner, start_all

    data_dir = data_dir.resolve()
    home = data_dir / "dagster_home"
    write_instance_yaml(home)
    try:
        limits = set_pool_limits(home)
    except Exception as exc:  # pools still apply through default_limit; only the UI listing waits
        limits = {}
        out(f"talk-assets run: could not set the pool limits yet ({exc}); default_limit 1 applies")
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(home)
    env["TALK_DATA_DIR"] = str(data_dir)
    env.setdefault("TALK_POLL_INTERVAL_S", DEFAULT_POLL_INTERVAL_S)

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    servers: dict[str, Any] = {}
    autosave: _Autosave | None = None
    snapshot_dir = data_dir / "sandbox"
    proc: subprocess.Popen | None = None
    code = 0
    try:
        if sandbox:
            started = time.monotonic()
            try:
                servers = start_all(host, port_base, seed, size)
            except OSError as exc:
                out(f"talk-assets run: cannot start the sandbox: {exc} (another one running? try --port-base)")
                return 2
            if fresh_sandbox:
                restored = {k: "seeded (--fresh-sandbox)" for k in servers}
            else:
                restored = load_sandbox(servers, snapshot_dir)
            for key, srv in servers.items():
                env[SYSTEMS[key].url_env] = srv.url  # the sandbox wins over a stale TALK_*_URL
            out(banner(servers, started))
            out("  sandbox data: " + "; ".join(f"{k} {v}" for k, v in restored.items()))
            out(f"  sandbox data is saved to {snapshot_dir} every {AUTOSAVE_S:.0f}s and on stop")
            autosave = _Autosave(servers, snapshot_dir)
            autosave.start()
        cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(ROOT / "workspace.yaml"),
               "-h", ui_host, "-p", str(ui_port)]
        out(f"talk-assets run: Dagster UI on {ui_banner_url(ui_host, ui_port)}  (asset graph: /asset-groups, "
            f"runs: /runs, sensors: /automation)")
        out(f"  state: {data_dir} (DuckDB talk.duckdb, Dagster in dagster_home/); sensors poll every "
            f"{env['TALK_POLL_INTERVAL_S']}s; pools {limits or pools()}; one run at a time")
        out("  Ctrl-C stops everything")
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, preexec_fn=_die_with_parent)  # noqa: PLW1509
        while not stop.wait(0.5):
            if proc.poll() is not None:
                out(f"talk-assets run: dagster dev exited with code {proc.returncode}")
                code = proc.returncode or 1
                break
    finally:
        if proc is not None:
            out("talk-assets run: stopping Dagster ...")
            rc = stop_process_group(proc)
            if not stop.is_set():
                code = code or rc
        if autosave is not None:
            autosave.stopped.set()
        if servers:
            try:
                save_sandbox(servers, snapshot_dir)
                out(f"talk-assets run: sandbox data saved to {snapshot_dir}")
            except Exception as exc:
                out(f"talk-assets run: could not save the sandbox data: {exc}")
            for srv in servers.values():
                srv.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out("talk-assets run: stopped")
    return code
