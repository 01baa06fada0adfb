"""incremental and latency: whole sync cycles (`talk_assets.sync.runner.run_cycle`: Dagster's sync_job in
process) against all five sandboxes.

Setup: seed the sandboxes, switch their rate limits off (the setup's first cycle creates tens of
thousands of records; pacing is measured by the push benchmark) with a client pace of 2,000
requests/s, and run real cycles until one writes nothing: every link in the state file is made by
the engine. The world is the sandbox's own (no special shape): about 8.9 link rows in linked
groups per unit of `size`, so the full profile's size 11,500 gives ~100,000 linked records
(records in one system linked to a record in another) across customers, products, orders and users.
That setup takes ~5 minutes on 2 cores (first cycle 170-190 s for ~42,000 writes).
With `--consistent` (`Env(consistent=True)`) the sandboxes start from the consistent seed instead
(`talk_assets/sandbox/consistent.py`): the world the same cycles converged to, made once per seed,
size and code and restored from `TALK_SANDBOX_CACHE` afterwards; the setup is then one real cycle
that links everything and writes nothing.
Edits are made through the systems' own clients to records that are linked to a record in another
system (Shopify <-> PowerOffice persons, Custom Webshop <-> Custom CRM), one per linked pair.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import Recorder, Result, Sandboxes, timer

# latency: (sandbox size, edits, seconds an edit may take to arrive) per world; 200 is the sandbox's
# default size (`talk-assets sandbox --size`), 11,500 gives ~100,000 linked records
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"inc_size": 1_000, "edits": (1, 100, 1_000), "latency": [(200, 20, 60.0)]},
    "full": {"inc_size": 11_500, "edits": (1, 100, 10_000), "latency": [(200, 40, 60.0), (11_500, 20, 180.0)]}}
POLL_S = 2.0
LATER_S = 600  # the edits' distance from the initial sync, longer than the collect lookback (300 s)
# A quiet cycle is measured twice: right after the cycle before (which spent Shopify's cost bucket, restored
# at 100 points/s on the standard plan, https://shopify.dev/docs/api/usage/limits: the probes then wait for
# it), and after this pause, as a polling interval of at least that long finds it (2,000 points in 20 s)
BUCKET_REFILL_S = 20.0

# view -> (system, entity, changes for a new first name, the first name read back from a record)
EDITS: dict[str, tuple[str, str, Callable[[str, dict], dict], Callable[[dict], str]]] = {
    "shopify.customer": ("shopify", "customer", lambda t, r: {"first_name": t}, lambda r: r.get("first_name") or ""),
    "poweroffice.customers_person": ("poweroffice", "customers", lambda t, r: {"FirstName": t},
                                     lambda r: r.get("FirstName") or ""),
    "customwebshop.customer": ("customwebshop", "customers", lambda t, r: {"first_name": t},
                               lambda r: r.get("first_name") or ""),
    "customcrm.customer": ("customcrm", "customers",
                           lambda t, r: {"name": f"{t} {(r.get('name') or 'X').split()[-1]}"},
                           lambda r: (r.get("name") or "").split(" ")[0]),
}


class Env:
    """Sandboxes, a fresh state directory and cached clients, converged (a cycle that writes nothing)."""

    def __init__(self, size: int, seed: int = 7, consistent: bool | None = None) -> None:
        """`consistent` (default: `TALK_BENCH_CONSISTENT=1`): the sandboxes start with the records the
        sync makes of this world (`talk_assets/sandbox/consistent.py`, converged once per seed, size and
        code, then restored), so the first cycle here links everything and writes nothing."""
        from talk_assets.config import SYSTEMS

        if consistent is None:
            consistent = os.environ.get("TALK_BENCH_CONSISTENT", "") in ("1", "true")
        self.consistent = consistent

        self.saved = dict(os.environ)
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
        os.environ["TALK_DATA_DIR"] = str(self.tmp)
        os.environ["TALK_CIRCUIT_BREAKER_SHARE"] = "1.0"
        for k in SYSTEMS:
            os.environ[f"TALK_{k.upper()}_MAX_RPS"] = "2000"
        with timer() as t_sb:
            self.sb = Sandboxes(list(SYSTEMS), size, seed, consistent=consistent)
        self.sandbox_s = t_sb["s"]  # seeding (and, consistent, converging or restoring) the sandboxes
        self.sb.env()
        # setup: no rate limits, and Shopify's cost bucket restored as fast as the sandbox can (its speed
        # factor): with limits off the sandbox still reports the bucket it drains, and our client paces by
        # that report (CostPacer), so the ~46,000 setup writes at 11,500 waited at 100 points/s for hours
        speed = {s: self.sb.control(s, "GET", "faults").get("rate_limit_speed", 1.0) for s in self.sb.urls}
        self.sb.faults({"rate_limit_enabled": False, "rate_limit_speed": 1e6})
        self._clients: dict[str, Any] = {}
        self.setup_cycles: list[tuple[float, int]] = []
        for _ in range(6):
            with timer() as t:
                rep = self.cycle()
            self.setup_cycles.append((t["s"], rep.writes))
            if rep.writes == 0:
                break
        self.speed = speed
        self.measured_speed()

    def measured_speed(self) -> None:
        """The measured part runs at the sandbox's own speed (Shopify's bucket restored at its documented
        rate), limits still off."""
        for s, v in self.speed.items():
            self.sb.faults({"rate_limit_enabled": False, "rate_limit_speed": v}, [s])

    @contextlib.contextmanager
    def unmeasured(self) -> Iterator[None]:
        """Work that is not measured (the benchmark's own edits) with the cost bucket refilled at once:
        5,000 Shopify edits would wait ~10 minutes for it before the cycle starts."""
        self.sb.faults({"rate_limit_enabled": False, "rate_limit_speed": 1e6})
        try:
            yield
        finally:
            self.measured_speed()

    def link_counts(self) -> tuple[int, int]:
        """(rows in the link table, rows whose entity is linked to at least one other record)."""
        from talk_assets.sync.store import connect, first

        with connect() as con:
            row = first(con, "SELECT count(*), count(*) FILTER (WHERE gid IN "
                             "(SELECT gid FROM links GROUP BY gid HAVING count(*) > 1)) FROM links")
        assert row is not None
        return int(row[0]), int(row[1])

    def clients(self, system: str) -> Any:
        from talk_assets.resources import client_from_env

        if system not in self._clients:
            self._clients[system] = client_from_env(system)
        return self._clients[system]

    def cycle(self, full: bool = False, selection: list[Any] | None = None) -> Any:
        """One run of Dagster's sync_job in this process (the one runner), in an ephemeral instance
        (`selection`: only these assets, as a sensor's run request asks)."""
        import dagster as dg

        from talk_assets.sync.runner import run_cycle

        if not hasattr(self, "instance"):
            self.instance = dg.DagsterInstance.ephemeral()
        return run_cycle(full=full, instance=self.instance, selection=selection)

    def reads_by_system(self) -> str:
        """Reads per sandbox since the last reset, for the notes."""
        return ", ".join(f"{s} {self.sb.stats(s)['reads']}" for s in self.sb.urls)

    def calls(self) -> tuple[int, int]:
        """(reads, writes) over every sandbox since the last reset."""
        st = [self.sb.stats(s) for s in self.sb.urls]
        return sum(s["reads"] for s in st), sum(s["writes"] for s in st)

    def pairs(self) -> list[tuple[str, str, str, str]]:
        """(view, record id, linked view, linked record id) for linked records the edits can reach."""
        from talk_assets.sync.declaration import DATAFLOWS
        from talk_assets.sync.store import connect

        # pairs of views a dataflow connects (a Shopify customer that shares its e-mail with a CRM
        # customer is one entity, but no dataflow carries its first name between the two)
        flows = {(f.source.vkey, f.target.vkey) for f in DATAFLOWS if f.source.vkey in EDITS and f.target.vkey in EDITS}
        pairs = " OR ".join(f"(a.view = '{x}' AND b.view = '{y}') OR (a.view = '{y}' AND b.view = '{x}')" for x, y in flows)
        with connect() as con:
            return con.execute(
                f"""SELECT a.view, a.record_id, b.view, b.record_id FROM links a JOIN links b USING (gid)
                    LEFT JOIN raw_current c ON c.system = 'customcrm' AND c.entity = 'customers'
                         AND c.record_id = CASE WHEN a.view = 'customcrm.customer' THEN a.record_id
                                                WHEN b.view = 'customcrm.customer' THEN b.record_id END
                    WHERE ({pairs})
                      AND (c.record_id IS NULL OR c.payload->>'$.customer_type' = 'person')
                      AND gid IN (SELECT gid FROM links GROUP BY gid HAVING count(*) = 2)
                    ORDER BY a.view, a.record_id"""
            ).fetchall()

    def later(self) -> None:
        """Our side of "10 minutes later": our clock cannot move, so the state's own read times (ours) move
        back as far as the sandboxes' clocks moved on; else the setup's reads, minutes old, would still hold
        every entity within the lookback and the edit cycles would re-read them for late commits (the whole
        Squarespace inventory: ~270 reads at ~100k)."""
        from talk_assets.sync.store import connect

        with connect() as con:
            con.execute(f"UPDATE collect_state SET last_collected_at = last_collected_at - INTERVAL {LATER_S} SECOND, "
                        f"changed_read_at = changed_read_at - INTERVAL {LATER_S} SECOND")

    def entities(self) -> list[tuple[str, str]]:
        """(view, record id): one record of each entity linked to another record that the edits can
        reach (a view of `EDITS`; CRM customers that are persons), picked at random per entity, so no two
        edits merge into one write. Many more than `pairs` (entities of exactly two records a dataflow
        connects): ~10,000 edits need them at ~100k linked records."""
        from talk_assets.sync.store import connect

        views = ", ".join(f"'{v}'" for v in EDITS)
        with connect() as con:
            return con.execute(
                f"""SELECT view, record_id FROM (
                        SELECT a.view, a.record_id,
                               row_number() OVER (PARTITION BY a.gid ORDER BY hash(a.view, a.record_id)) AS rn
                        FROM links a
                        LEFT JOIN raw_current c ON a.view = 'customcrm.customer' AND c.system = 'customcrm'
                             AND c.entity = 'customers' AND c.record_id = a.record_id
                        WHERE a.view IN ({views})
                          AND (c.record_id IS NULL OR c.payload->>'$.customer_type' = 'person')
                          AND a.gid IN (SELECT gid FROM links GROUP BY gid HAVING count(*) > 1))
                    WHERE rn = 1 ORDER BY view, record_id"""
            ).fetchall()

    def edit(self, view: str, record_id: str, token: str) -> None:
        system, entity, change, _ = EDITS[view]
        client = self.clients(system)
        current = client.get_record(entity, record_id) or {}
        client.update_record(entity, record_id, change(token, current))

    def read(self, view: str, record_id: str) -> str:
        system, entity, _, get = EDITS[view]
        return get(self.clients(system).get_record(entity, record_id) or {})

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self.sb.close()
        os.environ.clear()
        os.environ.update(self.saved)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _collected(rep: Any) -> tuple[int, int]:
    """(records the cycle's collect read, of which new or changed)."""
    return (sum(c.read for c in rep.collected.values()),
            sum(c.new + c.changed for c in rep.collected.values()))


def _edit_cycle(env: Env, picks: list[tuple[str, str]], tag: str) -> dict[str, Any]:
    """Edit one record per pick (not measured), then one cycle: its time, calls, collected records,
    Dagster runs and the process's peak memory after it; then the cycles that collect the sync's own
    writes back, so the next measurement starts quiet."""
    with env.unmeasured():
        for i, (view, rid) in enumerate(picks):
            env.edit(view, rid, f"{tag}{i:05d}")
    env.sb.reset_stats()
    with timer() as t:
        rep = env.cycle()
    reads, writes = env.calls()
    by_system = env.reads_by_system()
    writes_by = ", ".join(f"{s} {st['writes']}" for s in env.sb.urls if (st := env.sb.stats(s))["writes"])
    peak = _peak_rss_mb()
    steps = _longest_steps(env, rep.run_ids)
    settle = [env.cycle() for _ in range(2)]  # the echo of its writes, then (within the lookback) a re-read
    return {"time": t["s"], "reads": reads, "writes": writes, "report": rep, "runs": len(rep.run_ids),
            "merged_again": _merged_again(env, rep.run_ids), "reads_by_system": by_system,
            "writes_by_system": writes_by or "none", "peak_mb": peak, "steps": steps,
            "collected": _collected(rep), "pushed": rep.writes, "settle": [len(r.run_ids) for r in settle]}


def _longest_steps(env: Env, run_ids: list[str], n: int = 6) -> str:
    """The runs' `n` longest steps with their seconds, and how many steps took how long in all (where an
    edit cycle's time goes; the rest of the cycle is the plan's probes and Dagster's own work)."""
    stats = [st for rid in run_ids for st in env.instance.get_run_step_stats(rid)
             if st.start_time is not None and st.end_time is not None]
    stats.sort(key=lambda st: st.end_time - st.start_time, reverse=True)
    total = sum(st.end_time - st.start_time for st in stats)
    longest = ", ".join(f"{st.step_key} {st.end_time - st.start_time:.1f}s" for st in stats[:n]) or "none"
    return f"{longest}; {len(stats)} steps, {total:.1f}s in them"


def _merged_again(env: Env, run_ids: list[str]) -> tuple[int, int]:
    """(records merged again, records in the merged types) over the merge steps of these runs, from each
    merge materialization's metadata (`records_merged_again`, `records`)."""
    import dagster as dg

    again = total = 0
    for rid in run_ids:
        for rec in env.instance.all_logs(rid, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            mat = rec.dagster_event.event_specific_data.materialization
            if mat.asset_key.path[0] == "merge" and "records_merged_again" in mat.metadata:
                again += int(mat.metadata["records_merged_again"].value)
                total += int(mat.metadata["records"].value)
    return again, total


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def incremental(rec: Recorder, profile: str) -> None:
    """Full, quiet and edit cycles on one converged world (issue #15): each a real `run_cycle`, whose
    plan (sync/plan.py) probes every entity and runs only what changed."""
    from talk_assets.settings import environment

    p = dict(PROFILES[profile])
    p["inc_size"] = int(os.environ.get("TALK_BENCH_INC_SIZE") or p["inc_size"])  # --incremental-size
    counts = tuple(int(n) for n in os.environ["TALK_BENCH_EDITS"].split(",")) if os.environ.get("TALK_BENCH_EDITS") \
        else tuple(p["edits"])  # --edits
    print(f"incremental: sandbox size {p['inc_size']:,} (all five systems); cycles with "
          f"{', '.join(f'{n:,}' for n in counts)} edits, quiet cycles within and past the lookback, a full cycle",
          flush=True)
    with timer() as t_setup:
        env = Env(p["inc_size"])
    try:
        setup_writes = sum(w for _, w in env.setup_cycles)
        links, linked = env.link_counts()
        print("  setup cycles (seconds, writes): " + ", ".join(f"({s:.1f}, {w})" for s, w in env.setup_cycles)
              + f"; {t_setup['s']:.0f} s in all; link table {links:,} rows, {linked:,} linked to another record",
              flush=True)
        # the steady state: the edits come a while (10 minutes by the sandboxes' clocks) after the
        # initial sync, and one cycle has run since, so no read window still holds the setup's burst
        for system in env.sb.urls:
            env.sb.control(system, "POST", "clock", {"advance_s": LATER_S})
        env.later()
        env.cycle()
        rng = random.Random(3)
        # one edit per linked entity (two records of one entity edited would merge into one write)
        editable = env.entities()
        n_entities = len(editable)
        picks = rng.sample(editable, min(sum(counts), len(editable)))
        cycles: dict[int, dict[str, Any]] = {}
        start = 0
        for n in counts:  # each cycle edits records no earlier cycle edited
            if start >= len(picks):
                break
            cycles[n] = _edit_cycle(env, picks[start:start + n], f"E{n}x")
            cycles[n]["edits"] = len(picks[start:start + n])
            start += n
        # quiet: nothing changed. Within the lookback (TALK_COLLECT_LOOKBACK_S, 300 s) the collects re-read
        # for late commits; past it the plan starts no run. Our clock cannot be moved, so "past the
        # lookback" is the same cycle with the lookback set to 0.
        env.sb.reset_stats()
        with timer() as t_recheck:
            rep_recheck = env.cycle()
        r_reads, r_writes = env.calls()
        with environment({"TALK_COLLECT_LOOKBACK_S": "0"}):
            env.cycle()  # the last re-read's follow-up, if any
            with timer() as t_quiet_b2b:
                env.cycle()
            crossed = 0
            for _ in range(3):
                time.sleep(BUCKET_REFILL_S)
                env.sb.reset_stats()
                with timer() as t_quiet:
                    rep_quiet = env.cycle()
                q_reads, q_writes = env.calls()
                if not rep_quiet.run_ids:
                    break
                crossed += 1  # a period began in it (the once-per-period reads, measured below): again
            # the cycle in which the once-per-period reads fall (Squarespace's whole inventory, the probe parts
            # that page: `paged_probe_part`): a new period for all of them at once (the period is the time
            # divided by the setting, so another setting is another period)
            with environment({"TALK_PROBE_REFRESH_S": "899", "TALK_SQUARESPACE_INVENTORY_FULL_READ_S": "899"}):
                time.sleep(BUCKET_REFILL_S)
                env.sb.reset_stats()
                with timer() as t_period:
                    rep_period = env.cycle()
                p_reads, _ = env.calls()
                p_by = env.reads_by_system()
            env.cycle()  # back to the default periods: the tokens move once more
        env.sb.reset_stats()
        with timer() as t_full:
            rep_full = env.cycle(full=True)
        f_reads, f_writes = env.calls()
        peak = _peak_rss_mb()
    finally:
        env.close()
    f_rec, _ = _collected(rep_full)
    size = p["inc_size"]
    label = f"{linked:,} linked records (sandbox size {size:,})"
    setup_rate = setup_writes / sum(s for s, _ in env.setup_cycles)
    rec.add(Result("incremental.setup_time", t_setup["s"], "s", "n/a", None, label,
                   note=(f"consistent seed ({env.sandbox_s:.0f} s to start the sandboxes); " if env.consistent else "")
                        + f"{len(env.setup_cycles)} cycles (s, writes): "
                        + ", ".join(f"({s:.0f}, {w})" for s, w in env.setup_cycles)
                        + f"; {setup_writes:,} writes at {setup_rate:.0f} writes/s; link table {links:,} rows, "
                          f"{linked:,} linked to another record"))
    full_note = f"full cycle: {f_reads} reads, {f_writes} writes, collect read {f_rec:,} records"
    rec.add(Result("incremental.full_time", t_full["s"], "s", "n/a", None, label, note=full_note))

    def calls(name: str, reads: int, writes: int) -> None:
        """A cycle's API reads and writes as results of their own (issue 15), against the full cycle's."""
        rec.add(Result(f"incremental.{name}_reads", reads, "reads", "full cycle", f_reads, label))
        rec.add(Result(f"incremental.{name}_writes", writes, "writes", "full cycle", f_writes, label))

    calls("full", f_reads, f_writes)
    for n, m in cycles.items():
        name = f"edits{n}"
        rec.add(Result(f"incremental.{name}_time", m["time"], "s", "full cycle", t_full["s"], label,
                       note=f"{m['edits']:,} edits; {m['reads']} reads ({m['reads_by_system']}) + {m['writes']} writes "
                            f"({m['writes_by_system']}; {m['pushed']} pushed), collect read {m['collected'][0]:,} records "
                            f"({m['collected'][1]:,} new or changed), {m['runs']} Dagster run(s) (longest steps: "
                            f"{m['steps']}), peak RSS after it "
                            f"{m['peak_mb']:,.0f} MB; the next cycles ran {m['settle']} run(s) (the echo, the re-read)"))
        calls(name, m["reads"], m["writes"])
        rec.add(Result(f"incremental.{name}_peak_rss", m["peak_mb"], "MB", "n/a", None, label,
                       note="the benchmark process's peak resident memory so far, right after this cycle"))
        again, merged = m["merged_again"]
        rec.add(Result(f"incremental.{name}_merged_again", again, "records", "records in the merged types", merged,
                       label, note="records the cycle's merges merged again (an orders merge, not yet incremental, "
                                   "counts all of its records)"))
    if (many := cycles.get(100)) is not None:
        many_calls = many["reads"] + many["writes"]
        rec.add(Result("incremental.api_calls", many_calls, "calls", "full cycle", f_reads + f_writes, label,
                       note=f"{many['edits']} edits, one per linked entity ({n_entities:,} entities)"))
        rec.add(Result("incremental.time", many["time"], "s", "full cycle", t_full["s"], label))
    rec.add(Result("incremental.quiet_recheck_time", t_recheck["s"], "s", "full cycle", t_full["s"], label,
                   note=f"within the lookback: {r_reads} reads, {r_writes} writes, collect read "
                        f"{_collected(rep_recheck)[0]:,} records, {len(rep_recheck.run_ids)} Dagster run(s)"))
    rec.add(Result("incremental.quiet_time", t_quiet["s"], "s", "full cycle", t_full["s"], label,
                   note=f"past the lookback: {q_reads} reads, {q_writes} writes, {len(rep_quiet.run_ids)} Dagster "
                        f"run(s), {BUCKET_REFILL_S:.0f} s after the cycle before; right after it: "
                        f"{t_quiet_b2b['s']:.2f} s (the probes wait for Shopify's cost bucket)"
                        + (f"; {crossed} cycle(s) before it fell on a new period and ran (measured again)" if crossed else "")
                        + "; target <= 1 s at ~100k, <= 2 s at 1M linked records"))
    # (its writes: `incremental.quiet_writes` below, with the recheck's, against the target 0)
    rec.add(Result("incremental.quiet_reads", q_reads, "reads", "full cycle", f_reads, label))
    rec.add(Result("incremental.quiet_period_time", t_period["s"], "s", "full cycle", t_full["s"], label,
                   note=f"the quiet cycle once per period (TALK_PROBE_REFRESH_S, TALK_SQUARESPACE_INVENTORY_FULL_READ_S: "
                        f"900 s): {p_reads} reads ({p_by}), {len(rep_period.run_ids)} Dagster run(s): "
                        f"{rep_period.plan.summary() if rep_period.plan else 'no plan'}"))
    rec.add(Result("incremental.quiet_writes", q_writes + r_writes, "writes", "target 0", 0, label, ratio=None))
    rec.add(Result("incremental.peak_rss", peak, "MB", "n/a", None, label,
                   note="the benchmark process's peak resident memory (sandboxes included; DuckDB limit 2 GB)"))


# systems whose edits notify (PowerOffice GO has no webhooks: its edits reach others by polling only)
NOTIFYING = ("shopify", "customcrm", "customwebshop")
MODES = ("polling", "webhook")


@dataclass
class Edit:
    """One timed edit: made at `t0`, seen in the linked system at `t1` (wall clock, time.time())."""

    view: str
    record_id: str
    t0: float
    t1: float | None = None
    received: float | None = None  # webhook mode: when the receiver stored its notification
    late: float | None = None  # a missed edit seen after its timeout (late, not lost): when, wall clock
    token: str = ""  # the value written

    @property
    def latency(self) -> float | None:
        return None if self.t1 is None else self.t1 - self.t0


class Trigger:
    """Starts sync runs in a thread, the way a deployment would, and times each run.

    - `polling`: a `sync_job` run, then `POLL_S` of rest, again (the polling sensor's loop).
    - `webhook`: the sandboxes notify a real receiver (Starlette/uvicorn) that stores each verified
      notification in the inbox file; the inbox sensors are evaluated as the daemon does, at most once
      per `WEBHOOK_SENSOR_INTERVAL_S`, and what they ask for (the changed entities and everything
      downstream) runs at once. A run request made while a run is going waits for it (one run at a
      time, as `max_concurrent_runs: 1`), so the sensors are evaluated again right after each run.
    What it leaves out: a daemon launches each run in a new process (`talk-assets run`); here the
    runs execute in this process, so the launch is not in the figure (see `launch_cost`).
    """

    def __init__(self, env: Env, mode: str) -> None:
        self.env, self.mode = env, mode
        self.runs: list[list[Any]] = []  # [start, end or None while it runs], wall clock
        self.stop = threading.Event()
        self.receiver: Any = None
        if mode == "webhook":
            self._subscribe()
        self.thread = threading.Thread(target=self._poll if mode == "polling" else self._sensors, daemon=True)

    def _subscribe(self) -> None:
        from talk_assets.sync.sensors import build_inbox_sensor
        from talk_assets.systems.shopify import webhooks as shopify_hooks
        from talk_assets.webhooks.inbox import Inbox
        from talk_assets.webhooks.receiver import ReceiverServer
        from talk_assets.webhooks.subscribe import sandbox_subscribe

        self.receiver = ReceiverServer(Inbox(self.env.tmp / "webhooks.sqlite"), host="127.0.0.1", port=0).start()
        # webhooks on, as `talk-assets run` has them: the pushes record their writes, so the notifications
        # of the sync's own writes start no run (talk_assets/webhooks/inbox.py)
        os.environ["TALK_WEBHOOK_PUBLIC_URL"] = self.receiver.url
        shopify_hooks.subscribe(self.receiver.url, self.receiver.inbox)
        for s in ("customcrm", "customwebshop"):
            sandbox_subscribe(self.env.sb.urls[s], s, self.receiver.url)
        self.sensors = {s: build_inbox_sensor(s) for s in NOTIFYING}
        self.cursors: dict[str, str | None] = {s: str(self.receiver.inbox.last_seq(s)) for s in NOTIFYING}

    def _run(self, selection: list[Any] | None = None) -> None:
        run: list[Any] = [time.time(), None, None]
        self.runs.append(run)  # listed from its start: an edit becomes visible in the middle of a run
        rep = self.env.cycle(selection=selection)
        run[1], run[2] = time.time(), rep.run_id

    def steps(self) -> str:
        """Inside the runs: steps per run, the share of the run's time the steps themselves took (the
        rest is Dagster's run start and end and its work between steps), and the slowest steps."""
        per: dict[str, list[float]] = {}
        n_steps, step_s, wall_s = [], 0.0, 0.0
        for start, end, run_id in self.runs:
            if not run_id:
                continue
            stats = [x for x in self.env.instance.get_run_step_stats(run_id) if x.start_time and x.end_time]
            n_steps.append(len(stats))
            wall_s += end - start
            for x in stats:
                per.setdefault(x.step_key, []).append(x.end_time - x.start_time)
                step_s += x.end_time - x.start_time
        if not n_steps or not wall_s:
            return "no step stats"
        top = sorted(per.items(), key=lambda kv: -sum(kv[1]))[:4]
        return (f"{statistics.mean(n_steps):.0f} steps per run, steps {step_s / wall_s:.0%} of the runs' time; "
                "most time: " + ", ".join(f"{k} {statistics.mean(v):.2f}s x{len(v)}" for k, v in top))

    def _poll(self) -> None:
        while not self.stop.is_set():
            self._run()
            self.stop.wait(POLL_S)

    def _sensors(self) -> None:
        import dagster as dg

        from talk_assets.sync.sensors import WEBHOOK_SENSOR_INTERVAL_S

        while not self.stop.is_set():
            tick = time.monotonic()
            selection: set[Any] = set()
            for s, sensor in self.sensors.items():
                r = sensor.evaluate_tick(dg.build_sensor_context(instance=self.env.instance, cursor=self.cursors[s]))
                for req in r.run_requests or []:
                    selection |= set(req.asset_selection or [])
                if r.cursor:
                    self.cursors[s] = r.cursor
            if selection:
                self._run(sorted(selection, key=lambda k: k.to_user_string()))
            else:
                self.stop.wait(max(0.0, WEBHOOK_SENSOR_INTERVAL_S - (time.monotonic() - tick)))

    def __enter__(self) -> Trigger:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=300)
        if self.receiver is not None:
            self.receiver.stop()
            os.environ.pop("TALK_WEBHOOK_PUBLIC_URL", None)

    def notified(self) -> str:
        """What the inbox kept, over the systems that notify: fresh notifications (reasons for a run),
        echoes of the sync's own writes (no run) and stale ones (no run)."""
        if self.receiver is None:
            return ""
        total: dict[str, int] = {}
        for s in NOTIFYING:
            for k, v in self.receiver.inbox.counts(s).items():
                total[k] = total.get(k, 0) + v
        return (f"notifications: {total.get('fresh', 0)} fresh, {total.get('own', 0)} echoes of the sync's own "
                f"writes (no run), {total.get('stale', 0)} stale")

    def received(self, system: str, record_id: str, after: float) -> tuple[float | None, bool]:
        """When the receiver stored the first notification of this record after `after`, and whether the
        inbox marked it stale (an older change than one already notified): webhook mode only. The echoes
        of the sync's own writes to the record are not the edit's notification, and are left out."""
        if self.receiver is None:
            return None, False
        with sqlite3.connect(self.receiver.inbox.path) as con:
            rows = con.execute("SELECT received_at, stale FROM events WHERE system = ? AND record_id = ? "
                               "AND own = 0 ORDER BY seq", (system, record_id)).fetchall()
        hits = [(datetime.fromisoformat(r[0]).timestamp(), bool(r[1])) for r in rows]
        return next(((t, stale) for t, stale in hits if t >= after), (None, False))

    def close_inbox(self) -> None:
        if self.receiver is not None:
            self.receiver.inbox.close()


def _timed_edits(env: Env, trig: Trigger, picks: list[tuple[str, str, str, str]], seed: int, tag: str,
                 timeout_s: float) -> list[Edit]:
    """Edit each picked record at a random moment and wait until its linked record shows the value."""
    rng = random.Random(seed)
    out = []
    for i, (view, rid, view2, rid2) in enumerate(picks):
        time.sleep(rng.uniform(0.0, 3.0))
        token = f"{tag}{i:03d}x{rng.randrange(1000)}"
        e = Edit(view, rid, time.time(), token=token)
        env.edit(view, rid, token)
        while time.time() - e.t0 < timeout_s:
            if env.read(view2, rid2) == token:
                e.t1 = time.time()
                break
            time.sleep(0.05)
        e.received, stale = trig.received(EDITS[view][0], rid, e.t0)
        if e.t1 is None:
            got = "" if trig.mode == "polling" else (
                f"; notification received after {e.received - e.t0:.2f}s{' (stale)' if stale else ''}"
                if e.received else "; no notification stored")
            print(f"  {trig.mode}: edit {view} {rid} -> {view2} {rid2}: not visible after {timeout_s:g} s{got}", flush=True)
        out.append(e)
    _late(env, trig, [(e, p) for e, p in zip(out, picks, strict=True) if e.t1 is None], timeout_s)
    return out


def _late(env: Env, trig: Trigger, missed: list[tuple[Edit, tuple[str, str, str, str]]], timeout_s: float) -> None:
    """Late or lost: give the missed edits one more timeout (the trigger still runs) and say which
    became visible, and which run carried them. They stay missed in the figures."""
    deadline = time.time() + timeout_s
    while missed and time.time() < deadline:
        for item in list(missed):
            e, (_v, _r, view2, rid2) = item
            if env.read(view2, rid2) != e.token:
                continue
            e.late = time.time()
            started = [r for r in trig.runs if r[0] <= e.late]
            carried = f"; the run going then started {started[-1][0] - e.t0:.1f}s after the edit" if started else ""
            print(f"  {trig.mode}: edit {e.view} {e.record_id}: late, not lost: visible after {e.late - e.t0:.1f}s"
                  f"{carried}", flush=True)
            missed.remove(item)
        time.sleep(0.2)
    for e, _p in missed:
        print(f"  {trig.mode}: edit {e.view} {e.record_id}: lost: not visible after {2 * timeout_s:g}s", flush=True)


def _q(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, by statistics' exclusive method (one value: itself)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100)[round(q * 100) - 1]


def _split(edits: list[Edit], runs: list[list[Any]]) -> str:
    """Where an edit's time went: to the notification's receipt (webhooks), waiting for the run that
    carried it (the poll interval or the sensor's tick, or a run already going), and that run until the
    value was seen (collect, merge, map, push of the target; the push comes before the run's end). The
    run that carried an edit is the last one to start before the value was seen."""
    notify, wait, run = [], [], []
    for e in edits:
        if e.t1 is None:
            continue
        started = [r for r in runs if r[0] <= e.t1]
        if not started:
            continue
        start = started[-1][0]
        ready = e.received if e.received is not None else e.t0
        if e.received is not None:
            notify.append(e.received - e.t0)
        wait.append(max(0.0, start - ready))
        run.append(e.t1 - max(start, ready))
    parts = [("notification", notify), ("wait for the run", wait), ("in the run until visible", run)]
    return "; ".join(f"{name} p50 {statistics.median(v):.2f}s p95 {_q(v, 0.95):.2f}s" for name, v in parts if v)


def launch_cost() -> float:
    """Seconds a new Python process takes to load the code location (`talk_assets.definitions`): what a
    daemon's run worker pays before a run starts, left out of the in-process figures."""
    import subprocess
    import sys

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import talk_assets.definitions"], check=True, timeout=300)
    return time.perf_counter() - t0


def latency(rec: Recorder, profile: str) -> None:
    """Edit-to-visible latency by polling and by webhooks, in one run on one converged world: the same
    edits (same records, same random times) in both modes. Edits are of records of the systems that
    notify (Shopify, Custom CRM, Custom Webshop), each to a record a dataflow links to another."""
    p = PROFILES[profile]
    for size, n_edits, timeout_s in p["latency"]:
        print(f"latency: sandbox size {size:,}, {n_edits} edits at random times, by polling (a sync_job run "
              f"every {POLL_S:g}s) and by webhooks (runs the inbox sensors request)", flush=True)
        with timer() as t_setup:
            env = Env(size)
        try:
            env.cycle()  # the instance exists and has seen every record
            links, linked = env.link_counts()
            pairs = [x for x in env.pairs() if EDITS[x[0]][0] in NOTIFYING]
            picks = random.Random(5).sample(pairs, min(n_edits, len(pairs)))
            measured: dict[str, tuple[list[Edit], list[list[Any]]]] = {}
            inside: dict[str, str] = {}
            print(f"  setup {t_setup['s']:.0f}s: {linked:,} linked records; {len(picks)} edits per mode", flush=True)
            for mode in MODES:
                trig = Trigger(env, mode)
                try:
                    with trig:
                        edits = _timed_edits(env, trig, picks, 11, "Poll" if mode == "polling" else "Hook",
                                             timeout_s)
                    measured[mode] = (edits, trig.runs)
                    inside[mode] = trig.steps() + ("; " + trig.notified() if mode == "webhook" else "")
                    seen = [e.latency for e in edits if e.latency is not None]
                    print(f"  {mode}: {len(seen)} of {len(edits)} visible"
                          + (f", median {statistics.median(seen):.2f}s" if seen else ""), flush=True)
                finally:
                    trig.close_inbox()
        finally:
            env.close()
        launch = launch_cost()
        where = (f"size {size:,}: {linked:,} linked records (setup {t_setup['s']:.0f}s); {len(picks)} edits of "
                 f"{', '.join(NOTIFYING)} records")
        lat = {m: [e.latency for e in measured[m][0] if e.latency is not None] for m in MODES}
        if not all(lat.values()):
            print("  no edit became visible in " + ", ".join(m for m in MODES if not lat[m]))
        poll_p50 = poll_p95 = None
        if lat["polling"]:
            edits, runs = measured["polling"]
            mean_run = statistics.mean(r[1] - r[0] for r in runs if r[1]) if runs else 0.0
            bound = POLL_S + 2 * mean_run  # worst case: just missed a run's collect, wait, then one whole run
            poll_p50, poll_p95 = statistics.median(lat["polling"]), _q(lat["polling"], 0.95)
            note = (f"{where}; {len(lat['polling'])} visible, {len(edits) - len(lat['polling'])} missed ({sum(e.late is not None for e in edits)} of them late, not lost); "
                    f"{len(runs)} runs, mean {mean_run:.2f}s ({inside['polling']}); time split: {_split(edits, runs)}; "
                    f"baseline = poll {POLL_S:g}s + 2 x mean run (worst case of one pass)")
            rec.add(Result("latency.p50", poll_p50, "s", "poll+2*cycle", round(bound, 3), size, note=note))
            rec.add(Result("latency.p95", poll_p95, "s", "poll+2*cycle", round(bound, 3), size))
        if lat["webhook"]:
            edits, runs = measured["webhook"]
            mean_run = statistics.mean(r[1] - r[0] for r in runs if r[1]) if runs else 0.0
            note = (f"{where}; {len(lat['webhook'])} visible, {len(edits) - len(lat['webhook'])} missed ({sum(e.late is not None for e in edits)} of them late, not lost); "
                    f"{len(runs)} runs requested by the inbox sensors, mean {mean_run:.2f}s ({inside['webhook']}); time split: "
                    f"{_split(edits, runs)}; baseline = polling in the same run; target p95 <= 3 s; runs "
                    f"execute in this process: a daemon's run worker would first spend ~{launch:.1f}s loading "
                    f"the code location (a new process importing talk_assets.definitions, measured now)")
            rec.add(Result("latency.webhook.p50", statistics.median(lat["webhook"]), "s", "polling (same run)",
                           poll_p50, size, note=note))
            rec.add(Result("latency.webhook.p95", _q(lat["webhook"], 0.95), "s", "polling (same run)",
                           poll_p95, size))
