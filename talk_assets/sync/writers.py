"""Which writer each system uses (the system-specific ones live in the system's folder)."""

from __future__ import annotations

import importlib
from typing import Any

from talk_assets.sync.push import Writer


def writer_class(system: str) -> type[Writer]:
    try:
        module = importlib.import_module(f"talk_assets.systems.{system}.writer")
    except ModuleNotFoundError:
        return Writer
    return module.SystemWriter


def writer_for(system: str, client: Any) -> Writer:
    return writer_class(system)(client)
