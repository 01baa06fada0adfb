"""Connector settings of the registered systems, read from environment variables (sandbox defaults).

Each system declares its settings once, in its folder (`talk_assets/systems/<key>/info.py`, exported
with the rest of the system by `system.py`); the registry (`talk_assets/systems/__init__.py`) lists
the systems. This module keeps the names the CLI, the sandbox, the clients and the tests read:
`SYSTEMS` (key -> the system, with `.title`, `.url_env`, `.sandbox_url()`, `.value()`, `.secrets()`)
and one upper-case name per system (`SHOPIFY`, ...), computed from the registry when first read.
"""

from __future__ import annotations

from typing import Any

from talk_assets.settings import DEFAULT_PORT_BASE, SANDBOX_HOST, Setting, SystemInfo
from talk_assets.systems import systems

__all__ = ["DEFAULT_PORT_BASE", "SANDBOX_HOST", "SYSTEMS", "Setting", "SystemInfo", "all_secrets"]  # noqa: F822 - SYSTEMS via __getattr__


def __getattr__(name: str) -> Any:
    """`SYSTEMS` and `SHOPIFY`, `POWEROFFICE`, ...: from the registry (which loads on first use)."""
    if name == "SYSTEMS":
        return systems()
    found = systems().get(name.lower())
    if found is None:
        raise AttributeError(f"module 'talk_assets.config' has no attribute {name!r}")
    return found.info


def all_secrets() -> list[str]:
    return [v for s in systems().values() for v in s.secrets()]
