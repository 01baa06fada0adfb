"""A cycle runs what changed (issue #15): the plan probes every entity first and selects only the steps
a change, a pending write or a possible late commit needs (talk_assets/sync/plan.py), over HTTP
against the sandbox and through Dagster runs."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from talk_assets.sync import assets
from talk_assets.sync.assets import merge_key
from talk_assets.sync.declaration import SOURCES, VIEWS_BY_KEY
from talk_assets.sync.merge import table
from talk_assets_tests.reliability.support import Harness

V = VIEWS_BY_KEY


@pytest.fixture
def no_lookback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the lookback at once: an entity whose probe did not move is not re-read."""
    monkeypatch.setenv("TALK_COLLECT_LOOKBACK_S", "0")


@pytest.fixture(scope="module")
def world(rel: Harness) -> Harness:
    assert rel.cycle().plan.everything == "first planned cycle"  # a new state file: every step
    rel.until_quiet()
    return rel


def _linked(h: Harness, view: str, other: str, n: int = 1) -> list[str]:
    """`n` records of `view` linked to a record of `other`."""
    return [r[0] for r in h.sql("SELECT record_id FROM links WHERE view = ? AND gid IN "
                                "(SELECT gid FROM links WHERE view = ?) ORDER BY record_id LIMIT ?", [view, other, n])]


def _state(h: Harness) -> tuple:
    return (h.sql("SELECT name, built_at FROM derived_state ORDER BY name"),
            h.sql("SELECT max(version) FROM link_versions"),
            h.sql("SELECT system, entity, last_collected_at FROM collect_state ORDER BY ALL"))


def test_a_quiet_cycle_past_the_lookback_starts_no_run_and_only_probes(world: Harness, no_lookback: None) -> None:
    world.cycle()  # settle anything the convergence cycles left within the lookback
    before, runs = _state(world), world.instance.get_runs_count()
    world.reset_stats()
    report = world.cycle()
    assert report.plan is not None and report.plan.quiet, report.plan and report.plan.summary()
    assert report.run_ids == [] and world.instance.get_runs_count() == runs
    assert len(report.plan.probes) == len(SOURCES) and all(report.plan.probes.values())
    assert _state(world) == before  # no rebuild, no new link version, no read recorded
    requests = {s: st["requests"] for s, st in world.stats().items()}
    assert not any(world.writes().values()), requests
    # a probe per entity: a handful of cheap reads per system, whatever the data's size
    assert all(sum(r.values()) <= 3 * len([x for x in SOURCES if x.system == s]) + 1 for s, r in requests.items()), \
        requests


def test_an_edit_runs_only_what_it_reaches_and_arrives(world: Harness, no_lookback: None) -> None:
    world.cycle()
    t = uuid.uuid4().hex[:8]
    crm = world.client("customcrm")
    rid = _linked(world, "customcrm.product", "customwebshop.product")[0]
    crm.update_record("products", rid, {"description": f"Plan {t}\nmed linjeskift 🧶"})
    report = world.cycle()
    assert [s.key for s in report.plan.changed] == ["customcrm.products"], report.plan.summary()
    assert set(report.collected) == {"customcrm.products"}, set(report.collected)
    shop = world.counterpart(V["customcrm.product"], rid, V["customwebshop.product"])
    assert world.client("customwebshop").get_record("products", shop)["description"] == f"Plan {t}\nmed linjeskift 🧶"
    # the push read its write back (`assets._read_back`): the webshop is no change for the next cycle, and
    # the write it made is not pending (made after that mapping): the next cycle merges and maps the products
    # again with what was read back, without a read (the probes only) or a write, and the one after is quiet
    world.reset_stats()
    after = world.cycle()
    assert after.plan.settle == ["product"] and not (after.plan.changed or after.plan.pending), after.plan.summary()
    assert after.collected == {} and after.writes == 0 and not any(world.writes().values())
    assert not any(sum(st["requests"].values()) > 3 * 4 for st in world.stats().values()), world.stats()
    assert world.cycle().plan.quiet


def test_a_write_held_by_a_system_failure_is_retried_though_nothing_changed(world: Harness, no_lookback: None) -> None:
    world.cycle()
    t = uuid.uuid4().hex[:8]
    crm = world.client("customcrm")
    rid = _linked(world, "customcrm.customer", "shopify.customer")[0]
    crm.update_record("customers", rid, {"phone": f"+47 9{int(t, 16) % 10_000_000:07d}"})
    world.faults(("shopify",), error_rate=1.0, error_statuses=[503], seed=3)
    try:
        held = world.cycle(allow_errors=True)
    finally:
        world.faults()
    assert held.pushed["shopify.customer"].held >= 1, held.pushed["shopify.customer"].as_metadata()
    retry = world.cycle()  # nothing changed anywhere since: the pending write alone starts the run
    assert "shopify.customer" in {v.vkey for v in retry.plan.pending}, retry.plan.summary()
    assert retry.pushed["shopify.customer"].updated >= 1, retry.pushed["shopify.customer"].as_metadata()
    world.until_quiet()


def test_a_change_whose_run_stopped_after_its_collect_arrives_with_the_next_cycle(
        world: Harness, no_lookback: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that stored the edit (its collect moved the probe) and then stopped before the merge: the next
    plan must not find "nothing changed" (the edit would never arrive; seen before `plan.UNSETTLED`)."""
    world.until_quiet()
    t = uuid.uuid4().hex[:8]
    rid = _linked(world, "customcrm.customer", "shopify.customer")[0]
    world.client("customcrm").update_record("customers", rid, {"phone": f"+47 4{int(t, 16) % 10_000_000:07d}"})

    def crash(con: object, gtype: str) -> None:
        raise RuntimeError("the process stopped here")  # a crash or a kill between collect and merge

    with monkeypatch.context() as m:
        m.setattr(assets, "merge_type", crash)
        failed = world.cycle(allow_errors=True)
    assert not failed.success and failed.collected["customcrm.customers"].changed == 1, failed.errors
    retry = world.cycle()
    assert "customcrm.customers" in {s.key for s in retry.plan.changed}, retry.plan.summary()
    world.until_quiet()
    shop = world.counterpart(V["customcrm.customer"], rid, V["shopify.customer"])
    assert world.value(V["shopify.customer"], shop, "phone") == world.value(V["customcrm.customer"], rid, "phone")
    assert world.cycle().plan.quiet  # settled: nothing left noted


def test_a_late_commit_that_leaves_the_probe_unchanged_is_found_by_the_recheck(
        world: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record committed late, with a change time older than the newest: the probe (count, newest
    change) does not move, so within the lookback the collect re-reads and a follow-up run carries it."""
    monkeypatch.setenv("TALK_COLLECT_LOOKBACK_S", "300")  # the default (the suite runs without one)
    world.until_quiet()
    crm = world.client("customcrm")
    ids = _linked(world, "customcrm.product", "customwebshop.product", 2)
    t = uuid.uuid4().hex[:8]
    newest = crm.update_record("products", ids[0], {"description": f"Nyeste {t}"})  # the newest change time
    world.cycle()
    world.cycle()
    # the late record's change time: a second before the newest (later than every other edit)
    back = (datetime.fromisoformat(newest["updated_at"].replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds() - 1
    world.box.control("customcrm", "POST", "clock", json={"advance_s": back})
    try:
        crm.update_record("products", ids[1], {"description": f"Sen {t}"})
    finally:
        world.box.control("customcrm", "POST", "clock", json={"advance_s": -back})
    report = world.cycle()
    assert "customcrm.products" in {s.key for s in report.plan.recheck}, report.plan.summary()
    assert len(report.run_ids) == 2, report.run_ids  # the recheck found it; the follow-up ran its downstream
    shop = world.counterpart(V["customcrm.product"], ids[1], V["customwebshop.product"])
    assert world.client("customwebshop").get_record("products", shop)["description"] == f"Sen {t}"


def test_rechecks_end_one_lookback_after_the_last_change_however_often_cycles_run(
        world: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-read that found nothing is no reason for another: the window for late commits runs from the
    last read that saw a change. Before, each recheck restarted it, so with cycles closer together than
    the lookback an entity once changed was re-read every cycle for ever (Squarespace's inventory, which
    has no change filter, read whole each time)."""
    lookback = 6.0
    monkeypatch.setenv("TALK_COLLECT_LOOKBACK_S", str(lookback))
    world.until_quiet()
    crm = world.client("customcrm")
    rid = _linked(world, "customcrm.product", "customwebshop.product")[0]
    crm.update_record("products", rid, {"description": f"Vindu {uuid.uuid4().hex[:6]} — Ødegård"})
    started = time.monotonic()
    first = world.cycle()
    changed_at = time.monotonic()
    # the window runs from the read early in that cycle: a slow machine's cycle must not outlast it
    lookback = max(lookback, 3 * (changed_at - started))
    monkeypatch.setenv("TALK_COLLECT_LOOKBACK_S", str(lookback))
    assert "customcrm.products" in {s.key for s in first.plan.changed}, first.plan.summary()
    seen = []
    while time.monotonic() - changed_at < lookback + 3:
        report = world.cycle()  # back to back: each closer to the one before than the lookback
        seen.append(sorted(s.key for s in report.plan.recheck))
        time.sleep(0.5)
    assert any("customcrm.products" in r for r in seen), seen  # the window was honoured first...
    assert world.cycle().plan.quiet, seen  # ...then ended, though a recheck ran less than the lookback ago


def _mappings_as_rebuilt(h: Harness, gtype: str = "order") -> dict[str, int]:
    """Each `gtype` view's mapped rows equal a whole rebuild's (made here, on the same state); the number of
    entities the cycle's mapping step mapped again, from its materialization."""
    from talk_assets.sync.assets import mapped_key
    from talk_assets.sync.mapping import map_view, target_views
    from talk_assets.sync.merge import table
    from talk_assets.sync.store import connect

    again = {}
    for v in (v for v in target_views() if v.global_type == gtype):
        made = h.sql(f"SELECT * FROM {table('mapped', v.vkey)} ORDER BY ALL")
        with connect(h.data / "talk.duckdb") as con:
            con.execute("DELETE FROM map_state WHERE view = ?", [v.vkey])
            con.execute("DELETE FROM derived_state WHERE name = ?", [f"map:{v.vkey}"])
            map_view(con, v)
        assert h.sql(f"SELECT * FROM {table('mapped', v.vkey)} ORDER BY ALL") == made, v.vkey
        event = h.instance.get_latest_materialization_event(mapped_key(v))
        meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
        again[v.vkey] = int(meta["entities_mapped_again"].value) if "entities_mapped_again" in meta else -1
    return again


def test_a_customer_edit_maps_again_only_the_orders_that_reference_it(world: Harness, no_lookback: None) -> None:
    """An order's mapped row reads its customer's record id in the target (or the customer merge's values):
    the order mappings follow the customer merge's log of changed entities, like the customer mappings
    do, instead of mapping every order again after any customer edit (0.6-0.8 s a cycle at ~100k)."""
    world.until_quiet()
    _mappings_as_rebuilt(world)  # the next mappings start from a whole one
    crm = world.client("customcrm")
    rid = world.sql("""SELECT l.record_id FROM links l JOIN merged_order o ON o.customer = l.gid
                       WHERE l.view = 'customcrm.customer' GROUP BY l.record_id ORDER BY count(*) DESC LIMIT 1""")[0][0]
    crm.update_record("customers", rid, {"phone": "+47 41 00 00 01", "city": "Ærøskøbing\nvest"})
    report = world.cycle()
    assert "customcrm.customers" in {s.key for s in report.plan.changed}, report.plan.summary()
    orders = world.sql("SELECT count(*) FROM merged_order")[0][0]
    again = _mappings_as_rebuilt(world)
    mapped_now = {k: n for k, n in again.items() if n >= 0}
    assert mapped_now and all(n < orders // 2 for n in mapped_now.values()), (again, orders)
    world.until_quiet()
    assert _mappings_as_rebuilt(world)


def test_an_order_edit_maps_again_only_the_orders_it_changed(world: Harness, no_lookback: None) -> None:
    """Orders merge whole (their references and fingerprints are not local), but each build logs the
    entities that differ from the last build's, and the customers those orders named before or name now:
    after an order edit the order mappings map those orders again, and the customer mappings (an order
    synced into a target makes its customer wanted there) those customers, not every row (a whole build
    logged as "everything" rebuilt every order and customer mapping: 0.2-1.4 s a view at 1M records, and
    the checkpoints of their WAL). Each equals a whole rebuild."""
    world.until_quiet()
    _mappings_as_rebuilt(world)
    _mappings_as_rebuilt(world, "customer")
    crm = world.client("customcrm")
    orders = [r[0] for r in world.sql("SELECT record_id FROM links WHERE view = 'customcrm.order' ORDER BY record_id")]
    crm.update_record("orders", orders[0], {"note": "Levér til «Bakgården» 🚚\nringe først", "reference": "PO-ÆØÅ-1"})
    moved = crm.get_record("orders", orders[1])
    # to a customer Shopify does not hold and nothing makes wanted there yet: the order, synced to Shopify,
    # makes it wanted (a create), which only the order merge's log of the customers it names can tell
    unwanted = [r[0] for r in world.sql(
        "SELECT l.record_id FROM links l WHERE l.view = 'customcrm.customer' AND l.gid NOT IN "
        "(SELECT gid FROM links WHERE view = 'shopify.customer') AND l.gid NOT IN "
        f"(SELECT gid FROM {table('mapped', 'shopify.customer')}) ORDER BY l.record_id")]
    assert unwanted, "no CRM customer left that Shopify does not want: the test would prove nothing"
    other = next(c for c in unwanted if str(c) != str(moved["customer_id"]))
    other_gid = world.gid_of(V["customcrm.customer"], other)
    crm.update_record("orders", orders[1], {"customer_id": int(other)})  # the order moves to another customer
    report = world.cycle()
    assert "customcrm.orders" in {s.key for s in report.plan.changed}, report.plan.summary()
    def within(again: dict[str, int], changed: int) -> bool:
        """Each view mapped again at most `changed` entities and its rows without a target record (always
        made again: a create's held reason reads the rest of the view)."""
        no_target = {v: world.sql(f"SELECT count(*) FILTER (WHERE nsid IS NULL) FROM {table('mapped', v)}")[0][0]
                     for v in again}
        return all(0 <= n <= changed + no_target[v] for v, n in again.items())

    # the two edited orders; before, every row of every order view (17 orders, up to 12 in a view)
    again = _mappings_as_rebuilt(world)
    assert within(again, 2), again
    # the moved order's two customers (before and after) and the edited order's
    again = _mappings_as_rebuilt(world, "customer")
    assert within(again, 3), again
    assert world.sql(f"SELECT action FROM {table('mapped', 'shopify.customer')} WHERE gid = ?", [other_gid]) \
        == [("create",)]
    assert world.sql("SELECT count(*) FROM merge_changes WHERE global_type = 'order' AND gid IS NULL "
                     "AND build = (SELECT max(build) FROM merge_changes WHERE global_type = 'order')") == [(0,)]
    # the UI's changed entities compared only the logged ones: every order's digest is still its row's
    assert world.sql("SELECT gid, h FROM merged_digests WHERE global_type = 'order' ORDER BY gid") == \
        world.sql(f"SELECT gid, hash(m) FROM {table('merged', 'order')} m ORDER BY gid")
    step = world.instance.get_latest_materialization_event(merge_key("order")).asset_materialization
    assert step.metadata["changed_entities"].value == 2, step.metadata  # the two edited orders
    world.until_quiet()
    assert _mappings_as_rebuilt(world)
    assert _mappings_as_rebuilt(world, "customer")


def test_a_new_engine_or_declaration_runs_every_step_once(world: Harness) -> None:
    world.sql("UPDATE cycle_state SET value = 'an older release' WHERE name = 'code_digest'")
    report = world.cycle()
    assert report.plan.everything == "the declaration or engine changed"
    assert set(report.collected) == {s.key for s in SOURCES}
    assert world.sql("SELECT value <> 'an older release' FROM cycle_state WHERE name = 'code_digest'") == [(True,)]


EDITS = [  # (view, system, entity, changes for a token): edits the dataflows carry, one a merge key
    ("customcrm.customer", "customcrm", "customers", lambda t: {"phone": f"+47 4{int(t, 16) % 10_000_000:07d}"}),
    ("customwebshop.product", "customwebshop", "products", lambda t: {"description": f"Tekst {t} ✨\nny linje"}),
    ("shopify.customer", "shopify", "customer", lambda t: {"first_name": f"Ånund-{t[:4]}"}),
    ("poweroffice.customers_person", "poweroffice", "customers", lambda t: {"FirstName": f"van der {t[:4]}"}),
    ("customwebshop.customer", "customwebshop", "customers", lambda t: {"email": f"ny.{t}@example.no"}),
]


def _merged(h: Harness) -> list:
    from talk_assets.sync.declaration import GLOBAL_TYPES
    from talk_assets.sync.merge import table

    return [h.sql(f"SELECT * FROM {table('merged', t)} ORDER BY gid") for t in GLOBAL_TYPES]


@pytest.mark.parametrize("seed", [11, 12])
def test_planned_cycles_end_where_a_full_rebuild_ends(world: Harness, no_lookback: None, seed: int) -> None:
    """Random edits (one changes a merge key, the e-mail), planned cycles until quiet; then a full
    cycle (every step, every record re-read) finds nothing to write and merges the same entities."""
    import random

    rng = random.Random(seed)
    for view, system, entity, change in rng.sample(EDITS, 3):
        rid = rng.choice(world.sql("SELECT record_id FROM links WHERE view = ? ORDER BY record_id", [view]))[0]
        world.client(system).update_record(entity, rid, change(uuid.uuid4().hex[:8]))
    world.until_quiet()
    before = _merged(world)
    world.reset_stats()
    full = world.cycle(full=True)
    assert full.writes == 0 and not any(world.writes().values()), {k: p.as_metadata() for k, p in full.pushed.items()}
    assert _merged(world) == before


def test_squarespace_stock_is_read_when_something_suggests_a_change(world: Harness, no_lookback: None,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Squarespace's inventory has no change filter: a quiet cycle does not read it. A stock edit made
    in Squarespace alone arrives with the next full-read period; the sync's own stock writes are read
    back at once (the pending write re-reads its target), so the worlds still converge."""
    monkeypatch.setenv("TALK_SQUARESPACE_INVENTORY_FULL_READ_S", "1000000000")
    world.cycle()
    sq, shop = world.client("squarespace"), world.client("customwebshop")
    variant = _linked(world, "squarespace.inventory", "customwebshop.product")[0]
    shop_id = world.counterpart(V["squarespace.inventory"], variant, V["customwebshop.product"])
    quantity = sq.get_record("inventory", variant)["quantity"]
    sq.adjust_inventory({"setFiniteOperations": [{"variantId": variant, "quantity": quantity + 5}]},
                        uuid.uuid4().hex)
    world.reset_stats()
    assert world.cycle().plan.quiet
    assert not any(k.startswith("GET ") and "/inventory" in k for k in world.stats()["squarespace"]["requests"])
    # the period passes: the whole listing is read and the merchant's edit arrives
    monkeypatch.setenv("TALK_SQUARESPACE_INVENTORY_FULL_READ_S", "1")
    time.sleep(1.05)
    report = world.cycle()
    assert "squarespace.inventory" in {s.key for s in report.plan.changed}, report.plan.summary()
    assert shop.get_record("products", shop_id)["stock"] == quantity + 5
    # an edit elsewhere is written to Squarespace and read back without waiting for a period
    monkeypatch.setenv("TALK_SQUARESPACE_INVENTORY_FULL_READ_S", "1000000000")
    world.until_quiet()
    shop.update_record("products", shop_id, {"stock": quantity + 9})
    world.until_quiet()
    assert sq.get_record("inventory", variant)["quantity"] == quantity + 9
    assert world.sql("SELECT count(*) FROM mapped_squarespace_inventory WHERE action <> 'unchanged'")[0][0] == 0


def test_a_customer_value_edit_does_not_rebuild_the_order_merge(world: Harness, no_lookback: None) -> None:
    """The order merge reads of the customers only which entity each record is and their e-mails:
    a new phone number rebuilds the customer merge and arrives, the orders' merge is kept."""
    world.cycle()

    def built(name: str) -> object:
        return world.sql("SELECT built_at FROM derived_state WHERE name = ?", [name])[0][0]

    customers, orders = built("merge:customer"), built("merge:order")
    rid = _linked(world, "customcrm.customer", "customwebshop.customer")[0]
    phone = f"+47 9{uuid.uuid4().int % 10**7:07d}"
    world.client("customcrm").update_record("customers", rid, {"phone": phone})
    world.cycle()
    assert built("merge:customer") != customers and built("merge:order") == orders
    shop = world.counterpart(V["customcrm.customer"], rid, V["customwebshop.customer"])
    got = world.client("customwebshop").get_record("customers", shop)["phone"]
    assert got.replace(" ", "") == phone.replace(" ", ""), got
    # an e-mail edit can change which customer an order matches: that one rebuilds the orders
    world.until_quiet()
    world.client("customcrm").update_record("customers", rid, {"email": f"ny.{uuid.uuid4().hex[:6]}@example.no"})
    world.cycle()
    assert built("merge:order") != orders
    world.until_quiet()


def test_an_order_waiting_for_its_product_lets_the_cycles_go_quiet_and_follows_the_product(
        world: Harness, no_lookback: None) -> None:
    """Squarespace imports only orders of products it has: such an order waits (`push_waits`), and a
    cycle does not try it again while nothing changed (before, every cycle ran for it: never quiet).
    When the product is created and pushed to Squarespace, the same cycle imports the order."""
    t = uuid.uuid4().hex[:8]
    crm = world.client("customcrm")
    cust = crm.create_record("customers", {"name": f"Ventefirma {t} AS", "email": f"vent.{t}@example.no",
                                           "customer_type": "company", "city": "Oslo"})
    sku = f"VENT-{t}"
    order = crm.create_record("orders", {"customer_id": cust["id"], "reference": f"W-{t}",
                                         "lines": [{"sku": sku, "quantity": 2, "unit_price": "50.00"}]})
    world.until_quiet()
    assert world.sql("SELECT count(*) FROM push_waits WHERE view = 'squarespace.order'")[0][0] >= 1
    quiet = world.cycle()
    assert quiet.plan.quiet and quiet.run_ids == [], quiet.plan.summary()
    # an edit that reaches the order pushes (a customer's) but brings Squarespace no record: the order still
    # waits, without a read of Squarespace's whole inventory to find the SKU again (its writer's lookup)
    crm.update_record("customers", cust["id"], {"phone": f"+47 22 {int(t, 16) % 1_000_000:06d}"})
    world.reset_stats()
    edit = world.cycle()
    assert "customcrm.customers" in {s.key for s in edit.plan.changed}, edit.plan.summary()
    assert "squarespace.order" not in {v.vkey for v in edit.plan.pending}, edit.plan.summary()
    assert not world.stats()["squarespace"]["requests"].get("GET inventory"), world.stats()["squarespace"]
    crm.create_record("products", {"sku": sku, "name": f"Ventevare {t}", "unit_price": "50.00", "stock_quantity": 4})
    report = world.cycle()
    assert "squarespace.order" in {v.vkey for v in report.plan.pending}, report.plan.summary()
    assert world.counterpart(V["customcrm.order"], order["id"], V["squarespace.order"]) is not None
    assert world.sql("SELECT count(*) FROM push_waits w JOIN links l ON l.gid = w.gid "
                     "WHERE w.view = 'squarespace.order' AND l.view = 'customcrm.order' AND l.record_id = ?",
                     [str(order["id"])])[0][0] == 0
    world.until_quiet()


def test_a_run_for_one_entity_on_a_new_state_file_maps_with_every_merge_it_reads(
        rel: Harness, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`make run` on a new state: each system's sensor requests a run of what its changes reach. The
    Shopify orders' run maps the CRM's orders, which read the user merge: it runs in that run too
    (before, the mapping failed: "Table with name members_user does not exist")."""
    from talk_assets.sync.declaration import SOURCES_BY_KEY
    from talk_assets.sync.sensors import downstream_of

    selection = downstream_of((SOURCES_BY_KEY["shopify.order"],))
    with _new_state(rel, tmp_path_factory) as fresh:
        report = fresh.cycle(selection=selection, allow_errors=True)
    assert report.success and not report.errors, report.errors
    assert dg_key("merge/user") in selection and dg_key("customcrm/mapped/order") in selection


def dg_key(path: str) -> object:
    import dagster as dg

    return dg.AssetKey(path.split("/"))


def test_each_systems_first_run_on_a_new_state_file_is_not_stopped_by_the_breaker(
        rel: Harness, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run`: each system's first run comes on its own. A run writes only to systems already read
    (before, the first runs created orders and products Shopify already had: 89 and 81 duplicates in a
    first `make run`), and what PowerOffice held before its first read is the first sync, not a mass
    change: the breaker lets it through (before, a new user's first `make run` ended held)."""
    from talk_assets.sync.declaration import SOURCES
    from talk_assets.sync.push import PushSettings
    from talk_assets.sync.sensors import downstream_of

    monkeypatch.setenv("TALK_CIRCUIT_BREAKER_MIN_ROWS", "3")
    monkeypatch.setenv("TALK_CIRCUIT_BREAKER_SHARE", "0.05")
    guarded = PushSettings(confirm_large=False)
    with _new_state(rel, tmp_path_factory) as fresh:
        read: set[str] = set()
        for system in ("customcrm", "poweroffice", "customwebshop", "shopify", "squarespace"):
            report = fresh.cycle(selection=downstream_of(tuple(s for s in SOURCES if s.system == system)),
                                 settings=guarded, allow_errors=True)
            assert not report.breaker and not report.errors, (system, report.breaker, report.errors)
            read.add(system)
            # nothing is written to a system not read yet: a create there could duplicate what it holds
            unread = {k: p.created + p.updated for k, p in report.pushed.items() if k.split(".")[0] not in read}
            assert not any(unread.values()), unread
        fresh.until_quiet()
        doubled = fresh.sql("SELECT view, gid FROM links GROUP BY view, gid HAVING count(*) > 1 LIMIT 5")
        refused = fresh.sql("SELECT view, error FROM dead_letters WHERE resolved_at IS NULL LIMIT 5")
        assert not doubled and not refused, (doubled, refused)
        # (a mass change after convergence still trips it: test_sync.py::test_the_circuit_breaker_stops_a_large_update_until_confirmed)


def test_a_source_whose_clock_runs_behind_ours_still_trips_the_breaker_after_its_first_read(
        rel: Harness, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The breaker lets through values edited before this state first read their source (the first sync
    converging), judging by the values' edit times, which are the source's clock. The first read's time
    must be that clock too (the server's `Date`): with our own clock, a webshop whose clock runs two hours
    behind ours had every edit of the next two hours pass for "before the first read", and a mass price
    change went out unguarded."""
    from talk_assets.sync.push import PushSettings

    monkeypatch.setenv("TALK_CIRCUIT_BREAKER_MIN_ROWS", "3")
    monkeypatch.setenv("TALK_CIRCUIT_BREAKER_SHARE", "0.05")
    rel.reset()  # seed records only: none stamped by an earlier test on our clock (the skew is the server's own)
    rel.box.control("customwebshop", "POST", "clock", json={"advance_s": -7200})
    try:
        with _new_state(rel, tmp_path_factory) as fresh:
            fresh.until_quiet()
            shop = fresh.client("customwebshop")
            for p in list(shop.iter_records("products"))[:6]:
                shop.update_record("products", str(p["id"]), {"price": int(p["price"]) + 1250})
            fresh.reset_stats()
            report = fresh.cycle(settings=PushSettings(confirm_large=False), allow_errors=True)
            assert any("customcrm" in b and "Product" in b for b in report.breaker), (report.breaker,
                                                                                     report.pushed.keys())
            assert fresh.writes()["customcrm"] == 0, fresh.stats()["customcrm"]["requests"]
    finally:
        rel.box.zero_clocks("customwebshop")


def _org_number(seed: int) -> str:
    """A Norwegian organisation number with a valid mod-11 check digit (Brønnøysund's weights)."""
    for base in range(seed, seed + 100):
        digits = [int(d) for d in f"{base % 10**8:08d}"]
        check = 11 - sum(w * d for w, d in zip((3, 2, 7, 6, 5, 4, 3, 2), digits, strict=True)) % 11
        if check == 11:
            check = 0
        if check < 10:
            return "".join(map(str, digits)) + str(check)
    raise AssertionError("no valid organisation number near the seed")


def test_a_new_record_waits_until_every_system_holding_its_type_has_been_read(
        rel: Harness, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`make run` on a new state: each system's first run comes on its own. A CRM company without an
    e-mail and the webshop customer with its e-mail are one customer only through PowerOffice's record,
    which holds both the e-mail and the organisation number. Found in a first `make run` where the
    webshop's run came before PowerOffice's: it created a second CRM customer for the company (two CRM
    records in one entity once PowerOffice was read). A create now waits until every system holding its
    type has been read from this state; updates do not wait."""
    from talk_assets.sync.sensors import downstream_of

    rel.reset()
    t = uuid.uuid4().hex[:6]
    org, email, name = _org_number(int(t, 16)), f"post.{t}@frisor-ålesund.no", f"Frisør Ålesund {t} AS"
    crm = rel.client("customcrm").create_record("customers", {"name": name, "customer_type": "company",
                                                               "organization_number": org, "city": "Ålesund"})
    rel.client("customwebshop").create_record("customers", {"email": email, "first_name": "Kari", "company": name,
                                                            "last_name": "Nordmann-Ødegård"})
    rel.client("poweroffice").create_record("customers", {"IsPerson": False, "Name": name, "EmailAddress": email,
                                                          "OrganizationNumber": org})
    with _new_state(rel, tmp_path_factory) as fresh:
        for system in ("customcrm", "customwebshop", "poweroffice", "shopify", "squarespace"):
            report = fresh.cycle(selection=downstream_of(tuple(s for s in SOURCES if s.system == system)),
                                 allow_errors=True)
            assert not report.errors, (system, report.errors)
            if system == "customwebshop":  # PowerOffice not read yet: no customer is created anywhere
                held = report.pushed["customcrm.customer"]
                assert held.created == 0 and held.held >= 1, held.as_metadata()
                assert "poweroffice customers" in held.held_reason, held.held_reason
        fresh.until_quiet()
        doubled = fresh.sql("SELECT view, gid FROM links GROUP BY view, gid HAVING count(*) > 1 LIMIT 5")
        assert not doubled, doubled
        crm_view = VIEWS_BY_KEY["customcrm.customer"]
        gid = fresh.gid_of(crm_view, crm["id"])
        assert fresh.gid_of(VIEWS_BY_KEY["poweroffice.customers_organisation"], fresh.member(
            gid, VIEWS_BY_KEY["poweroffice.customers_organisation"])) == gid
        assert fresh.member(gid, VIEWS_BY_KEY["customwebshop.customer"]), "the webshop customer is not linked"
        same = [r for r in rel.client("customcrm").iter_records("customers") if r.get("name") == name]
        assert len(same) == 1, same


@contextlib.contextmanager
def _new_state(rel: Harness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """A harness on a new state file beside the module's world (whose TALK_DATA_DIR comes back after)."""
    saved = os.environ["TALK_DATA_DIR"]
    try:
        yield Harness(rel.box, tmp_path_factory.mktemp("new-state"))
    finally:
        os.environ["TALK_DATA_DIR"] = saved
