"""One complete sync cycle without Dagster (the `talk-assets sync --once` command).

The same functions the assets call, in the same order: collect every API entity, merge every
global type, update the link table, map every target view, push (customers, users and products
before the orders that reference them), and record the links the pushes created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from talk_assets.sync.collect import CollectResult, bad_lines, collect_records, collect_since, read_changes
from talk_assets.sync.declaration import GLOBAL_TYPES, SOURCES, View
from talk_assets.sync.links import update_links
from talk_assets.sync.mapping import map_view, target_views
from talk_assets.sync.merge import merge_type
from talk_assets.sync.push import CircuitBreakerOpen, PushResult, PushSettings, push_view
from talk_assets.sync.store import connect, session

TYPE_ORDER = ("customer", "user", "product", "order")


def push_order() -> list[View]:
    """Target views, referenced types first."""
    return sorted(target_views(), key=lambda v: TYPE_ORDER.index(v.global_type))


@dataclass
class CycleReport:
    collected: dict[str, CollectResult] = field(default_factory=dict)
    pushed: dict[str, PushResult] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    breaker: list[str] = field(default_factory=list)  # views the circuit breaker stopped

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for key, c in self.collected.items():
            out.append({"system entity": key, "collected": c.new + c.changed, "read": c.read, "created": "-",
                        "updated": "-", "unchanged": "-", "conflicts": "-", "failed": c.rejected})
        for key, p in self.pushed.items():
            out.append({"system entity": f"{key} (push)", "collected": "-", "read": "-", "created": p.created,
                        "updated": p.updated, "unchanged": self.unchanged.get(key, 0), "conflicts": p.conflicts,
                        "failed": p.failed})
        return out

    @property
    def rejected(self) -> list[str]:
        """The records collect rejected (bad input), by system, record and field."""
        return [line for c in self.collected.values() for line in bad_lines(c.bad)]

    @property
    def writes(self) -> int:
        return sum(p.created + p.updated for p in self.pushed.values())


def run_cycle(
    clients: Callable[[str], Any],
    *,
    full: bool = False,
    settings: PushSettings | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> CycleReport:
    """`clients(system)` returns a client for that system (closed by the caller)."""
    with session():
        return _run_cycle(clients, full=full, settings=settings, log=log)


def _run_cycle(
    clients: Callable[[str], Any], *, full: bool, settings: PushSettings | None, log: Callable[[str], None]
) -> CycleReport:
    report = CycleReport()
    for src in SOURCES:
        with connect() as con:
            since = collect_since(con, src, full=full)
        try:
            records, read_from = read_changes(clients(src.system), src, since)
        except Exception as exc:  # one system down must not stop the others
            report.errors.append(f"{src.key}: {exc}")
            log(f"collect {src.key} failed: {exc}")
            continue
        with connect() as con:
            report.collected[src.key] = collect_records(con, src, records, since=since, now=datetime.now(UTC),
                                                        read_from=read_from)
        log(f"collected {src.key}: {report.collected[src.key].as_metadata()}")
    with connect() as con:
        for gtype in TYPE_ORDER:
            if gtype in GLOBAL_TYPES:
                merge_type(con, gtype)
        update_links(con, datetime.now(UTC))
        for view in push_order():
            m = map_view(con, view)
            report.unchanged[view.vkey] = m.unchanged
    settings = settings or PushSettings()
    for view in push_order():
        try:
            res = push_view(view, clients(view.system), connect, settings)
        except CircuitBreakerOpen as exc:
            report.breaker.append(str(exc))
            log(f"push {view.vkey} stopped: {exc}")
            continue
        except Exception as exc:
            report.errors.append(f"{view.vkey}: {exc}")
            log(f"push {view.vkey} failed: {exc}")
            continue
        report.pushed[view.vkey] = res
        log(f"pushed {view.vkey}: {res.as_metadata()}")
    if not settings.dry_run:
        with connect() as con:
            update_links(con, datetime.now(UTC))
    return report
