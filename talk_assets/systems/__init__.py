"""The registry of connected systems: one line per system, plus plugins.

Each entry is the module that exports the system's `SYSTEM` (a `talk_assets.sync.model.System`).
`TALK_EXTRA_SYSTEMS` (comma-separated module paths) registers more, e.g. a test-only system. The
registry loads the modules on first use, so importing a system's client or sandbox alone never
loads the others.
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
_LOADED: dict[tuple[str, ...], dict[str, System]] = {}


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
    """Every registered system by key, in registry order (loaded once per list of modules)."""
    mods = modules()
    with _LOCK:
        if mods not in _LOADED:
            out: dict[str, System] = {}
            for m in mods:
                s = load(m)
                if s.key in out:
                    raise ValueError(f"two systems have the key {s.key!r} ({m})")
                out[s.key] = s
            _LOADED[mods] = out
        return _LOADED[mods]


def system(key: str) -> System:
    try:
        return systems()[key]
    except KeyError:
        raise KeyError(f"no system {key!r}; registered: {', '.join(systems())}") from None
