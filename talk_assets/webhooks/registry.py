"""Which systems receive notifications: those whose `systems/<key>/webhooks.py` says `SUPPORTED = True`.

Looked up by module name, so the engine (the sensors) never imports a system's module directly.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def system_webhooks(system: str) -> ModuleType | None:
    """`talk_assets/systems/<system>/webhooks.py` when the system sends notifications, else None."""
    try:
        mod = importlib.import_module(f"talk_assets.systems.{system}.webhooks")
    except ModuleNotFoundError:
        return None
    return mod if getattr(mod, "SUPPORTED", False) else None


def receiving_systems() -> list[str]:
    from talk_assets.config import SYSTEMS

    return [k for k in SYSTEMS if system_webhooks(k) is not None]
