"""incremental and latency: whole sync cycles (`talk_assets.sync.runner.run_cycle`: Dagster's sync_job in
process) against all five sandboxes.

Setup: seed the sandboxes, switch their rate limits off (the setup's first cycle creates tens of
thousands of records; pacing is measured by the push benchmark) with a client pace of 2,000
requests/s, and run real cycles until one writes nothing: every link in the state file is made by
the engine. The world is the sandbox's own (no special shape): about 8.9 link rows in linked
groups per unit of `size`, so the full profile's size 11,500 gives ~100,000 linked records
(records in one system linked to a record in another) across customers, products, orders and users.
That setup takes ~5 minutes on 2 cores (first cycle 170-190 s for ~42,000 writes).
Edits are made through the systems' own clients to records that are linked to a record in another
system (Shopify <-> PowerOffice persons, Custom Webshop <-> Custom CRM), one per linked pair.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import Recorder, Result, Sandboxes, timer

PROFILES = {"quick": {"inc_size": 1_000, "lat_size": 100, "edits": 100, "lat_edits": 10},
            "full": {"inc_size": 11_500, "lat_size": 500, "edits": 100, "lat_edits": 40}}
POLL_S = 2.0
LATER_S = 600  # the edits' distance from the initial sync, longer than the collect lookback (300 s)

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

    def __init__(self, size: int, seed: int = 7) -> None:
        from talk_assets.config import SYSTEMS

        self.saved = dict(os.environ)
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
        os.environ["TALK_DATA_DIR"] = str(self.tmp)
        os.environ["TALK_CIRCUIT_BREAKER_SHARE"] = "1.0"
        for k in SYSTEMS:
            os.environ[f"TALK_{k.upper()}_MAX_RPS"] = "2000"
        self.sb = Sandboxes(list(SYSTEMS), size, seed)
        self.sb.env()
        self.sb.faults({"rate_limit_enabled": False})
        self._clients: dict[str, Any] = {}
        self.setup_cycles: list[tuple[float, int]] = []
        for _ in range(6):
            with timer() as t:
                rep = self.cycle()
            self.setup_cycles.append((t["s"], rep.writes))
            if rep.writes == 0:
                break

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


def incremental(rec: Recorder, profile: str) -> None:
    p = PROFILES[profile]
    print(f"incremental: sandbox size {p['inc_size']:,} (all five systems), {p['edits']} edits, then one cycle "
          "vs a full cycle; then a quiet cycle", flush=True)
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
        env.cycle()
        rng = random.Random(3)
        # one edit per linked pair (both sides of one pair edited would merge into one write)
        pairs = [r if rng.random() < 0.5 else (r[2], r[3], r[0], r[1]) for r in env.pairs() if r[0] < r[2]]
        n_pairs = len(pairs)
        picks = rng.sample(pairs, min(p["edits"], len(pairs)))
        for i, (view, rid, _v2, _r2) in enumerate(picks):
            env.edit(view, rid, f"Inc{i:04d}")
        env.sb.reset_stats()
        with timer() as t_inc:
            rep_inc = env.cycle()
        inc_reads, inc_writes = env.calls()
        env.sb.reset_stats()
        with timer() as t_quiet:
            rep_quiet = env.cycle()
        q_reads, q_writes = env.calls()
        env.sb.reset_stats()
        with timer() as t_full:
            rep_full = env.cycle(full=True)
        f_reads, f_writes = env.calls()
    finally:
        env.close()
    inc_rec, inc_new = _collected(rep_inc)
    q_rec, _ = _collected(rep_quiet)
    f_rec, _ = _collected(rep_full)
    size = p["inc_size"]
    setup_rate = setup_writes / sum(s for s, _ in env.setup_cycles)
    rec.add(Result("incremental.setup_time", t_setup["s"], "s", "n/a", None, size,
                   note=f"{len(env.setup_cycles)} cycles (s, writes): "
                        + ", ".join(f"({s:.0f}, {w})" for s, w in env.setup_cycles)
                        + f"; {setup_writes:,} writes at {setup_rate:.0f} writes/s; link table {links:,} rows, "
                          f"{linked:,} linked to another record"))
    note = (f"{len(picks)} edits, one per linked pair ({n_pairs:,} pairs); {linked:,} linked records; incremental "
            f"{inc_reads} reads + {inc_writes} writes ({rep_inc.writes} pushed), collect read {inc_rec:,} records "
            f"({inc_new:,} new or changed); full {f_reads} reads + {f_writes} writes, collect read {f_rec:,} records; "
            f"errors {len(rep_inc.errors)}")
    rec.add(Result("incremental.api_calls", inc_reads + inc_writes, "calls", "full cycle", f_reads + f_writes,
                   size, note=note))
    rec.add(Result("incremental.time", t_inc["s"], "s", "full cycle", t_full["s"], size))
    rec.add(Result("incremental.quiet_writes", q_writes, "writes", "target 0", 0, size, ratio=None,
                   note=f"quiet cycle {t_quiet['s']:.1f}s, {q_reads} reads (collect read {q_rec:,} records), engine "
                        f"reported {rep_quiet.writes} writes; the full cycle after it wrote {rep_full.writes}"))


def latency(rec: Recorder, profile: str) -> None:
    p = PROFILES[profile]
    print(f"latency: sandbox size {p['lat_size']}, a sync_job run every {POLL_S:g}s in a thread, "
          f"{p['lat_edits']} edits at random times")
    env = Env(p["lat_size"])
    stop = threading.Event()
    cycle_times: list[float] = []

    def poller() -> None:
        while not stop.is_set():
            with timer() as t:
                env.cycle()
            cycle_times.append(t["s"])
            stop.wait(POLL_S)

    lat: list[float] = []
    missed = 0
    try:
        rng = random.Random(5)
        pairs = env.pairs()
        thread = threading.Thread(target=poller, daemon=True)
        thread.start()
        for i, (view, rid, view2, rid2) in enumerate(rng.sample(pairs, min(p["lat_edits"], len(pairs)))):
            time.sleep(rng.uniform(0.0, 3.0))
            token = f"Lat{i:03d}x{rng.randrange(1000)}"
            t0 = time.perf_counter()
            env.edit(view, rid, token)
            while time.perf_counter() - t0 < 60:
                if env.read(view2, rid2) == token:
                    lat.append(time.perf_counter() - t0)
                    break
                time.sleep(0.1)
            else:
                missed += 1
                print(f"  edit {view} {rid} -> {view2} {rid2}: not visible after 60 s")
        stop.set()
        thread.join(timeout=120)
    finally:
        stop.set()
        env.close()
    if not lat:
        print("  no edit became visible")
        return
    qs = statistics.quantiles(lat, n=20) if len(lat) > 1 else [lat[0]] * 19
    p50, p95 = statistics.median(lat), qs[18]
    mean_cycle = statistics.mean(cycle_times) if cycle_times else 0.0
    bound = POLL_S + 2 * mean_cycle  # worst case: just missed a cycle's collect, wait, then one whole cycle
    note = (f"{len(lat)} visible, {missed} missed; mean cycle {mean_cycle:.2f}s over {len(cycle_times)} cycles; "
            f"baseline = poll {POLL_S:g}s + 2 x mean cycle (worst case of one pass)")
    rec.add(Result("latency.p50", p50, "s", "poll+2*cycle", round(bound, 3), p["lat_size"], note=note))
    rec.add(Result("latency.p95", p95, "s", "poll+2*cycle", round(bound, 3), p["lat_size"]))


# systems whose edits notify (PowerOffice GO has no webhooks: its edits reach others by polling only)
NOTIFYING = ("shopify", "customcrm", "customwebshop")


def latency_webhook(rec: Recorder, profile: str) -> None:
    """Edit-to-visible with webhooks: the sandboxes notify a real receiver, the inbox sensors (evaluated
    as the daemon would, every 0.1 s) request runs of the changed entities, a dispatcher thread runs
    them. Same world, edits and reading as `latency`, so `latency.webhook.*` compares with `latency.*`."""
    import dagster as dg

    from talk_assets.sync.sensors import build_inbox_sensor
    from talk_assets.systems.shopify import webhooks as shopify_hooks
    from talk_assets.webhooks.inbox import Inbox
    from talk_assets.webhooks.receiver import ReceiverServer
    from talk_assets.webhooks.subscribe import sandbox_subscribe

    p = PROFILES[profile]
    print(f"latency.webhook: sandbox size {p['lat_size']}, runs requested by the webhook inbox sensors, "
          f"{p['lat_edits']} edits at random times (of {', '.join(NOTIFYING)} records)")
    env = Env(p["lat_size"])
    env.cycle()  # the instance exists and has observed everything
    receiver = ReceiverServer(Inbox(env.tmp / "webhooks.sqlite"), host="127.0.0.1", port=0).start()
    shopify_hooks.subscribe(receiver.url, receiver.inbox)
    for s in ("customcrm", "customwebshop"):
        sandbox_subscribe(env.sb.urls[s], s, receiver.url)
    sensors = {s: build_inbox_sensor(s) for s in NOTIFYING}
    cursors: dict[str, str | None] = {s: str(receiver.inbox.last_seq(s)) for s in NOTIFYING}
    stop = threading.Event()
    cycle_times: list[float] = []

    def dispatcher() -> None:
        while not stop.is_set():
            selection: set[Any] = set()
            for s, sensor in sensors.items():
                r = sensor.evaluate_tick(dg.build_sensor_context(instance=env.instance, cursor=cursors[s]))
                if r.run_requests:
                    selection |= set(r.run_requests[0].asset_selection or [])
                if r.cursor:
                    cursors[s] = r.cursor
            if not selection:
                stop.wait(0.1)
                continue
            with timer() as t:
                env.cycle(selection=sorted(selection, key=lambda k: k.to_user_string()))
            cycle_times.append(t["s"])

    lat: list[float] = []
    missed = 0
    try:
        rng = random.Random(5)
        pairs = [x for x in env.pairs() if EDITS[x[0]][0] in NOTIFYING]
        thread = threading.Thread(target=dispatcher, daemon=True)
        thread.start()
        for i, (view, rid, view2, rid2) in enumerate(rng.sample(pairs, min(p["lat_edits"], len(pairs)))):
            time.sleep(rng.uniform(0.0, 3.0))
            token = f"Hook{i:03d}x{rng.randrange(1000)}"
            t0 = time.perf_counter()
            env.edit(view, rid, token)
            while time.perf_counter() - t0 < 60:
                if env.read(view2, rid2) == token:
                    lat.append(time.perf_counter() - t0)
                    break
                time.sleep(0.05)
            else:
                missed += 1
                print(f"  edit {view} {rid} -> {view2} {rid2}: not visible after 60 s")
        stop.set()
        thread.join(timeout=120)
    finally:
        stop.set()
        receiver.stop()
        receiver.inbox.close()
        env.close()
    if not lat:
        print("  no edit became visible")
        return
    qs = statistics.quantiles(lat, n=20) if len(lat) > 1 else [lat[0]] * 19
    p50, p95 = statistics.median(lat), qs[18]
    mean_cycle = statistics.mean(cycle_times) if cycle_times else 0.0
    bound = POLL_S + 2 * mean_cycle
    note = (f"{len(lat)} visible, {missed} missed; {len(cycle_times)} runs requested by webhooks, mean "
            f"{mean_cycle:.2f}s; baseline = what a {POLL_S:g}s poll would need with these runs "
            f"(poll + 2 x mean run); target p95 <= 3 s")
    rec.add(Result("latency.webhook.p50", p50, "s", "poll+2*cycle", round(bound, 3), p["lat_size"], note=note))
    rec.add(Result("latency.webhook.p95", p95, "s", "poll+2*cycle", round(bound, 3), p["lat_size"]))
