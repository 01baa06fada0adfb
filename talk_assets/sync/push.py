"""Share: turn the pending rows of a mapped view into API calls, one record at a time.

The rules of a trustworthy sync live here:
- Only differences are written (the mapped view already compared in canonical form), so a quiet
  cycle makes zero write calls and what we wrote is no change when it is collected back.
- Optimistic locking: an update names the version last collected; a target that changed since is
  skipped as a conflict and merged on the next cycle (the later edit wins per property).
- Idempotent creates: the intent is recorded before the POST. Where the API takes an
  `Idempotency-Key` the retry reuses it; elsewhere an intent whose answer was lost (or that met a
  server error) waits for the next collect, which links the record by its merge key (or, for
  orders, by its fingerprint); if the collect did not find it, the create is tried again.
- A failure of the system (401, 403, 429 after the client's waits, 5xx, no answer) holds that
  system's writes for the cycle (no more calls, no dead letter, a reason naming the setting to
  check); the next cycle delivers once it answers. A rejection of the record itself is retried by
  the client where safe, then written to the dead-letter table with the status and the response
  body. Nothing else is blocked. A dead letter is retried when its payload changes or when
  replayed, and resolved when the record is found in the target as intended.
- A circuit breaker judges all targets of a global type together and holds every target a source's
  mass change (updates and creates) reaches, until confirmed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from talk_assets.core.http import ApiError, settings_hint, system_fault
from talk_assets.settings import settings
from talk_assets.sync.declaration import REFERENCES, REQUIRED, View, source_of, views_of_type
from talk_assets.sync.links import link_mode
from talk_assets.sync.mapping import payload_fields, ref_namespace
from talk_assets.sync.merge import ident, table
from talk_assets.sync.model import write_uses
from talk_assets.sync.store import first, replace_rows, table_names
from talk_assets.sync.writer import HeldBack, Row, Writer, nest, to_json_type  # noqa: F401 - still importable from here
from talk_assets.sync.writers import writer_class, writer_for
from talk_assets.webhooks.own_writes import OwnWrites

log = logging.getLogger("talk_assets.push")



class CircuitBreakerOpen(Exception):
    """A run would change an unusually large share of a dataset; it stops until confirmed."""


@dataclass
class PushSettings:
    """Per run toggles; the limits default to the settings (talk_assets/settings.py, see the README)."""

    max_update_share: float = field(default_factory=lambda: settings().circuit_breaker_share)
    breaker_min_rows: int = field(default_factory=lambda: settings().circuit_breaker_min_rows)
    confirm_large: bool = False
    dry_run: bool = False

    @staticmethod
    def share_enabled(view: View) -> bool:
        """`TALK_SHARE_<SYSTEM>` / `TALK_SHARE_<SYSTEM>_<ENTITY>` = false turns writing off."""
        return settings().share_enabled(view.system, view.entity)


@dataclass
class PushResult:
    """What one push did. Every pending write that did not happen is counted in `not_written`:
    `failed` (the record was rejected: a dead letter), `held` (the system did not answer or refused
    us, not the record: tried again next cycle, see `held_reason`) and `not_confirmed` (a create
    whose answer was lost: the next collect verifies it)."""

    view: str
    created: int = 0
    updated: int = 0
    conflicts: int = 0
    failed: int = 0
    skipped: int = 0  # waiting: a dead letter with the same payload, or an unverified create
    pending_refs: int = 0  # rows whose referenced record does not exist in the target yet
    held: int = 0  # writes not made because the system failed (auth, rate, server, network)
    held_reason: str = ""  # why, naming the environment variable to check (never its value)
    not_confirmed: int = 0  # creates sent whose outcome is unknown (lost answer, server error)
    resolved: int = 0  # dead letters found in the target as intended (no call needed)
    calls: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    written_ids: set[str] = field(default_factory=set)  # the target's records (entity ids) written to

    @property
    def not_written(self) -> int:
        """Pending writes that did not happen this cycle (what `sync --once` shows and exits 1 on)."""
        return self.failed + self.held + self.not_confirmed

    def as_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "created": self.created, "updated": self.updated, "conflicts": self.conflicts,
            "failed": self.failed, "held": self.held, "not_confirmed": self.not_confirmed,
            "not_written": self.not_written, "skipped": self.skipped, "waiting_for_reference": self.pending_refs,
            "dead_letters_resolved": self.resolved,
        }
        if self.held_reason:
            meta["held_reason"] = self.held_reason
        return meta


def parked_join(view: View) -> str:
    """Joins `d` to the mapped row `m` when it is parked: an open dead letter of the same payload that
    nobody asked to replay (retried only when its payload changes or on `dlq replay`)."""
    return (f"LEFT JOIN dead_letters d ON d.view = '{view.vkey}' AND d.gid = m.gid AND d.payload_hash = m.payload_hash\n"
            "             AND d.resolved_at IS NULL AND NOT d.replay")


def waiting_join(view: View) -> str:
    """Joins `w` to the mapped row `m` while it waits for its data with the same payload (`push_waits`)."""
    return f"LEFT JOIN push_waits w ON w.view = '{view.vkey}' AND w.gid = m.gid AND w.payload_hash = m.payload_hash"


def written_since_mapped(view: View) -> str:
    """SQL condition on the mapped row `m`: the push wrote this row's payload after the mapping that holds
    it was made (the link's `last_written_hash` and `last_written_at`), so it is not pending any more.
    The time matters: a mapping made after our write that wants the same payload again (the target was
    edited away from it since) is a write still to make."""
    return (f"EXISTS (SELECT 1 FROM links l WHERE l.view = '{view.vkey}' AND l.gid = m.gid\n"
            f"               AND (m.action = 'create' OR l.nsid = m.nsid) AND l.last_written_hash = m.payload_hash\n"
            f"               AND l.last_written_at >= (SELECT built_at FROM derived_state WHERE name = 'map:{view.vkey}'))")


def load_rows(con: duckdb.DuckDBPyConnection, view: View) -> tuple[list[Row], int, int]:
    """Pending rows (minus parked dead letters, unverified creates and creates already made since the
    target was last read), the dataset size, and how many rows were held back."""
    src = source_of(view)
    mapped = table("mapped", view.vkey)
    version = f"cur.payload->>'$.{src.version}'" if src.version else "NULL"
    rows = con.execute(
        f"""
        SELECT m.gid, m.action, m.nsid, m.record_id, m.parent_id, m.changed_fields, m.payload::VARCHAR,
               m.refs::VARCHAR, m.global::VARCHAR, m.payload_hash, {version} AS version,
               (d.id IS NOT NULL) AS parked, (i.status IS NOT NULL AND i.status <> 'done') AS unverified,
               (i.status = 'done') AS created_unread,
               (m.action = 'update' AND cur.collected_at > ds.built_at) AS mapped_before,
               (w.gid IS NOT NULL AND w.since >= coalesce(t.newest, w.since)) AS still_waiting
        FROM {mapped} m
        {waiting_join(view)}
        -- a row held back for its data (a product the target lacks) with the same payload is tried again
        -- only once the target holds a record it did not hold at the wait: the write would cost calls (a
        -- whole-inventory read for Squarespace's SKUs) in every run that reaches the push, to fail the same way
        LEFT JOIN (SELECT max(collected_at) AS newest FROM raw_current WHERE system = '{view.system}') t ON true
        LEFT JOIN derived_state ds ON ds.name = 'map:{view.vkey}'
        LEFT JOIN raw_current cur ON cur.system = '{src.system}' AND cur.entity = '{src.entity}'
             AND cur.record_id = coalesce(m.parent_id, m.record_id)
        {parked_join(view)}
        LEFT JOIN push_intents i ON i.view = '{view.vkey}' AND i.gid = m.gid AND m.action = 'create'
             AND (i.started_at >= coalesce((SELECT last_collected_at FROM collect_state
                                            WHERE system = '{src.system}' AND entity = '{src.entity}'), i.started_at)
                  -- read back since, but this mapping was made before: the record we created is still linked
                  OR EXISTS (SELECT 1 FROM links l WHERE l.view = '{view.vkey}' AND l.gid = m.gid
                             AND l.record_id = i.record_id))
        WHERE m.action IN ('create', 'update')
        ORDER BY m.action, m.gid
        """
    ).fetchall()
    size = first(con, f"SELECT count(*) FROM {table('norm', view.vkey)}")[0]
    out, held = [], 0
    for gid, action, nsid, rid, pid, changed, payload, refs, glob, phash, ver, parked, unverified, created_unread, \
            mapped_before, still_waiting in rows:
        # created by us since the target was last read, or since read back but not yet mapped (its link
        # is the one the create wrote): it exists, and a run that does not map the target first (a
        # sensor's run for another system reaches the push through the push order) must not create it again.
        # An update mapped before the target record's current version was read (a push read back its
        # write after this mapping was made): it was written, or the record changed since; the next
        # mapping decides, and the version now stored must not let an old payload through the lock
        if parked or created_unread or mapped_before or still_waiting or (unverified and not _retry_unverified(view)):
            held += 1
            continue
        out.append(Row(view, gid, action, nsid, rid, pid, list(changed or []), json.loads(payload),
                       json.loads(refs or "{}"), json.loads(glob or "{}"), phash, ver))
    return out, int(size), held


def _retry_unverified(view: View) -> bool:
    return writer_class(view.system).supports_idempotency_key


def resolve_refs(con: duckdb.DuckDBPyConnection, view: View, rows: list[Row]) -> None:
    """Fill references that were unknown when mapped but are linked now (created earlier this cycle)."""
    for f, p, _ in payload_fields(view):
        if p not in REFERENCES:
            continue
        ns = ref_namespace(view, p)
        need = {r.refs.get(f) for r in rows if r.payload.get(f) is None and r.refs.get(f)}
        if not need or not ns:
            continue
        found = dict(con.execute(
            f"SELECT gid, record_id FROM links WHERE nsid LIKE '{ns}:%' AND gid IN (SELECT unnest(?::VARCHAR[]))",
            [sorted(need)],
        ).fetchall())
        for r in rows:
            if r.payload.get(f) is None and r.refs.get(f) in found:
                r.payload[f] = found[r.refs[f]]


def present_dead_letters(con: duckdb.DuckDBPyConnection, view: View) -> int:
    """How many open dead letters of `view` `resolve_present` would resolve now (the cycle's plan runs
    the push for them)."""
    return int(first(con, f"""
        SELECT count(*) FROM dead_letters d JOIN {table("mapped", view.vkey)} m ON m.gid = d.gid
        WHERE d.view = ? AND d.resolved_at IS NULL AND m.action = 'unchanged' AND m.nsid IS NOT NULL""",
                     [view.vkey])[0])


def resolve_present(con: duckdb.DuckDBPyConnection, view: View, now: datetime) -> int:
    """Resolve the open dead letters whose record the last collect found in the target as intended:
    linked, and its current values equal what the merged entity wants (the mapped row is
    `unchanged`). The write went through after all (its answer was lost) or someone fixed it."""
    mapped = table("mapped", view.vkey)
    n = present_dead_letters(con, view)
    if n:
        con.execute(f"""
            UPDATE dead_letters SET resolved_at = ?, resolution = 'present' WHERE view = ? AND resolved_at IS NULL
            AND gid IN (SELECT gid FROM {mapped} WHERE action = 'unchanged' AND nsid IS NOT NULL)""",
                    [now, view.vkey])
    return int(n)


def check_breaker(view: View, rows: list[Row], size: int, settings: PushSettings) -> None:
    """One view alone (kept for callers that judge a single view); `judge_breaker` judges a type."""
    writes = len(rows)
    if settings.confirm_large or writes < settings.breaker_min_rows or not size:
        return
    share = writes / size
    if share > settings.max_update_share:
        raise CircuitBreakerOpen(
            f"{view.system} {view.name}: this run would write {writes} of {size} records ({share:.0%}), more than "
            f"the {settings.max_update_share:.0%} limit (TALK_CIRCUIT_BREAKER_SHARE). Check the pending changes "
            "(mapped asset metadata) and confirm with `talk-assets sync --once --confirm` or the push asset's "
            "`confirm_large_change` config."
        )


def _pending_by_source(con: duckdb.DuckDBPyConnection, view: View) -> dict[str, int]:
    """Pending writes (creates and updates) of a view per source of the changed values: the
    namespace (`customwebshop-customer`) of the record each differing field's winning value came from,
    counting only values edited after the source's first read (`collect_state.first_collected_at`, on
    the source's clock as the edit times are: `collect.collect_records`; a value without an edit time counts)."""
    mapped, merged = table("mapped", view.vkey), table("merged", view.global_type)
    parts = [f"SELECT m.gid, split_part(g.{ident(p + '__from')}.nsid, ':', 1) AS src, g.{ident(p + '__from')}.at AS at "
             f"FROM {mapped} m JOIN {merged} g USING (gid) WHERE m.action IN ('create', 'update') "
             f"AND list_contains(m.changed_fields, '{f}')"
             for f, p, _ in payload_fields(view)]
    if not parts:
        return {}
    # a value edited before this state first read its source is the first sync converging, not a change
    rows = con.execute(
        f"SELECT src, count(DISTINCT gid) FROM ({' UNION ALL '.join(parts)}) u "
        "LEFT JOIN collect_state c ON c.system || '-' || c.entity = u.src "
        "WHERE src IS NOT NULL AND (c.first_collected_at IS NULL OR u.at IS NULL OR u.at > c.first_collected_at) "
        "GROUP BY src").fetchall()
    return {str(s): int(n) for s, n in rows}


def judge_breaker(con: duckdb.DuckDBPyConnection, global_type: str, settings: PushSettings) -> dict[str, str]:
    """The circuit breaker over every mapped view of a global type at once (their mapped tables
    must be built): {view key: message} for the views to hold.

    A source trips it when the writes its changes cause in some target (creates and updates) are
    at least `breaker_min_rows` and more than `max_update_share` of that target's records. Then
    every target the same source's changes reach is held, with one message naming the source and
    the counts, until confirmed. A view that has never written from this state (its first sync,
    converging by nature) neither trips the breaker nor is held; and only values edited after this
    state first read their source count (`_pending_by_source`): what a source held before is the
    first sync converging, also when it meets targets an earlier run already wrote (with `make run`
    each system's first runs come on their own)."""
    from talk_assets.sync.mapping import target_views

    if settings.confirm_large:
        return {}
    tables = table_names(con)
    pending: dict[str, tuple[View, dict[str, int], int]] = {}
    for v in target_views():
        if v.global_type != global_type or f"mapped_{v.vkey.replace('.', '_')}" not in tables:
            continue
        if first(con, "SELECT count(*) FROM push_log WHERE view = ?", [v.vkey])[0] == 0:
            continue  # the first sync of this view
        size = first(con, f"SELECT count(*) FROM {table('norm', v.vkey)}")[0]  # a view over nodes_<type>
        pending[v.vkey] = (v, _pending_by_source(con, v), int(size))
    tripped: dict[str, list[str]] = {}  # source -> what it would do where it trips
    for v, by_src, size in pending.values():
        for src, n in by_src.items():
            if n >= settings.breaker_min_rows and size and n / size > settings.max_update_share:
                tripped.setdefault(src, []).append(f"{v.system} {v.name}: {n} of {size} ({n / size:.0%})")
    if not tripped:
        return {}
    held: dict[str, str] = {}
    for src, where in tripped.items():
        reach = {k: by_src[src] for k, (_v, by_src, _s) in pending.items() if by_src.get(src)}
        msg = (f"a change in {src.replace('-', ' ')} would write more than the "
               f"{settings.max_update_share:.0%} limit (TALK_CIRCUIT_BREAKER_SHARE, at least "
               f"{settings.breaker_min_rows} records, TALK_CIRCUIT_BREAKER_MIN_ROWS) in {'; '.join(where)}. "
               f"Every target it reaches is held: {', '.join(f'{k} ({n})' for k, n in sorted(reach.items()))}. "
               "Check the pending changes (mapped asset metadata) and confirm with `talk-assets sync --once "
               "--confirm` or the push asset's `confirm_large_change` config.")
        for k in reach:
            held[k] = held[k] + " " + msg if k in held else msg
    return held


@dataclass
class Outcome:
    row: Row
    status: str  # created | updated | conflict | failed | unknown
    record_id: str | None = None
    error: ApiError | Exception | None = None


def execute(writer: Writer, rows: list[Row], progress: Callable[[int, int], None] | None = None,
            written: Callable[[Outcome, Any], None] | None = None) -> list[Outcome]:
    """The API calls, with no database connection open.

    A failure that is the system's (authentication, authorisation, rate limit after the client's
    waits, server error, no answer) stops the calls to that system: the row that met it and every
    row after it are `held` (a create that may have gone through is `unknown`, verified by the next
    collect), and go again next cycle; only a rejection of the record itself is `failed`.
    `written` is told each successful write and the target's answer, at once (the webhook inbox's
    record of our own writes, talk_assets/webhooks/own_writes.py)."""
    out: list[Outcome] = []
    stop: ApiError | None = None
    for i, row in enumerate(rows):
        if stop is not None:
            out.append(Outcome(row, "held", row.record_id, stop))
            continue
        if progress and i and i % 100 == 0:
            progress(i, len(rows))
        try:
            if row.action == "create":
                answer = writer.create(row)
                out.append(Outcome(row, "created", writer.new_record_id(row, answer)))
            else:
                fields = [f for f in row.changed_fields if f in row.payload]
                answer = writer.update(row, fields)
                out.append(Outcome(row, "updated", row.record_id))
            if written is not None:
                written(out[-1], answer)
        except HeldBack as exc:  # the data is not ready for this target yet: this row only waits
            out.append(Outcome(row, "held", row.record_id, exc))
        except ApiError as exc:
            if exc.status in (409, 412) and row.action == "update":
                out.append(Outcome(row, "conflict", row.record_id, exc))
            elif system_fault(exc.status):
                stop = exc
                maybe_done = row.action == "create" and (exc.status is None or exc.status >= 500)
                # may have been done: the intent stays and the next collect verifies it
                out.append(Outcome(row, "unknown" if maybe_done else "held", row.record_id, exc))
            else:
                out.append(Outcome(row, "failed", row.record_id, exc))
        except (ValueError, TypeError, KeyError) as exc:  # a payload the writer cannot express
            out.append(Outcome(row, "failed", row.record_id, exc))
    return out


def held_reason(system: str, exc: ApiError, held: int) -> str:
    """One line saying why a system's writes wait, and which setting to look at (never its value)."""
    status = f"HTTP {exc.status}" if exc.status is not None else "no response"
    hint = settings_hint(system, exc.status)
    return (f"{system}: {held} write(s) held until it answers ({system_fault(exc.status)}, {status} on "
            f"{exc.method} {exc.endpoint}){'; ' + hint if hint else ''}")


def record_intents(con: duckdb.DuckDBPyConnection, rows: list[Row], now: datetime) -> None:
    """Before any POST: what we are about to create (so a crash leaves a trace to verify).
    One statement for all of a push's creates (a statement per row cost ~7 ms each)."""
    intents: dict[tuple[str, str], tuple[str, str, str, str]] = {}
    for r in rows:
        if r.action == "create":
            fingerprint = json.dumps({k: r.glob.get(k) for k in ("lines", "total_amount", "email")}, sort_keys=True)
            intents[(r.view.vkey, r.gid)] = (r.view.vkey, r.gid, r.idem_key, fingerprint)  # last one wins
    if not intents:
        return
    staged = pd.DataFrame(list(intents.values()), columns=["view", "gid", "idem_key", "fingerprint"], dtype=object)
    with _registered(con, "staged_intents", staged):
        con.execute(
            "INSERT INTO push_intents SELECT view, gid, idem_key, ?::TIMESTAMPTZ, 'sending', NULL, fingerprint "
            "FROM staged_intents ON CONFLICT (view, gid) DO UPDATE "
            "SET started_at = excluded.started_at, status = 'sending', fingerprint = excluded.fingerprint",
            [now],
        )


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> Iterator[None]:
    con.register(name, frame)
    try:
        yield
    finally:
        con.unregister(name)


WRITES_SCHEMA = """
CREATE TABLE IF NOT EXISTS push_writes (
    view VARCHAR NOT NULL, nsid VARCHAR NOT NULL, prop VARCHAR NOT NULL, gid VARCHAR NOT NULL,
    value VARCHAR, origin_nsid VARCHAR, origin_at TIMESTAMPTZ, written_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (view, nsid, prop)
)
"""
"""What the sync last wrote per target record and global property: the value (in the global canonical
form the merge reads back) and the edit it carries (the record it came from and that edit's time).
When a collected value equals it, the merge credits that origin, not the echo (merge.py `_echo_select`)."""


def written_props(view: View, fields: list[str] | None) -> list[str]:
    """The global properties a write of `fields` (None: every field, a create) sets in `view`: each field's
    own property and those its write template composes it from (the CRM's `name` from first and last
    name). References are left out: the merge holds them as global ids, the target as its record ids."""
    out: list[str] = []
    for f, p, template in payload_fields(view):
        if fields is not None and f not in fields:
            continue
        for q in (p, *write_uses(template)):
            if q not in REFERENCES and q not in out:
                out.append(q)
    return out


class _Written:
    """The bookkeeping of successful writes, applied in a few set-based statements (`flush`)."""

    def __init__(self, view: View, now: datetime) -> None:
        self.view = view
        self.now = now
        self.created: dict[str, tuple[str, str, str]] = {}  # nsid -> (gid, record id, payload hash)
        self.updated: dict[str, str] = {}  # nsid -> payload hash
        self.props: dict[str, tuple[str, list[str]]] = {}  # nsid -> (gid, global properties written)
        self.resolved: set[str] = set()  # gids whose open dead letters are resolved

    def add(self, o: Outcome) -> None:
        r = o.row
        if o.status == "created":
            nsid = f"{self.view.namespace}:{o.record_id}"
            self.created[nsid] = (r.gid, str(o.record_id), r.payload_hash)
            self.props[nsid] = (r.gid, written_props(self.view, None))
        else:
            self.updated[str(r.nsid)] = r.payload_hash
            self.props[str(r.nsid)] = (r.gid, written_props(self.view, [f for f in r.changed_fields if f in r.payload]))
        self.resolved.add(r.gid)

    def _record_values(self, con: duckdb.DuckDBPyConnection) -> None:
        """`push_writes` of this batch, in one statement: each written property's merged value and its
        provenance (already the origin's, never an echo's: `merged_<type>.<prop>__from`)."""
        view = self.view
        rows = [(nsid, gid, p) for nsid, (gid, props) in self.props.items() for p in props]
        if not rows or f"merged_{view.global_type}" not in table_names(con):
            return
        con.execute(WRITES_SCHEMA)
        props = sorted({p for _n, _g, p in rows})
        value = "CASE s.prop " + " ".join(f"WHEN '{p}' THEN g.{ident(p)}::VARCHAR" for p in props) + " END"
        origin = "CASE s.prop " + " ".join(f"WHEN '{p}' THEN g.{ident(p + '__from')}" for p in props) + " END"
        staged = pd.DataFrame(rows, columns=["nsid", "gid", "prop"], dtype=object)
        with _registered(con, "staged_writes", staged):
            con.execute(
                f"""
                INSERT OR REPLACE INTO push_writes
                SELECT ? AS view, nsid, prop, gid, value, o.nsid AS origin_nsid, o.at AS origin_at,
                       ?::TIMESTAMPTZ AS written_at
                FROM (SELECT s.nsid, s.gid, s.prop, {value} AS value, {origin} AS o
                      FROM staged_writes s JOIN {table('merged', view.global_type)} g ON g.gid = s.gid)
                """,
                [view.vkey, self.now],
            )

    def flush(self, con: duckdb.DuckDBPyConnection) -> None:
        view, now = self.view, self.now
        if self.created:
            staged = pd.DataFrame([(nsid, *v) for nsid, v in self.created.items()],
                                  columns=["nsid", "gid", "record_id", "payload_hash"], dtype=object)
            with _registered(con, "staged_created", staged):
                con.execute(
                    "INSERT INTO links SELECT gid, ?, nsid, ?, ?, ?, record_id, ?, 'created', ?::TIMESTAMPTZ, "
                    "payload_hash, ?::TIMESTAMPTZ FROM staged_created "
                    "ON CONFLICT (view, nsid) DO UPDATE SET gid = excluded.gid, "
                    "last_written_hash = excluded.last_written_hash, last_written_at = excluded.last_written_at",
                    [view.global_type, view.vkey, view.system, view.entity, link_mode(view.vkey), now, now],
                )
                con.execute("INSERT INTO links_touched SELECT ?, nsid FROM staged_created", [view.vkey])
                # a gid created twice in one push (not expected): the last record id, as row by row did
                done = staged.drop_duplicates("gid", keep="last")
                with _registered(con, "staged_done", done):
                    con.execute(
                        "UPDATE push_intents SET status = 'done', record_id = d.record_id FROM staged_done d "
                        "WHERE push_intents.view = ? AND push_intents.gid = d.gid",
                        [view.vkey],
                    )
        if self.updated:
            staged = pd.DataFrame(list(self.updated.items()), columns=["nsid", "payload_hash"], dtype=object)
            with _registered(con, "staged_updated", staged):
                con.execute(  # the written links' new hashes (`replace_rows`: not an UPDATE of the link table)
                    "CREATE OR REPLACE TEMP TABLE links_written AS SELECT l.* REPLACE (u.payload_hash::VARCHAR AS "
                    "last_written_hash, ?::TIMESTAMPTZ AS last_written_at) "
                    "FROM links l JOIN staged_updated u ON l.view = ? AND l.nsid = u.nsid",
                    [now, view.vkey],
                )
                replace_rows(con, "links", "links_written", "view = ? AND nsid IN (SELECT nsid FROM links_written)",
                             [view.vkey])
                con.execute("INSERT INTO links_touched SELECT ?, nsid FROM staged_updated", [view.vkey])
        if self.props:
            self._record_values(con)
        if self.resolved:
            con.execute(
                "UPDATE dead_letters SET resolved_at = ?, resolution = 'written' WHERE view = ? AND resolved_at IS NULL "
                "AND gid IN (SELECT unnest(?::VARCHAR[]))",
                [now, view.vkey, sorted(self.resolved)],
            )
        self.created, self.updated, self.props, self.resolved = {}, {}, {}, set()


def record_outcomes(con: duckdb.DuckDBPyConnection, view: View, outcomes: list[Outcome], now: datetime,
                    run_id: str = "") -> PushResult:
    """What the calls did: links and intents of what was written, dead letters of what failed.
    Successes are applied in batches; a failure or an unknown outcome first applies the batch
    before it, so the statements take effect in the order of the outcomes, as row by row."""
    res = PushResult(view.vkey)
    written = _Written(view, now)
    held_by: Any = None
    waiting: dict[str, None] = {}  # the distinct reasons of rows held back for their data (HeldBack)
    # what waited for its data before is decided again by this push (a HeldBack outcome re-adds it)
    con.execute("DELETE FROM push_waits WHERE view = ? AND list_contains(?::VARCHAR[], gid)",
                [view.vkey, [o.row.gid for o in outcomes]])
    for o in outcomes:
        r = o.row
        if o.status in ("created", "updated"):
            if (rid := r.parent_id or o.record_id) is not None:
                res.written_ids.add(str(rid))
            if o.status == "created":
                res.created += 1
            else:
                res.updated += 1
            written.add(o)
            continue
        if o.status == "conflict":
            res.conflicts += 1
            continue
        written.flush(con)
        if o.status == "unknown":
            res.not_confirmed += 1
            con.execute("UPDATE push_intents SET status = 'unknown' WHERE view = ? AND gid = ?", [view.vkey, r.gid])
            if isinstance(o.error, ApiError) and system_fault(o.error.status):
                held_by = o.error
        elif o.status == "held":
            # never sent (or refused before it was processed): no intent to verify, no dead letter
            if isinstance(o.error, HeldBack):  # waits for its data, like a reference not yet in the target
                res.pending_refs += 1
                waiting[str(o.error)] = None
                con.execute("INSERT OR REPLACE INTO push_waits VALUES (?, ?, ?, ?, ?)",
                            [view.vkey, r.gid, r.payload_hash, str(o.error)[:1000], now])
            else:
                res.held += 1
                held_by = o.error
            if r.action == "create":
                con.execute("DELETE FROM push_intents WHERE view = ? AND gid = ?", [view.vkey, r.gid])
        else:
            res.failed += 1
            err = o.error
            status = getattr(err, "status", None)
            body = getattr(err, "body", None)
            message = str(err)
            fld = getattr(err, "field", None)
            if fld:
                message += f" (field '{fld}')"
            res.failures.append({"record": r.record_id or r.gid, "gid": r.gid, "action": r.action, "status": status,
                                 "error": message[:300]})
            con.execute("DELETE FROM push_intents WHERE view = ? AND gid = ?", [view.vkey, r.gid])
            existing = first(con, "SELECT id FROM dead_letters WHERE view = ? AND gid = ? AND resolved_at IS NULL",
                             [view.vkey, r.gid])
            body_text = json.dumps(body, ensure_ascii=False)[:4000] if body is not None else None
            # a server error or a network failure is worth another try next cycle; a rejection waits
            # until the data changes or someone replays it
            retry = isinstance(err, ApiError) and err.transient
            if existing:
                con.execute(
                    "UPDATE dead_letters SET payload = ?, payload_hash = ?, status = ?, error = ?, body = ?, "
                    "attempts = attempts + 1, last_failed_at = ?, replay = ? WHERE id = ?",
                    [json.dumps(r.payload), r.payload_hash, status, message, body_text, now, retry, existing[0]],
                )
            else:
                con.execute(
                    "INSERT INTO dead_letters (view, gid, action, record_id, payload, payload_hash, status, error, body, "
                    "first_failed_at, last_failed_at, replay) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [view.vkey, r.gid, r.action, r.record_id, json.dumps(r.payload), r.payload_hash, status, message,
                     body_text, now, now, retry],
                )
    written.flush(con)
    if isinstance(held_by, ApiError):
        res.held_reason = held_reason(view.system, held_by, res.held + res.not_confirmed)
        log.warning("%s", res.held_reason)
    if waiting:
        reasons = list(waiting)
        more = f" (and {len(reasons) - 5} more reasons)" if len(reasons) > 5 else ""
        res.held_reason = " ".join(filter(None, [res.held_reason, *reasons[:5]])) + more
        log.warning("%s %s: %s", view.system, view.name, "; ".join(reasons[:5]) + more)
    if res.created or res.updated or res.conflicts or res.failed or not (res.held or res.not_confirmed):
        # a push the system refused entirely is no push: a first sync held by a wrong key stays a first sync
        con.execute("INSERT INTO push_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, view.vkey, now, res.created, res.updated, res.conflicts, res.failed, res.skipped, 0])
    return res


def push_view(view: View, client: Any, connect_fn: Callable[..., Any], settings: PushSettings | None = None,
              run_id: str = "", progress: Callable[[int, int], None] | None = None) -> PushResult:
    """One view's pending changes to its system. `connect_fn` opens the state file (briefly)."""
    settings = settings or PushSettings()
    if not settings.share_enabled(view):
        return PushResult(view.vkey)
    src = source_of(view)
    with connect_fn() as con:
        if first(con, "SELECT count(*) FROM collect_state WHERE system = ? AND entity = ?",
                 [src.system, src.entity])[0] == 0:
            # never read from this state: what the target already holds is unknown, and a create could
            # duplicate a record it has (with `make run` each system's first run comes on its own)
            pending = first(con, f"SELECT count(*) FROM {table('mapped', view.vkey)} WHERE action IN ('create', 'update')")[0]
            return PushResult(view.vkey, held=int(pending), held_reason=(
                f"{view.system} {src.entity} has not been read yet from this state: nothing is written there "
                "before its own records are known (a new record could be one it already has); the next run "
                "that reads it writes") if pending else "")
        resolved = 0 if settings.dry_run else resolve_present(con, view, datetime.now(UTC))
        rows, size, held = load_rows(con, view)
        unread = unread_sources(con, view.global_type)
        # a new record waits until every system holding this type has been read: the evidence that it is
        # one the target already has can be in a third system (a CRM company without e-mail is the webshop's
        # customer with e-mail through PowerOffice's record holding both e-mail and org number)
        early = [r for r in rows if r.action == "create"] if unread else []
        if early:
            rows = [r for r in rows if r.action != "create"]
        resolve_refs(con, view, rows)
        verdict = judge_breaker(con, view.global_type, settings) if rows else {}
    if view.vkey in verdict:
        raise CircuitBreakerOpen(verdict[view.vkey])
    if not rows and not held:
        return _held_early(PushResult(view.vkey, resolved=resolved), view, early, unread)
    writer = writer_for(view.system, client)
    # the view's written fields once, not per row: ~0.5 ms a call, and 1,794 held order creates (their
    # customer not in the target yet) cost 0.8 s of a push that wrote nothing (1M linked records)
    fields = payload_fields(view)
    waiting = [r for r in rows if r.action == "create" and _missing_ref(fields, r)]
    waiting_ids = {id(r) for r in waiting}
    incomplete = [r for r in rows if id(r) not in waiting_ids and missing_required(view, r, fields)]
    held_back = {id(r) for r in waiting} | {id(r) for r in incomplete}  # by identity: Row == compares payloads
    rows = [r for r in rows if id(r) not in held_back]
    if settings.dry_run:
        res = PushResult(view.vkey, skipped=held, pending_refs=len(waiting))
        res.calls = [writer.describe(r, r.changed_fields) for r in rows]
        return _held_early(res, view, early, unread)
    now = datetime.now(UTC)
    with connect_fn() as con:
        record_intents(con, rows, now)
    own = OwnWrites.open(view.system)
    try:
        outcomes = execute(writer, rows, progress, written=None if own is None else (
            lambda o, answer: own.add(view.entity, o.record_id, "create" if o.status == "created" else "update",
                                      answer)))
    finally:
        if own is not None:
            own.close()
    outcomes += [Outcome(r, "failed", None, ValueError(
        f"{view.system} {view.name} {r.record_id or 'new'} for {r.gid}: required field(s) "
        f"{', '.join(missing_required(view, r, fields))} empty in every linked record; "
        + ("not created" if r.action == "create" else "not cleared in the target (nothing of this update sent)")))
        for r in incomplete]
    with connect_fn() as con:
        res = record_outcomes(con, view, outcomes, datetime.now(UTC), run_id)
    res.skipped += held
    res.pending_refs += len(waiting)
    res.resolved = resolved
    return _held_early(res, view, early, unread)


def _held_early(res: PushResult, view: View, early: list[Row], unread: list[str]) -> PushResult:
    """Count the creates held until every source of the type has been read, with the reason."""
    if early:
        res.held += len(early)
        res.held_reason = " ".join(filter(None, [res.held_reason, (
            f"{len(early)} new {view.global_type} record(s) wait until {', '.join(unread)} "
            f"{'has' if len(unread) == 1 else 'have'} been read from this state: a record there can show that a "
            "new one is a record the target already has")]))
    return res


def unread_sources(con: duckdb.DuckDBPyConnection, global_type: str) -> list[str]:
    """The sources of a global type this state has never read ("poweroffice customers"): until each
    has been, which records are one entity is not known, so nothing of the type is created."""
    read = set(con.execute("SELECT system, entity FROM collect_state").fetchall())
    wanted = dict.fromkeys((source_of(v).system, source_of(v).entity) for v in views_of_type(global_type))
    return [f"{s} {e}" for s, e in wanted if (s, e) not in read]


def missing_required(view: View, row: Row, fields: list[tuple[str, str, str]]) -> list[str]:
    """Required target fields a write would leave empty: any of them in a new record, or one an update
    would clear (a record that never had it is not made worse by an update of its other fields).
    `fields`: the view's `payload_fields`."""
    return [f for f, p, _ in fields
            if p in REQUIRED[view.global_type] and row.payload.get(f) in (None, "", "[]")
            and (row.action == "create" or f in row.changed_fields)]


def _missing_ref(fields: list[tuple[str, str, str]], row: Row) -> bool:
    """A new record whose required reference (an order's customer) is not in the target yet; `fields`:
    its view's `payload_fields`."""
    return any(p == "customer" and row.refs.get(f) and row.payload.get(f) is None for f, p, _ in fields)
