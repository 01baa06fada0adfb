"""Declarations of a custom API: its entities, their models and rules, its root path and auth.

The sandbox, the client and the OpenAPI generator all read one `SystemSpec`, so a system is
described once and the three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from talk_assets.settings import SystemInfo
from talk_assets.systems.customapi.types import SERVER_FIELDS, ApiRecord

Record = dict[str, Any]


@dataclass(frozen=True)
class EntitySpec:
    """One collection, `{root}/{name}`."""

    name: str
    model: type[ApiRecord]
    description: str = ""
    unique: tuple[str, ...] = ()  # case-insensitive unique fields (409 conflict on a duplicate)
    refs: dict[str, str] = field(default_factory=dict)  # field -> entity it must reference
    computed: tuple[str, ...] = ()  # extra server-kept fields (totals, generated numbers)
    finalize: Callable[[Record], None] | None = None  # fills computed fields; record has its id

    @property
    def server_fields(self) -> frozenset[str]:
        return frozenset(SERVER_FIELDS) | frozenset(self.computed)


@dataclass(frozen=True)
class SystemSpec:
    """One custom API."""

    key: str
    title: str
    info: SystemInfo
    root: str  # "/api/v1"
    auth: Literal["bearer", "header"]
    auth_header: str  # "Authorization" or "X-Api-Key"
    entities: tuple[EntitySpec, ...]
    version: str = "1.0.0"

    def entity(self, name: str) -> EntitySpec:
        for e in self.entities:
            if e.name == name:
                return e
        raise KeyError(f"{self.key} has no entity {name!r} (has {', '.join(self.names)})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entities)

    def api_key(self) -> str:
        return self.info.value("api_key")

    def auth_headers(self, key: str) -> dict[str, str]:
        return {self.auth_header: f"Bearer {key}" if self.auth == "bearer" else key}
