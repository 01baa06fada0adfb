"""Which writer each system uses: the one its `System` declares (the generic `Writer` by default)."""

from __future__ import annotations

from typing import Any

from talk_assets.sync.writer import Writer
from talk_assets.systems import system


def writer_class(key: str) -> type[Writer]:
    return system(key).writer


def writer_for(key: str, client: Any) -> Writer:
    s = system(key)
    return s.writer(client, s.sources)
