"""Start the five sandbox servers in one process (the `talk-assets sandbox` command)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from talk_assets.config import DEFAULT_PORT_BASE, SANDBOX_HOST, SYSTEMS
from talk_assets.sandbox.server import SandboxApp, SandboxServer
from talk_assets.sandbox.world import build_world
from talk_assets.systems import system


def load_app(key: str, seed: int, size: int) -> SandboxApp:
    """The sandbox app of system `key` (its `System.sandbox`, e.g. `talk_assets/systems/<key>/sandbox.py`'s `App`)."""
    return system(key).sandbox(seed=seed, size=size)


def start_all(
    host: str = SANDBOX_HOST,
    port_base: int = DEFAULT_PORT_BASE,
    seed: int = 1,
    size: int = 200,
    systems: list[str] | None = None,
    ephemeral_ports: bool = False,
    consistent: bool = False,
) -> dict[str, SandboxServer]:
    """Seed and start every system's sandbox; port `port_base + offset`, or free ports.

    `consistent`: the systems start with the records the sync itself makes of this seed and size, so
    a first cycle links everything and writes nothing (`consistent.py`: converged once, then cached)."""
    keys = systems or list(SYSTEMS)
    build_world(seed, size)  # once, shared by all apps
    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        apps = dict(zip(keys, pool.map(lambda k: load_app(k, seed, size), keys), strict=True))
    servers: dict[str, SandboxServer] = {}
    try:
        for key in keys:
            port = 0 if ephemeral_ports else port_base + SYSTEMS[key].port_offset
            servers[key] = SandboxServer(apps[key], host, port).start()
    except OSError:
        for s in servers.values():
            s.stop()
        raise
    if consistent:
        from talk_assets.sandbox.consistent import make_consistent

        try:
            make_consistent(servers, seed, size)
        except BaseException:
            for s in servers.values():
                s.stop()
            raise
    return servers


def banner(servers: dict[str, SandboxServer], started: float | None = None) -> str:
    """What a user needs to call each sandbox: base URL and credentials."""
    lines = []
    took = f" in {time.monotonic() - started:.1f}s" if started else ""
    lines.append(f"talk-assets sandbox: {len(servers)} systems ready{took} (Ctrl-C to stop)")
    for key, srv in servers.items():
        info = SYSTEMS[key]
        lines.append(f"  {info.title:<15} {srv.url}{srv.app.api_root()}   ({info.url_env}={srv.url})")
        for name, value in srv.app.credentials().items():
            lines.append(f"  {'':<15} {name}: {value}")
    lines.append("  control API on every server: /_sandbox/info, /_sandbox/stats, /_sandbox/faults, /_sandbox/reset")
    return "\n".join(lines)
