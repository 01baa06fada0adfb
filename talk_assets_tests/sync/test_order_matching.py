"""The first sync does not copy an order that already exists in the target (entered twice, or copied by an
older tool without our origin reference): orders of the same customer entity, with the same lines (SKU and
quantity) and the same order day are one order, when that match is unambiguous.

Against five tiny sandboxes of their own (a world of a few records, so a cycle is quick), over HTTP: the
orders are entered in the Custom CRM and in Shopify through their APIs, one `sync_job` runs, and the orders
are counted in Shopify over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from talk_assets.config import SYSTEMS
from talk_assets.sandbox.runner import start_all
from talk_assets.settings import environment
from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets.sync.links import update_links
from talk_assets.sync.merge import merge_type
from talk_assets_tests.conftest import Sandbox
from talk_assets_tests.harness import SyncHarness
from talk_assets_tests.sync.small_world import T0, put, ts

V = VIEWS_BY_KEY
SHOPIFY_TOKEN = {"X-Shopify-Access-Token": "shpat_sandbox0000000000000000000000"}
CRM_KEY = {"Authorization": "Bearer crm-sandbox-api-key"}
DAY = (datetime.now(UTC) - timedelta(days=9)).date()


class World(SyncHarness):
    strict = True

    def crm(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        r = requests.post(f"{self.box.url('customcrm')}/api/v1/{entity}", json=body, headers=CRM_KEY, timeout=10)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def shopify(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        key = entity.removesuffix("s")
        r = requests.post(f"{self.box.url('shopify')}/admin/api/2026-07/{entity}.json", json={key: body},
                          headers=SHOPIFY_TOKEN, timeout=10)
        assert r.status_code in (200, 201), r.text
        return r.json()[key]

    def shopify_orders(self, email: str) -> list[dict[str, Any]]:
        r = requests.get(f"{self.box.url('shopify')}/admin/api/2026-07/orders.json",
                         params={"status": "any", "limit": 250}, headers=SHOPIFY_TOKEN, timeout=10)
        r.raise_for_status()
        return [o for o in r.json()["orders"] if (o.get("email") or "").lower() == email.lower()]

    def customer(self, first: str, last: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """One person in the CRM and in Shopify under the same e-mail (the CRM's in upper case)."""
        email = f"{first.split()[0].lower()}.{uuid.uuid4().hex[:8]}@example.no"
        crm = self.crm("customers", {"name": f"{first} {last}", "email": email.upper(), "customer_type": "person"})
        shop = self.shopify("customers", {"email": email, "first_name": first, "last_name": last})
        return email, crm, shop

    def crm_order(self, customer: dict[str, Any], day: Any, lines: list[tuple[str, int]],
                  **extra: Any) -> dict[str, Any]:
        return self.crm("orders", {"customer_id": customer["id"], "currency": "NOK", "order_date": day.isoformat(),
                                   "lines": [{"sku": s, "quantity": q, "unit_price": "100.00", "vat_rate": "0.25"}
                                             for s, q in lines], **extra})

    def shopify_order(self, customer: dict[str, Any], day: Any, lines: list[tuple[str, int]]) -> dict[str, Any]:
        # Oslo time late in the evening: the UTC day is the same one
        return self.shopify("orders", {
            "customer": {"id": customer["id"]}, "email": customer["email"], "currency": "NOK",
            "processed_at": f"{day.isoformat()}T20:30:00+01:00",
            # a price incl. VAT that does not round back to the CRM's 100.00 ex. VAT exactly
            "line_items": [{"sku": s, "title": f"Vare {s} ✨", "quantity": q, "price": "124.99"} for s, q in lines]})

    def gid(self, vkey: str, record_id: Any) -> str | None:
        rows = self.sql("SELECT gid FROM links WHERE view = ? AND record_id = ?", [vkey, str(record_id)])
        return rows[0][0] if rows else None

    def held(self, vkey: str, gid: str) -> str | None:
        rows = self.sql(f"SELECT held_reason FROM mapped_{vkey.replace('.', '_')} WHERE gid = ? AND action = 'held'",
                        [gid])
        return rows[0][0] if rows else None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    servers = start_all(seed=5, size=3, ephemeral_ports=True)
    env = {SYSTEMS[k].url_env: srv.url for k, srv in servers.items()}
    env.update({f"TALK_{k.upper()}_MAX_RPS": "2000" for k in servers})
    env["TALK_DATA_DIR"] = str(tmp_path_factory.mktemp("orders"))
    try:
        with environment(env):
            box = Sandbox(servers)
            box.reset()
            yield World(box, Path(env["TALK_DATA_DIR"]))
    finally:
        for srv in servers.values():
            srv.stop()


@pytest.fixture(scope="module")
def first_sync(world: World) -> dict[str, Any]:
    """Orders entered in both systems before they were ever synced, then one cycle."""
    sku = f"kaffe-{uuid.uuid4().hex[:6]}"  # the CRM has it in lower case, Shopify in upper
    world.crm("products", {"sku": sku, "name": "Kaffe ☕ 500 g", "unit_price": "100.00", "stock_quantity": 5})
    other = f"TE-{uuid.uuid4().hex[:6]}"
    world.crm("products", {"sku": other, "name": "Te", "unit_price": "100.00", "stock_quantity": 5})
    s: dict[str, Any] = {}
    # the same order in both (the lines in another order, the SKU's case differs, prices differ by rounding)
    s["twice_email"], crm_c, shop_c = world.customer("Anne Marie", "van der Berg")
    s["twice_crm"] = world.crm_order(crm_c, DAY, [(sku, 2), (other, 1)], note="Levering\nbak huset 🚪")
    s["twice_shop"] = world.shopify_order(shop_c, DAY, [(other, 1), (sku.upper(), 2)])
    # the same lines on another day: two orders the customer really placed
    s["days_email"], crm_c, shop_c = world.customer("Cher", "")
    s["days_crm"] = world.crm_order(crm_c, DAY, [(sku, 1)])
    s["days_shop"] = world.shopify_order(shop_c, DAY - timedelta(days=1), [(sku, 1)])
    # one CRM order, two identical ones in Shopify: which one it is cannot be told
    s["amb_email"], crm_c, shop_c = world.customer("Nur", "binti Ahmad")
    s["amb_crm"] = world.crm_order(crm_c, DAY, [(other, 3)])
    s["amb_shop"] = [world.shopify_order(shop_c, DAY, [(other, 3)]) for _ in range(2)]
    # the same order in both, and nothing else like it: it stays linked after a lost state file
    s["pair_email"], crm_c, shop_c = world.customer("José", "de la Cruz")
    s["pair_crm"] = world.crm_order(crm_c, DAY, [(other, 1), (sku, 1), (sku, 1)])  # two lines of one SKU
    s["pair_shop"] = world.shopify_order(shop_c, DAY, [(sku, 2), (other, 1)])
    s["report"] = world.cycle()
    s["crm_customer"] = crm_c
    s["sku"] = sku
    return s


def test_an_order_already_in_the_target_is_linked_not_copied(world: World, first_sync: dict[str, Any]) -> None:
    orders = world.shopify_orders(first_sync["twice_email"])
    assert len(orders) == 1, [(o["id"], o.get("source_identifier")) for o in orders]
    crm_gid = world.gid("customcrm.order", first_sync["twice_crm"]["id"])
    assert crm_gid and crm_gid == world.gid("shopify.order", first_sync["twice_shop"]["id"])


def test_orders_of_different_days_stay_two(world: World, first_sync: dict[str, Any]) -> None:
    orders = world.shopify_orders(first_sync["days_email"])
    assert len(orders) == 2, orders
    assert world.gid("customcrm.order", first_sync["days_crm"]["id"]) != world.gid(
        "shopify.order", first_sync["days_shop"]["id"])
    copy = next(o for o in orders if o["id"] != first_sync["days_shop"]["id"])
    assert copy["source_identifier"] == f"talk:customcrm-orders:{first_sync['days_crm']['id']}"


def test_an_order_matching_several_in_the_target_is_held_with_its_reason(world: World,
                                                                         first_sync: dict[str, Any]) -> None:
    assert len(world.shopify_orders(first_sync["amb_email"])) == 2
    gid = world.gid("customcrm.order", first_sync["amb_crm"]["id"])
    assert gid and all(world.gid("shopify.order", o["id"]) != gid for o in first_sync["amb_shop"])
    reason = world.held("shopify.order", gid)
    assert reason and "2 Shopify Order record(s)" in reason and all(str(o["id"]) in reason for o in first_sync["amb_shop"]), reason


@pytest.fixture(scope="module")
def later_order(world: World, first_sync: dict[str, Any]) -> dict[str, Any]:
    """After the first sync, the matched order is entered again in the CRM the same day, then a cycle."""
    before = {(v, r): g for v, r, g in world.sql("SELECT view, record_id, gid FROM links WHERE global_type = 'order'")}
    crm = world.crm("orders", {"customer_id": first_sync["twice_crm"]["customer_id"], "currency": "NOK",
                               "order_date": DAY.isoformat(), "lines": first_sync["twice_crm"]["lines"]})
    world.cycle()
    return {"crm": crm, "links_before": before}


def test_a_later_identical_order_is_a_new_order_and_links_stay(world: World, first_sync: dict[str, Any],
                                                               later_order: dict[str, Any]) -> None:
    """Linked orders never re-merge: the same order entered again the same day in the CRM is copied."""
    orders = world.shopify_orders(first_sync["twice_email"])
    assert len(orders) == 2, orders
    assert any(o.get("source_identifier") == f"talk:customcrm-orders:{later_order['crm']['id']}" for o in orders)
    before = later_order["links_before"]
    after = {(v, r): g for v, r, g in world.sql("SELECT view, record_id, gid FROM links WHERE global_type = 'order'")}
    assert {k: g for k, g in after.items() if k in before} == before


def test_explain_says_why_an_order_was_matched_or_held(world: World, first_sync: dict[str, Any]) -> None:
    """`talk-assets explain` (the CLI, as a user runs it) names the held reason and the match evidence."""
    env = {**os.environ, "TALK_DATA_DIR": str(world.data)}
    out = subprocess.run([sys.executable, "-m", "talk_assets.cli", "explain", f"customcrm:orders:{first_sync['amb_crm']['id']}"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "held, not created" in out.stdout and "2 Shopify Order record(s)" in out.stdout, out.stdout
    assert "ambiguous: another record of one system has it too" in out.stdout, out.stdout
    out = subprocess.run([sys.executable, "-m", "talk_assets.cli", "explain", f"customcrm:orders:{first_sync['pair_crm']['id']}"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"shared here with shopify-order:{first_sync['pair_shop']['id']}" in out.stdout, out.stdout


def test_after_a_lost_state_file_the_matched_orders_are_matched_again(world: World, first_sync: dict[str, Any],
                                                                     later_order: dict[str, Any]) -> None:
    """Rebuilt from the systems: the pair is matched again; the order that has an identical twin by now (the
    same order entered again the same day, copied to Shopify) cannot be told from it, and is held, not copied."""
    world.until_quiet(limit=3)
    emails = ("twice_email", "days_email", "amb_email", "pair_email")
    counts = {e: len(world.shopify_orders(first_sync[e])) for e in emails}
    for f in world.data.glob("talk.duckdb*"):
        f.unlink()
    world.cycle()
    assert {e: len(world.shopify_orders(first_sync[e])) for e in emails} == counts
    assert world.gid("customcrm.order", first_sync["pair_crm"]["id"]) == world.gid(
        "shopify.order", first_sync["pair_shop"]["id"])
    gid = world.gid("customcrm.order", first_sync["twice_crm"]["id"])
    assert gid and "Shopify Order record(s)" in (world.held("shopify.order", gid) or ""), world.held("shopify.order", gid)


# -- the rule on a small hand-made world (DuckDB in memory, no HTTP; `con` is sync/conftest.py's) -----------
def _ws_order(oid: int, day: str, items: list[tuple[str, int]], customer: int = 1) -> dict[str, Any]:
    return {"id": oid, "customer_id": customer, "email": "kari@x.no", "placed_at": f"{day}T10:00:00Z",
            "updated_at": ts(1), "items": [{"sku": s, "quantity": q, "unit_price": 12500} for s, q in items]}


def _sq_order(oid: str, day: str, items: list[tuple[str, Any]], email: str = "KARI@x.no ") -> dict[str, Any]:
    return {"id": oid, "customerEmail": email, "createdOn": f"{day}T21:00:00Z", "modifiedOn": ts(2),
            "priceTaxInterpretation": "EXCLUSIVE", "grandTotal": {"value": "100.00", "currency": "NOK"},
            "lineItems": [{"sku": s, "quantity": q, "unitPricePaid": {"value": "99.95"}} for s, q in items]}


def _entities(con: Any) -> list[list[str]]:
    merge_type(con, "customer")
    merge_type(con, "order")
    return sorted(sorted(r) for (r,) in con.execute("SELECT list(nsid) FROM members_order GROUP BY gid").fetchall())


def test_an_order_naming_no_customer_matches_by_the_customers_email(con: Any) -> None:
    """Squarespace's orders carry an e-mail, no customer: the one customer entity with it; lines split, in
    another order, SKUs in another case and prices apart still match; another day does not."""
    sku = "Ull🧦-" + "x" * 10_000  # a hostile SKU: emoji, 10,000 characters
    put(con, "customwebshop.customers", {"id": 1, "email": "kari@x.no", "first_name": "Kari", "updated_at": ts(1)})
    put(con, "customwebshop.orders", _ws_order(10, "2026-03-04", [(sku, 1), ("B-1", 1), ("b-1", 1)]))
    put(con, "squarespace.orders", _sq_order("s1", "2026-03-04", [("B-1", 2), (sku.upper(), 1)]),
        _sq_order("s2", "2026-03-05", [("B-1", 2), (sku, 1)]))
    assert _entities(con) == [["customwebshop-orders:10", "squarespace-orders:s1"], ["squarespace-orders:s2"]]


def test_an_order_without_lines_day_or_customer_never_matches(con: Any) -> None:
    put(con, "customwebshop.customers", {"id": 1, "email": "kari@x.no", "updated_at": ts(1)})
    put(con, "customwebshop.orders", {**_ws_order(10, "2026-03-04", []), "items": None},
        {**_ws_order(11, "2026-03-04", [("A", 1)]), "placed_at": None},
        _ws_order(12, "2026-03-04", [("A", 1)], customer=99),  # a customer the webshop does not have
        _ws_order(13, "2026-03-04", [("A", 1)]))  # s4 and s5 have one more line, without quantity or SKU
    put(con, "squarespace.orders", _sq_order("s1", "2026-03-04", []), _sq_order("s2", "2026-03-04", [("A", None)]),
        _sq_order("s3", "2026-03-04", [("A", 1)], email="nobody@x.no"),
        _sq_order("s4", "2026-03-04", [("A", 1), ("B", None)]), _sq_order("s5", "2026-03-04", [("A", 1), ("", 1)]))
    assert all(len(e) == 1 for e in _entities(con))


def test_two_candidates_in_one_system_merge_nothing_and_are_named(con: Any) -> None:
    put(con, "customwebshop.customers", {"id": 1, "email": "kari@x.no", "updated_at": ts(1)})
    put(con, "customwebshop.orders", _ws_order(10, "2026-03-04", [("A", 1)]))
    put(con, "squarespace.orders", _sq_order("s1", "2026-03-04", [("A", 1)]), _sq_order("s2", "2026-03-04", [("A", 1)]))
    assert all(len(e) == 1 for e in _entities(con))
    rows = con.execute("SELECT m.nsid, c.view, c.n, c.record_ids FROM match_candidates_order c "
                       "JOIN members_order m USING (gid) WHERE m.nsid = 'customwebshop-orders:10'").fetchall()
    assert rows == [("customwebshop-orders:10", "squarespace.order", 2, ["s1", "s2"])]


def test_a_linked_order_never_joins_a_later_one(con: Any) -> None:
    put(con, "customwebshop.customers", {"id": 1, "email": "kari@x.no", "updated_at": ts(1)})
    put(con, "customwebshop.orders", _ws_order(10, "2026-03-04", [("A", 1)]))
    put(con, "squarespace.orders", _sq_order("s1", "2026-03-04", [("A", 1)]))
    assert _entities(con) == [["customwebshop-orders:10", "squarespace-orders:s1"]]
    update_links(con, T0)
    put(con, "customcrm.customers", {"id": 5, "email": "kari@x.no", "name": "Kari", "customer_type": "person",
                                     "updated_at": ts(3)})
    put(con, "customcrm.orders", {"id": 7, "customer_id": 5, "order_date": "2026-03-04", "updated_at": ts(3),
                                  "lines": [{"sku": "a", "quantity": 1, "unit_price": "100.00"}]})
    assert _entities(con) == [["customcrm-orders:7"], ["customwebshop-orders:10", "squarespace-orders:s1"]]
    # after a lost state file (no links) the three are one order: each system has one
    con.execute("DELETE FROM links")
    assert _entities(con) == [["customcrm-orders:7", "customwebshop-orders:10", "squarespace-orders:s1"]]
