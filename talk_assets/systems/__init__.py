"""The registry of connected systems: one line per system, plus plugins.

Each entry is the module that exports the system's `SYSTEM` (a `talk_assets.sync.model.System`).
`TALK_EXTRA_SYSTEMS` (comma-separated module paths) registers more, e.g. a test-only system;
`TALK_SYSTEMS` (comma-separated keys) keeps only the systems a deployment uses: the others have no
assets, sandbox, flows or sensors, and nothing waits to read them. The registry loads the modules on
first use, so importing a system's client or sandbox alone never loads the others.
"""

from __future__ import annotations

import importlib
import threading

from talk_assets.settings import settings
from talk_assets.sync.model import System

BUILT_IN: tuple[str, ...] = (
    "talk_assets.systems.shopify.system",
    "talk_assets.systems.poweroffice.system",
    "talk_assets.systems.squarespace.system",
    "talk_assets.systems.customcrm.system",
    "talk_assets.systems.customwebshop.system",
)

_LOCK = threading.RLock()
_LOADED: dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, System]] = {}


def modules() -> tuple[str, ...]:
    """The modules of every registered system: the built-in ones, then `TALK_EXTRA_SYSTEMS`."""
    return BUILT_IN + tuple(m for m in settings().extra_systems if m not in BUILT_IN)


def load(module: str) -> System:
    """The `SYSTEM` a module exports; an error names the module and the variable that listed it."""
    try:
        found = importlib.import_module(module).SYSTEM
    except (ImportError, AttributeError) as exc:
        where = "" if module in BUILT_IN else " (listed in TALK_EXTRA_SYSTEMS)"
        raise ImportError(f"system module {module}{where} exports no SYSTEM: {exc}") from exc
    if not isinstance(found, System):
        raise TypeError(f"{module}.SYSTEM is a {type(found).__name__}, not a talk_assets.sync.model.System")
    return found


def systems() -> dict[str, System]:
    """The systems in use by key, in registry order: every registered one, or those `TALK_SYSTEMS`
    names (loaded once per list of modules and of names)."""
    mods, wanted = modules(), settings().systems
    with _LOCK:
        if (mods, wanted) not in _LOADED:
            out: dict[str, System] = {}
            for m in mods:
                s = load(m)
                if s.key in out:
                    raise ValueError(f"two systems have the key {s.key!r} ({m})")
                out[s.key] = s
            _LOADED[(mods, wanted)] = _in_use(out, wanted)
        return _LOADED[(mods, wanted)]


def _in_use(registered: dict[str, System], wanted: tuple[str, ...]) -> dict[str, System]:
    """The registered systems `TALK_SYSTEMS` keeps (all when it is empty); a name that is not registered,
    or fewer than two systems, is a wrong setting, not a smaller sync."""
    if not wanted:
        return registered
    unknown = [k for k in wanted if k not in registered]
    if unknown:
        raise ValueError(f"TALK_SYSTEMS names {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} not "
                         f"{'a registered system' if len(unknown) == 1 else 'registered systems'} "
                         f"(registered: {', '.join(registered)})")
    if len(wanted) < 2:
        raise ValueError(f"TALK_SYSTEMS names one system ({wanted[0]}); a sync needs at least two")
    return {k: s for k, s in registered.items() if k in wanted}


def system(key: str) -> System:
    try:
        return systems()[key]
    except KeyError:
        raise KeyError(f"no system {key!r}; registered: {', '.join(systems())}") from None
