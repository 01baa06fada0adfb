"""The plan of a cycle: which steps a run needs, found by probing each entity first (issue #15).

Running every step of `sync_job` costs Dagster's per-step work (56 steps) and a rescan of every
record even when nothing changed. The plan probes each entity with the cheap probe the change
sensors and the collects already use (its result changes when the entity's data changes) and
compares it with the probe the entity's last complete collect took (`collect_state.probe`). A run
then selects only:

- **changed** entities (probe differs, never collected, or the probe failed now) with everything
  downstream: their merges, the link table, the mappings and pushes they reach;
- **pending** targets, views with writes still to make (held by a system failure or the circuit
  breaker, replayed dead letters, creates whose answer was lost) or dead letters the target already
  holds as intended (`push.resolve_present`): their own entity with its
  downstream, as if it had changed, so the retry starts from a fresh read of the target;
- **recheck** entities whose last read that saw a change (it stored a new version,
  `collect_state.changed_read_at`) is less than the lookback ago (`TALK_COLLECT_LOOKBACK_S`): a late
  commit carrying an older change time does not move the probe (newest change time and count), so the
  collect alone runs; a record it finds starts a follow-up run of that entity's downstream
  (`followup`). A recheck that finds nothing does not restart the window: with cycles closer together
  than the lookback it would never end.

- **settle** types: a push read its writes back (`assets.READ_BACK`: the state must know the versions the
  target now has) after the type's merge ran, so the merge has not seen them. Their merges, mappings and
  pushes run again without a collect (the read-back was the read): the state then ends where a full
  rebuild ends, and a write that merge finds (a record one push created, now wanted by another view) is
  made. The writes the edit's run made are not pending (`push.written_since_mapped`); before, they were,
  and this run re-read the targets as if a write had failed.

Nothing changed, pending, to recheck or to settle: no run at all; a quiet cycle costs one probe per entity and
a few reads of the state file. A changed declaration or engine (`code_digest`) selects everything.

A run that stops after its collects stored a change (a step failed, the process was killed) leaves the
probe moved and the change not merged: the next plan would find nothing changed and the edit would never
arrive. So the entities a run is started for are noted before it (`UNSETTLED`) and cleared only when it
succeeds; the next plan counts the ones still noted as changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import duckdb

from talk_assets.sync.assets import collected_key, merge_key, pushed_key, read_back_notes
from talk_assets.sync.collect import lookback_window
from talk_assets.sync.declaration import SOURCES, Source, View, source_of
from talk_assets.sync.mapping import payload_fields, target_views
from talk_assets.sync.merge import table
from talk_assets.sync.push import parked_join, present_dead_letters, waiting_join, written_since_mapped
from talk_assets.sync.sensors import downstream_of, settle_selection
from talk_assets.sync.store import code_digest, first, table_names

CODE_STATE = "code_digest"  # cycle_state row: the code digest the last planned run was built with
UNSETTLED = "unsettled"  # cycle_state row: source keys (JSON) of planned runs that have not succeeded yet


@dataclass
class CyclePlan:
    """What one cycle must run, and why (shown by the CLI and the run's tags)."""

    probes: dict[str, str | None] = field(default_factory=dict)  # source key -> probe (None: it failed)
    changed: list[Source] = field(default_factory=list)
    pending: list[View] = field(default_factory=list)
    recheck: list[Source] = field(default_factory=list)
    settle: list[str] = field(default_factory=list)  # global types to merge again (module docstring)
    everything: str = ""  # why every step runs ("" when the plan selects)

    @property
    def quiet(self) -> bool:
        return not (self.everything or self.changed or self.pending or self.recheck or self.settle)

    def selection(self) -> list[dg.AssetKey] | None:
        """The run's asset selection: None for the whole job, [] for no run."""
        if self.everything:
            return None
        reach = list(dict.fromkeys([*self.changed, *(source_of(v) for v in self.pending)]))
        keys = set(downstream_of(tuple(reach))) if reach else set()
        keys |= {collected_key(s) for s in self.recheck}
        keys |= set(settle_selection(tuple(self.settle))) if self.settle else set()
        return sorted(keys, key=lambda k: k.to_user_string())

    def followup(self, found: Iterable[str]) -> list[dg.AssetKey]:
        """The second run after a recheck collect stored records (`found`: source keys): what they
        reach downstream, without the collects that already ran."""
        srcs = tuple(s for s in self.recheck if s.key in set(found))
        if not srcs:
            return []
        done = {collected_key(s) for s in srcs}
        return [k for k in downstream_of(srcs) if k not in done]

    def summary(self) -> str:
        """One line for the CLI: what the cycle runs and why."""
        if self.everything:
            return f"plan: every step ({self.everything})"
        parts = [f"{what}: {', '.join(keys)}" for what, keys in (
            ("changed", [s.key for s in self.changed]), ("writes pending", [v.vkey for v in self.pending]),
            ("re-read for late commits", [s.key for s in self.recheck]),
            ("merge again after our writes were read back", self.settle)) if keys]
        return "plan: " + ("; ".join(parts) or "nothing to run")

    def reasons(self) -> dict[str, str]:
        """Run tags: what the plan selected and why."""
        if self.everything:
            return {"talk/plan": self.everything}
        return {"talk/plan": "changed, pending, recheck, settle",
                "talk/changed": ",".join(s.key for s in self.changed) or "-",
                "talk/pending": ",".join(v.vkey for v in self.pending) or "-",
                "talk/recheck": ",".join(s.key for s in self.recheck) or "-",
                "talk/settle": ",".join(self.settle) or "-"}


def probe_all(client_for: Callable[[str], Any], previous: dict[str, str] | None = None) -> dict[str, str | None]:
    """Every entity's probe, one client per system; None where the system did not answer (the
    collect will read and report the failure). `previous`: the probes stored with the last reads
    (`stored_probes`), the hint a probe may search from (`SystemClient.probe`)."""
    previous = previous or {}
    out: dict[str, str | None] = {}
    for system in dict.fromkeys(s.system for s in SOURCES):
        client = None
        try:
            client = client_for(system)
            for src in (s for s in SOURCES if s.system == system):
                try:
                    out[src.key] = client.probe(src.entity, previous.get(src.key))
                except Exception:
                    out[src.key] = None
        except Exception:  # no client (a wrong setting): its collect says what to fix
            out.update({s.key: None for s in SOURCES if s.system == system})
        finally:
            if client is not None:
                client.close()
    return out


def plan_cycle(con: duckdb.DuckDBPyConnection, probes: dict[str, str | None],
               now: datetime | None = None) -> CyclePlan:
    """Compare the probes with the state: see the module docstring."""
    now = now or datetime.now(UTC)
    plan = CyclePlan(probes=probes)
    stored = first(con, "SELECT value FROM cycle_state WHERE name = ?", [CODE_STATE])
    if stored is None or stored[0] != code_digest():
        plan.everything = "first planned cycle" if stored is None else "the declaration or engine changed"
        return plan
    state = {f"{s}.{e}": (probe, read_from) for s, e, probe, read_from in con.execute(
        "SELECT system, entity, probe, coalesce(changed_read_at, last_collected_at) FROM collect_state").fetchall()}
    window = lookback_window()
    unsettled = set(unsettled_sources(con))
    for src in SOURCES:  # the recheck window is a duration on our clock: no server time is compared with ours
        probe, last_read = state.get(src.key, (None, None))
        if probes.get(src.key) is None or probe is None or probe != probes[src.key] or src.key in unsettled:
            plan.changed.append(src)
        elif last_read is not None and now - last_read < window:
            plan.recheck.append(src)
    existing = table_names(con)
    reached = _pushes_reached(plan.changed)
    plan.pending = [v for v in target_views() if table("mapped", v.vkey).strip('"') in existing
                    and source_of(v) not in plan.changed
                    and (pending_writes(con, v) or present_dead_letters(con, v)
                         or (_target_gets_data(v, plan.changed, reached) and waiting_writes(con, v)))]
    plan.recheck = [s for s in plan.recheck if s not in {source_of(v) for v in plan.pending}]
    merged = {k for k in (plan.selection() or []) if k.path[0] == "merge"}
    plan.settle = [t for t, _ in read_back_notes(con) if merge_key(t) not in merged]
    return plan


def pending_writes(con: duckdb.DuckDBPyConnection, view: View) -> int:
    """The view's mapped creates and updates a push would try now: not written since they were mapped
    (`written_since_mapped`: the write an edit's run made is done; the settle maps it again), not
    parked as a dead letter (its payload unchanged and no replay asked), not waiting for a referenced
    record the target does not have yet (an order whose customer is held) and not held back for its data
    with the same payload (`push_waits`: an order naming a product the target lacks): those wait for a
    change, not for a retry (`waiting_writes`)."""
    waiting = [f"(m.refs->>'{f}' IS NOT NULL AND m.payload->>'{f}' IS NULL)"
               for f, p, _ in payload_fields(view) if p == "customer"]
    row = first(con, f"""
        SELECT count(*) FROM {table('mapped', view.vkey)} m
        {parked_join(view)}
        {waiting_join(view)}
        WHERE m.action IN ('create', 'update') AND d.id IS NULL AND w.gid IS NULL
          AND NOT {written_since_mapped(view)}
          {"AND NOT (" + " OR ".join(waiting) + ")" if waiting else ""}""")
    return int(row[0]) if row else 0


def waiting_writes(con: duckdb.DuckDBPyConnection, view: View) -> int:
    """The view's rows the last push held back for their data, payload unchanged since: worth another
    try only when the target system changed or is written in this run (the product may be there now)."""
    row = first(con, f"""
        SELECT count(*) FROM {table('mapped', view.vkey)} m {waiting_join(view)}
        WHERE m.action IN ('create', 'update') AND w.gid IS NOT NULL""")
    return int(row[0]) if row else 0


def _pushes_reached(changed: list[Source]) -> set[dg.AssetKey]:
    """The push steps downstream of the changed entities."""
    keys = downstream_of(tuple(changed)) if changed else []
    return {k for k in keys if len(k.path) == 3 and k.path[1] == "pushed"}


def _target_gets_data(view: View, changed: list[Source], reached: set[dg.AssetKey]) -> bool:
    """Whether `view`'s system may hold records after this run that it did not hold before, which a row
    waiting for its data (a product the target lacks) could now find: one of its entities changed, or a
    push of another of its views runs. The view's own push does not count: a customer edit reaches every
    order push, and Squarespace's waiting orders then cost a whole-inventory read each run, to wait again."""
    own = pushed_key(view)
    return (any(s.system == view.system for s in changed)
            or any(k.path[0] == view.system and k != own for k in reached))


def unsettled_sources(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The source keys of planned runs that started and have not succeeded since (`UNSETTLED`)."""
    row = first(con, "SELECT value FROM cycle_state WHERE name = ?", [UNSETTLED])
    return list(json.loads(row[0])) if row else []


def mark_unsettled(con: duckdb.DuckDBPyConnection, plan: CyclePlan) -> None:
    """Before a planned run: note the entities it reads (with any still noted), so a run that stops half-way
    leaves them changed for the next plan."""
    keys = sorted({*unsettled_sources(con), *(s.key for s in plan.changed), *(s.key for s in plan.recheck)})
    con.execute("INSERT OR REPLACE INTO cycle_state VALUES (?, ?, now())", [UNSETTLED, json.dumps(keys)])


def record_planned(con: duckdb.DuckDBPyConnection) -> None:
    """After a successful run: the code digest the state is now built with; nothing left unsettled."""
    con.execute("INSERT OR REPLACE INTO cycle_state VALUES (?, ?, now())", [CODE_STATE, code_digest()])
    con.execute("DELETE FROM cycle_state WHERE name = ?", [UNSETTLED])
