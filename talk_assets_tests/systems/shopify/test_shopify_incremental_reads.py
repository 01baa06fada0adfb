"""Incremental reads (`iter_records(since=...)`) against the Shopify sandbox at its real cost bucket
(standard plan: 2,000 points, 100 restored per second, no speed-up): a read of a few changed records
must not request a page's worth of cost points (which makes the client wait for the bucket), and a
read of more changes than the bucket holds goes through a filtered bulk operation instead of pages.

Issue #15: an order collect took 5.12 s per run where one record had changed, a setup cycle that
re-read the collect lookback 40 s of `time.sleep` in the cost pacer (cProfile of `Env(200)`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from talk_assets.sandbox.server import SandboxServer
from talk_assets.systems.shopify import client as client_mod
from talk_assets.systems.shopify.client import Client
from talk_assets.systems.shopify.sandbox import App

from .conftest import TOKEN, Shop


@pytest.fixture(autouse=True)
def _fresh_scope_cache() -> None:
    client_mod._SCOPE_CACHE.clear()


def _edit(shop: Shop, entity: str, rid: int, body: dict) -> None:
    # edits are made in the shop (REST, as a user's other app would)
    shop.api("PUT", f"{entity}s/{rid}.json", json={entity: {"id": rid, **body}}).raise_for_status()


def _now(shop: Shop) -> datetime:
    return datetime.fromisoformat(shop.control("GET", "clock")["now"])


def _calls(shop: Shop) -> dict[str, int]:
    return shop.control("GET", "stats")["requests"]


def test_no_change_is_one_cheap_count(shop: Shop) -> None:
    shop.faults(rate_limit_speed=1)
    shop.advance(3600)
    since = _now(shop)
    c = Client(shop.url, TOKEN)
    try:
        c.ensure_scopes()
        before = _calls(shop).get("POST graphql.json", 0)
        assert list(c.iter_records("order", since=since)) == []
        assert _calls(shop).get("POST graphql.json", 0) - before == 1
        assert c.cost_pacer.waited == 0
    finally:
        c.close()


@pytest.mark.parametrize(("entity", "bucket"), [("customer", 40), ("product", 300), ("order", 300)])
def test_more_changes_than_the_bucket_holds_are_read_by_a_filtered_bulk_operation(shop: Shop, entity: str,
                                                                                   bucket: int) -> None:
    shop.faults(rate_limit_speed=1)
    # a small bucket, so a few records' pages already exceed it (at the standard 2,000 points that takes
    # hundreds of records, as a setup cycle's re-read of its own writes has)
    shop.control("PUT", "graphql/cost", {"bucket_size": bucket, "restore_rate": 20})
    shop.advance(3600)
    since = _now(shop)
    table = {"customer": shop.app.customers, "product": shop.app.products, "order": shop.app.orders}[entity]
    edited = table.ids[:: max(1, len(table.ids) // 12)][:12]
    field = "title" if entity == "product" else "note"
    for i, rid in enumerate(edited):
        _edit(shop, entity, rid, {field: f"endret {i}"})
    c = Client(shop.url, TOKEN)
    try:
        got = list(c.iter_records(entity, since=since))
        assert sorted(r["id"] for r in got) == sorted(edited)
        assert _calls(shop).get("GET bulk-results") == 1
        assert c.cost_pacer.waited < 1.0, f"waited {c.cost_pacer.waited:.1f}s for the cost bucket"
        # the same records as a paged read of the same filter returns
        shop.control("PUT", "graphql/cost", {"bucket_size": 2000, "restore_rate": 100})
        paged = list(Client(shop.url, TOKEN).iter_records(entity, since=since, page_size=5))
        assert sorted(got, key=lambda r: r["id"]) == sorted(paged, key=lambda r: r["id"])
    finally:
        c.close()


def test_changes_that_fit_the_bucket_are_paged_in_one_page(shop: Shop) -> None:
    shop.faults(rate_limit_speed=1)
    shop.advance(3600)
    since = _now(shop)
    edited = shop.app.customers.ids[:3]
    for rid in edited:
        _edit(shop, "customer", rid, {"note": "Ola\nNordmann 🎿"})
    c = Client(shop.url, TOKEN)
    try:
        c.ensure_scopes()
        before = _calls(shop).get("POST graphql.json", 0)
        got = list(c.iter_records("customer", since=since))
        assert sorted(r["id"] for r in got) == sorted(edited) and got[0]["note"] == "Ola\nNordmann 🎿"
        assert _calls(shop).get("POST graphql.json", 0) - before == 2  # the count, one page
        assert "GET bulk-results" not in _calls(shop)
    finally:
        c.close()


@pytest.fixture(scope="module")
def shop200() -> Iterator[Shop]:
    srv = SandboxServer(App(seed=7, size=200), port=0).start()
    yield Shop(srv)
    srv.stop()


def test_repeated_reads_of_a_window_of_changed_orders_do_not_wait_for_the_bucket(shop200: Shop) -> None:
    """The latency benchmark's polling: every cycle re-reads the lookback window (here 20 changed orders)
    at the real restore rate. Pages sized to the budget requested ~1,000 points each and waited ~1.5 s
    a read (4-5 s with 35 orders: the 5.12 s `shopify__collected__order` of issue #15)."""
    shop = shop200
    shop.control("POST", "reset")
    shop.faults(rate_limit_speed=1)
    shop.advance(3600)
    since = _now(shop)
    edited = shop.app.orders.ids[:20]
    for i, rid in enumerate(edited):
        _edit(shop, "order", rid, {"note": f"endret {i}"})
    c = Client(shop.url, TOKEN)
    try:
        for _ in range(5):
            assert sorted(o["id"] for o in c.iter_records("order", since=since)) == sorted(edited)
        assert c.cost_pacer.waited < 0.5, f"waited {c.cost_pacer.waited:.1f}s for the cost bucket"
    finally:
        c.close()
