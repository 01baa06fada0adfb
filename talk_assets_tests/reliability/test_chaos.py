"""Chaos: random creates and edits in all five systems while the sandboxes fail on purpose (5xx,
timeouts, dropped connections, lost responses, 429 storms) and the sync process is SIGKILLed at
random points; once on the way the state file is lost (moved aside, as after a corrupt-file error) and
the sync must rebuild its links from the systems without creating anything; then the faults stop and clean cycles run until one writes nothing. One round's sync
processes run with a wrong CRM key, fixed in the next round. Webshop customers are created with names
a naive split would rewrite (particles, a single name, a newline). Whatever
happened on the way, the end state must be consistent: linked records agree, nothing is
duplicated, every edit arrived, dead letters hold only deliberate rejections."""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from talk_assets.sync.declaration import (
    DATAFLOWS,
    MERGE_KEYS,
    REFERENCES,
    VIEWS,
    VIEWS_BY_KEY,
    View,
    views_of_type,
)
from talk_assets.sync.merge import table
from talk_assets_tests.reliability.conftest import soak
from talk_assets_tests.reliability.support import SYSTEM_KEYS, Harness

SEED = 20261
V = VIEWS_BY_KEY
ROUNDS = 8 if soak() else 3
# the module fixture runs the whole chaos (~150 s alone); on a machine shared by many it passed the
# suite's 300 s (pytest-timeout) in setup, which failed all twelve tests without a finding
pytestmark = pytest.mark.timeout(900)


@dataclass
class Edit:
    view: str
    record_id: str
    prop: str
    value: str  # the canonical (global) value the edit means
    at: float


@dataclass
class Chaos:
    """What the chaos run did, for the assertions."""

    edits: list[Edit] = field(default_factory=list)
    created: list[tuple[str, str]] = field(default_factory=list)  # (view key, record id)
    kills: int = 0
    workers: int = 0
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline_dups: dict[str, set[str]] = field(default_factory=dict)  # in the seed data as served
    synced_dups: dict[str, set[str]] = field(default_factory=dict)  # after the first clean sync
    names: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # webshop customer id -> (first, last)
    wrong_key_round: int = -1  # the round whose sync processes ran with a wrong CRM key
    wrong_key_errors: int = 0  # what those processes reported
    lost_state: int = 0  # times the state file was moved aside
    created_after_loss: dict[str, int] = field(default_factory=dict)  # what the cycle after it created
    relinked: tuple[int, int] = (0, 0)  # (links before the loss, links after the cycle that rebuilt them)
    quiet_after: int = 0  # 0: never quiet
    last_writes: dict[str, int] = field(default_factory=dict)
    last_detail: list[str] = field(default_factory=list)


# -- what the run does ---------------------------------------------------------------------------------
def _creates(rel: Harness, rng: random.Random, chaos: Chaos) -> None:
    """New customers, products and orders in the systems that are sources of dataflows."""
    t = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
    ws, crm, po = rel.client("customwebshop"), rel.client("customcrm"), rel.client("poweroffice")
    first, last = rng.choice(NAMES)
    c = ws.create_record("customers", {
        "email": f"kaos.{t}@example.no", "first_name": first, "last_name": last and f"{last}{t}",
        "phone": "+47 41234567",
        "billing_address": {"street": f"Kaosveien {rng.randint(1, 99)}", "postal_code": "0150", "city": "Oslo",
                            "country_code": "NO"}})
    p = ws.create_record("products", {"sku": f"KW-{t}", "title": f"Kaosvare {t}", "price": 125 * rng.randint(10, 900),
                                      "stock": rng.randint(0, 40)})
    o = ws.create_record("orders", {"customer_id": c["id"], "email": c["email"],
                                    "items": [{"sku": p["sku"], "quantity": rng.randint(1, 5),
                                               "unit_price": p["price"]}]})
    chaos.created += [("customwebshop.customer", str(c["id"])), ("customwebshop.product", str(p["id"])),
                      ("customwebshop.order", str(o["id"]))]
    chaos.names[str(c["id"])] = (c["first_name"], c["last_name"])
    cc = crm.create_record("customers", {"name": f"Kaosfirma {t} AS", "email": f"firma.{t}@example.no",
                                         "customer_type": "company", "city": "Bergen"})
    cp = crm.create_record("products", {"sku": f"KC-{t}", "name": f"CRM-kaos {t}",
                                        "unit_price": f"{rng.randint(10, 900)}.{rng.randint(0, 99):02d}",
                                        "stock_quantity": rng.randint(0, 40)})
    co = crm.create_record("orders", {"customer_id": cc["id"], "reference": f"K-{t}",
                                      "lines": [{"sku": cp["sku"], "quantity": 2, "unit_price": cp["unit_price"]}]})
    chaos.created += [("customcrm.customer", str(cc["id"])), ("customcrm.product", str(cp["id"])),
                      ("customcrm.order", str(co["id"]))]
    pc = po.create_record("customers", {"IsPerson": True, "FirstName": "Pål", "LastName": f"Kaos{t}",
                                        "Name": f"Pål Kaos{t}", "EmailAddress": f"pal.{t}@example.no",
                                        "PhoneNumber": "+47 92345678"})
    pp = po.create_record("products", {"Code": f"KP-{t}", "Name": f"Kaos PO {t}", "UnitPrice": 100.0 + rng.randint(0, 50),
                                       "StockOnHand": rng.randint(0, 30)})
    chaos.created += [("poweroffice.customers_person", str(pc["Id"])), ("poweroffice.product", str(pp["Id"]))]


# Names a split by "last word" would rewrite: particles, double first names, a single name, hyphens,
# a newline and a tab inside a name (the last name gets the round's token appended)
NAMES = [("Anne Marie", "van der Berg"), ("José", "de la Cruz"), ("Cher", None), ("Nur", "binti Ahmad"),
         ("Kari-Anne", "Nilsen-Bø"), ("Ola\nMagnus", "ter Horst"), ("Liv\tEllen", "Å")]


# global property -> (view key -> how to write a canonical value into that system)
EDITORS: dict[str, dict[str, Any]] = {
    "city": {
        "customwebshop.customer": lambda c, rid, v: c.update_record("customers", rid, {"billing_address": {"city": v}}),
        "customcrm.customer": lambda c, rid, v: c.update_record("customers", rid, {"city": v}),
        "poweroffice.customers_person": lambda c, rid, v: c.update_record("customers", rid, {"MailAddress": {"City": v}}),
        "poweroffice.customers_organisation":
            lambda c, rid, v: c.update_record("customers", rid, {"MailAddress": {"City": v}}),
    },
    "stock": {
        "customwebshop.product": lambda c, rid, v: c.update_record("products", rid, {"stock": int(v)}),
        "customcrm.product": lambda c, rid, v: c.update_record("products", rid, {"stock_quantity": int(v)}),
        "poweroffice.product": lambda c, rid, v: c.update_record("products", rid, {"StockOnHand": int(v)}),
    },
    "price_ex_vat": {
        "customcrm.product": lambda c, rid, v: c.update_record("products", rid, {"unit_price": v}),
        "customwebshop.product": lambda c, rid, v: c.update_record("products", rid, {"price": int(float(v) * 125)}),
    },
}


def _new_value(prop: str, rng: random.Random) -> str:
    if prop == "city":
        return f"By{rng.randint(1000, 9999)}"
    if prop == "stock":
        return str(rng.randint(0, 500))
    return f"{rng.randint(10, 2000)}.00"  # whole kroner: exact in every system's price format


def _edits(rel: Harness, rng: random.Random, chaos: Chaos, n: int) -> None:
    """Edit `n` linked records, at most one edit per global entity per round."""
    used: set[str] = set()
    for _ in range(n):
        prop = rng.choice(sorted(EDITORS))
        views = sorted(EDITORS[prop])
        rows = rel.sql(
            "SELECT gid, view, record_id FROM links WHERE view IN (SELECT unnest(?::VARCHAR[])) AND gid IN "
            "(SELECT gid FROM links GROUP BY gid HAVING count(*) > 1) ORDER BY gid, view", [views])
        rows = [r for r in rows if r[0] not in used]
        if not rows:
            continue
        gid, vkey, rid = rng.choice(rows)
        used.add(gid)
        value = _new_value(prop, rng)
        EDITORS[prop][vkey](rel.client(V[vkey].system), rid, value)
        chaos.edits.append(Edit(vkey, rid, prop, value, time.time()))
        time.sleep(0.005)  # distinct change times


FAULTS = {"error_rate": 0.05, "timeout_rate": 0.01, "timeout_s": 2.5, "drop_rate": 0.02,
          "lost_response_rate": 0.05, "storm_429": 8, "storm_retry_after": 0.05}


# -- reading the end state -----------------------------------------------------------------------------
def _dup_keys(rel: Harness) -> dict[str, set[str]]:
    """Per view, merge-key values (or order line fingerprints) carried by more than one record."""
    out: dict[str, set[str]] = {}
    for view in VIEWS:
        keys = [k for k in MERGE_KEYS[view.global_type] if k in view.read_props]
        exprs = [f"'{k}=' || {'upper(sku)' if k == 'sku' else k}" for k in keys]
        if view.global_type == "order" and "lines" in view.read_props:
            exprs = ["'lines=' || lines"]
        found: set[str] = set()
        for e in exprs:
            col = e.split("||")[1].strip()
            found |= {r[0] for r in rel.sql(
                f"SELECT {e} FROM {table('norm', view.vkey)} WHERE nullif({col}, '') IS NOT NULL "
                "AND {col} <> '[]' GROUP BY 1 HAVING count(*) > 1".replace("{col}", col))}
        found |= {f"gid={g}" for (g,) in rel.sql(
            "SELECT gid FROM links WHERE view = ? GROUP BY gid HAVING count(*) > 1", [view.vkey])}
        out[view.vkey] = found
    return out


def _two_way_props(view: View) -> set[str]:
    """Properties the view both reads and may be written after creation."""
    return {p.prop for p in view.props if p.write is not None and p.on_update} & set(view.read_props)


def _holders(rel: Harness, gid: str, edited: str, prop: str) -> list[tuple[str, str]]:
    """Members of `gid` an edit of `prop` in view `edited` must reach: along dataflows (either
    direction) between the entity's own records, through views that can hold the property."""
    members = dict(rel.sql("SELECT view, record_id FROM links WHERE gid = ?", [gid]))
    reached, todo = {edited}, [edited]
    while todo:
        here = todo.pop()
        for flow in DATAFLOWS:
            if flow.only or not any(sp.prop == prop for sp, _ in flow.property_rows()):
                continue
            for a, b in ((flow.source, flow.target), (flow.target, flow.source)):
                if a.vkey == here and b.vkey in members and b.vkey not in reached and prop in _two_way_props(b):
                    reached.add(b.vkey)
                    todo.append(b.vkey)
    return [(v, members[v]) for v in sorted(reached) if v in members]


def _parked(rel: Harness) -> set[tuple[str, str]]:
    return {(v, g) for v, g in rel.sql("SELECT view, gid FROM dead_letters WHERE resolved_at IS NULL")}


# reads that are empty by design for some records: Shopify's `taxable` names a 0 % rate, a taxed variant's
# rate is unknown to Shopify's API (shopify/views.py)
PARTIAL_READS = {("shopify.sesamproduct", "vat_rate")}


def disagreements(rel: Harness) -> list[str]:
    """Linked source/target pairs of every dataflow whose canonical values differ for a property the
    target holds after creation (and the source reads)."""
    parked = _parked(rel)
    out = []
    for flow in DATAFLOWS:
        if flow.only:
            continue
        s, t = flow.source, flow.target
        for sp, _tp in flow.property_rows():
            prop = sp.prop
            if prop in REFERENCES:
                continue  # ids of another entity in each system's own namespace: checked through the links
            if prop not in _two_way_props(t) or prop not in t.read_props:
                continue
            rows = rel.sql(
                f'SELECT ls.gid, s.record_id, t.record_id, s."{prop}", t."{prop}" FROM links ls '
                f"JOIN links lt ON lt.gid = ls.gid AND lt.view = ? "
                f"JOIN {table('norm', s.vkey)} s ON s.nsid = ls.nsid JOIN {table('norm', t.vkey)} t ON t.nsid = lt.nsid "
                f'WHERE ls.view = ? AND s."{prop}" IS DISTINCT FROM t."{prop}"', [t.vkey, s.vkey])
            for gid, sid, tid, sv, tv in rows:
                if (t.vkey, gid) in parked or (s.vkey, gid) in parked:
                    continue
                if sv is None and prop not in _two_way_props(s):
                    continue  # the source cannot hold it: empty never overwrites the target's value
                if tv is None and (t.vkey, prop) in PARTIAL_READS:
                    continue  # the target's data names the value only sometimes (PARTIAL_READS)
                out.append(f"{flow.key} {prop}: {s.vkey} {sid}={sv!r} vs {t.vkey} {tid}={tv!r}")
    return out


# -- the run -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chaos(rel: Harness) -> Chaos:
    result = Chaos()
    first = rel.cycle()
    assert not first.errors, first.errors
    result.baseline_dups = _dup_keys(rel)  # the norm tables of the first cycle hold the seed data as served
    rel.try_quiet(limit=3)  # convergence is asserted at the end, after the chaos
    result.synced_dups = _dup_keys(rel)
    rel.reset_stats()
    rng = random.Random(SEED)
    lost_round = random.Random(SEED + 1).randrange(ROUNDS)  # its own stream: the run's choices stay the same
    result.wrong_key_round = random.Random(SEED + 2).randrange(ROUNDS)
    for rnd in range(ROUNDS):
        rel.faults()
        if rnd == lost_round:
            _lose_state(rel, result)
        _creates(rel, rng, result)
        _edits(rel, rng, result, 6)
        rel.faults(**FAULTS, seed=SEED + rnd)
        # one round's sync processes run with a wrong CRM key (a mistyped secret); the next rounds have
        # it fixed, and nothing may stay undelivered or dead-lettered because of it
        with _crm_key("wrong-crm-key" if rnd == result.wrong_key_round else None):
            if rng.random() < 0.75:
                w = rel.worker(cycles=2, kill_after=rng.uniform(1.5, 7.0))
                result.workers += 1
                result.kills += w.killed
            w = rel.worker(cycles=1)  # the restarted process, still under faults
        result.workers += 1
        assert w.returncode == 0, w.stderr[-3000:]
        if rnd == result.wrong_key_round:
            result.wrong_key_errors = sum(len(c.get("errors") or []) + len(c.get("held") or {}) for c in w.cycles)
    rel.faults()
    result.stats = rel.stats()
    result.quiet_after, result.last_detail = rel.try_quiet(limit=6)
    result.last_writes = rel.writes()
    _report(rel, result)
    return result


@contextmanager
def _crm_key(value: str | None) -> Iterator[None]:
    """The CRM key the sync processes started inside the block see (None: the right one)."""
    name = "TALK_CUSTOMCRM_API_KEY"
    saved = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _lose_state(rel: Harness, chaos: Chaos) -> None:
    """Let the sync settle (without faults), then move its state file aside and run one cycle: it must
    re-link every record from the systems and create nothing."""
    rel.try_quiet(limit=3)
    before = rel.sql("SELECT count(*) FROM links")[0][0]
    aside = rel.data / f"lost-{chaos.workers}"
    aside.mkdir(exist_ok=True)
    for f in rel.data.glob("talk.duckdb*"):
        f.rename(aside / f.name)
    chaos.lost_state += 1
    report = rel.cycle()
    assert not report.errors, report.errors
    chaos.created_after_loss = {k: p.created for k, p in report.pushed.items() if p.created}
    chaos.relinked = (before, rel.sql("SELECT count(*) FROM links")[0][0])


def _report(rel: Harness, chaos: Chaos) -> None:
    statuses: Counter[str] = Counter()
    dropped = 0
    for st in chaos.stats.values():
        statuses.update({k: int(v) for k, v in st["statuses"].items()})
        dropped += sum(st["requests"].values()) - sum(int(v) for v in st["statuses"].values())
    print(f"\nchaos: {ROUNDS} rounds, {len(chaos.created)} creates, {len(chaos.edits)} edits, "
          f"{chaos.workers} sync processes, {chaos.kills} SIGKILLs, {chaos.lost_state} lost state file(s) "
          f"({chaos.relinked[1]} of {chaos.relinked[0]} links rebuilt), quiet after {chaos.quiet_after} clean cycles")
    print(f"chaos: faults answered: 5xx={sum(v for k, v in statuses.items() if k.startswith('5'))} "
          f"429={statuses.get('429', 0)}, dropped/timed out/lost={dropped}, all statuses={dict(statuses)}")


# -- the assertions ------------------------------------------------------------------------------------
def test_faults_and_kills_really_happened(chaos: Chaos) -> None:
    statuses: Counter[str] = Counter()
    for st in chaos.stats.values():
        statuses.update({k: int(v) for k, v in st["statuses"].items()})
    assert statuses.get("429", 0) >= FAULTS["storm_429"] * len(SYSTEM_KEYS)
    assert sum(v for k, v in statuses.items() if k.startswith("5")) > 0
    assert chaos.kills >= 1, "no sync process was killed mid-cycle"
    assert chaos.edits and chaos.created


def test_a_lost_state_file_was_rebuilt_from_the_systems_without_a_create(chaos: Chaos) -> None:
    assert chaos.lost_state == 1
    assert chaos.created_after_loss == {}, chaos.created_after_loss
    before, after = chaos.relinked
    assert after == before > 0, chaos.relinked


def test_a_wrong_credential_was_reported_and_healed_by_fixing_it(rel: Harness, chaos: Chaos) -> None:
    """The round with a wrong CRM key reported it; once fixed, everything it held arrived (the other
    tests: every create reached every target, every edit arrived) and no 401 became a dead letter."""
    assert chaos.wrong_key_errors > 0
    assert not rel.sql("SELECT view, gid FROM dead_letters WHERE resolved_at IS NULL AND status IN (401, 403)")


def test_names_with_particles_single_names_and_newlines_arrive_and_are_never_rewritten(
        rel: Harness, chaos: Chaos) -> None:
    """Each webshop customer keeps its first and last name as entered, and the CRM (one `name`)
    holds them joined, after all the faults, kills and the lost state file."""
    ws, crm = rel.client("customwebshop"), rel.client("customcrm")
    wrong = []
    for cid, (first, last) in chaos.names.items():
        now = ws.get_record("customers", cid)
        if (now["first_name"], now["last_name"]) != (first, last):
            wrong.append(f"webshop {cid}: {first!r} {last!r} became {now['first_name']!r} {now['last_name']!r}")
        gid = rel.sql("SELECT gid FROM links WHERE view = 'customwebshop.customer' AND record_id = ?", [cid])[0][0]
        rid = rel.sql("SELECT record_id FROM links WHERE view = 'customcrm.customer' AND gid = ?", [gid])
        whole = " ".join(p for p in (first, last) if p)
        if not rid or crm.get_record("customers", rid[0][0])["name"] != whole:
            wrong.append(f"webshop {cid} {whole!r}: the CRM holds {rid and crm.get_record('customers', rid[0][0])['name']!r}")
    assert len(chaos.names) == ROUNDS and not wrong, wrong


def test_the_last_cycle_wrote_nothing(chaos: Chaos) -> None:
    assert chaos.quiet_after and chaos.last_writes == dict.fromkeys(SYSTEM_KEYS, 0), "\n".join(chaos.last_detail)


def _new(now: dict[str, set[str]], before: dict[str, set[str]]) -> dict[str, list[str]]:
    new = {v: sorted(k - before.get(v, set())) for v, k in now.items()}
    return {v: k for v, k in new.items() if k}


def test_the_first_sync_duplicates_no_order_that_already_exists_in_the_target(chaos: Chaos) -> None:
    assert not _new(chaos.synced_dups, chaos.baseline_dups)


def test_no_duplicates_by_merge_key_in_any_system(rel: Harness, chaos: Chaos) -> None:
    first_sync = _new(chaos.synced_dups, chaos.baseline_dups)
    assert not {v: k for v, k in first_sync.items() if V[v].global_type != "order"}, first_sync
    before = {v: chaos.baseline_dups.get(v, set()) | chaos.synced_dups.get(v, set()) for v in chaos.synced_dups}
    new = _new(_dup_keys(rel), before)
    print(f"chaos: duplicates {sum(len(k) for k in new.values())}")
    assert not new, new


def test_every_linked_record_agrees_across_systems(rel: Harness, chaos: Chaos) -> None:
    pairs = rel.sql("SELECT count(*) FROM links a JOIN links b ON a.gid = b.gid AND a.view < b.view")[0][0]
    bad = disagreements(rel)
    print(f"chaos: linked record pairs {pairs}, disagreeing {len(bad)}")
    assert not bad, "\n".join(bad[:30])


def test_every_created_record_reached_every_target(rel: Harness, chaos: Chaos) -> None:
    parked = _parked(rel)
    lost = []
    for vkey, rid in chaos.created:
        found = rel.sql("SELECT gid FROM links WHERE view = ? AND record_id = ?", [vkey, rid])
        if not found:
            lost.append(f"{vkey} {rid}: never collected")
            continue
        gid = found[0][0]
        for flow in DATAFLOWS:
            if flow.source.vkey != vkey or flow.only or flow.link_mode not in ("merge-or-create", "always-insert"):
                continue
            if (flow.target.vkey, gid) in parked:
                continue
            if not rel.sql("SELECT 1 FROM links WHERE gid = ? AND view = ?", [gid, flow.target.vkey]):
                lost.append(f"{flow.key}: {vkey} {rid} ({gid}) is not in the target")
    print(f"chaos: created records checked {len(chaos.created)}, lost {len(lost)}")
    assert not lost, lost


def test_every_edit_is_what_all_linked_systems_hold(rel: Harness, chaos: Chaos) -> None:
    last: dict[tuple[str, str], Edit] = {}
    for e in sorted(chaos.edits, key=lambda e: e.at):
        gid = rel.sql("SELECT gid FROM links WHERE view = ? AND record_id = ?", [e.view, e.record_id])[0][0]
        last[(gid, e.prop)] = e
    wrong, checked = [], 0
    for (gid, prop), e in last.items():
        for vkey, rid in _holders(rel, gid, e.view, prop):
            view = V[vkey]
            checked += 1
            got = rel.norm(view, rid, prop)
            if got != e.value:
                why = rel.sql(f'SELECT "{prop}", "{prop}__from"::VARCHAR FROM {table("merged", view.global_type)} '
                              "WHERE gid = ?", [gid])
                wrong.append(f"{prop} edited to {e.value!r} in {e.view} {e.record_id}: {vkey} {rid} holds {got!r} "
                             f"(merged: {why})")
    print(f"chaos: edits {len(chaos.edits)}, records checked {checked}, lost edits {len(wrong)}")
    assert not wrong, "\n".join(wrong)


def test_dead_letters_hold_only_deliberate_rejections(rel: Harness, chaos: Chaos) -> None:
    rows = rel.sql("SELECT view, gid, status, error FROM dead_letters WHERE resolved_at IS NULL")
    transient = [r for r in rows if not (r[2] in (400, 422) or (r[2] is None and "required field" in (r[3] or "")))]
    print(f"chaos: open dead letters {len(rows)}, of them not a validation rejection {len(transient)}")
    assert not transient, transient


def test_views_of_every_type_were_exercised(chaos: Chaos) -> None:
    touched = {vkey for vkey, _ in chaos.created} | {e.view for e in chaos.edits}
    for gtype in ("customer", "product", "order"):
        assert any(v.vkey in touched for v in views_of_type(gtype)), gtype
    json.dumps([e.__dict__ for e in chaos.edits])  # the record of edits is plain data (kept in the report)
