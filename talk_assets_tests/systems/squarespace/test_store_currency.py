"""A Squarespace store that sells in SEK, through real sync cycles (issue 12): nothing is converted
silently. Orders and product prices in NOK are held with a reason naming both currencies; the
store's SEK prices are no value for the global (NOK) price, so they never overwrite it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from talk_assets.sandbox.world import CURRENCY
from talk_assets_tests.reliability.support import Harness


@pytest.fixture(scope="module")
def sek(rel: Harness) -> Iterator[Harness]:
    app = rel.box.servers["squarespace"].app
    app.currency = "SEK"
    rel.reset()
    rel.cycle(allow_errors=True)
    yield rel
    app.currency = CURRENCY  # the rel fixture's teardown resets the store in NOK again


def test_a_nok_order_waits_for_a_sek_store_with_a_reason(sek: Harness) -> None:
    sq = sek.client("squarespace")
    assert {v["pricing"]["basePrice"]["currency"] for p in sq.iter_records("products") for v in p["variants"]} \
        == {"SEK"}
    t = uuid.uuid4().hex[:8]
    crm = sek.client("customcrm")
    cust = crm.create_record("customers", {"name": f"Svensk {t} AB", "email": f"sv.{t}@example.se",
                                           "customer_type": "company", "city": "Oslo"})
    # a SKU the store already has, so only the currency stands in the way
    sku = next(i["sku"] for i in sq.iter_records("inventory") if i.get("sku"))
    order = crm.create_record("orders", {"customer_id": cust["id"], "reference": f"S-{t}", "currency": "NOK",
                                         "lines": [{"sku": sku, "quantity": 1, "unit_price": "100.00"}]})
    before = sek.stats()["squarespace"]["requests"].get("POST orders", 0)
    report = sek.cycle(allow_errors=True)
    res = report.pushed["squarespace.order"]
    assert res.pending_refs >= 1 and res.held == 0 and "NOK" in res.held_reason and "SEK" in res.held_reason, res.as_metadata()
    assert sek.stats()["squarespace"]["requests"].get("POST orders", 0) == before, "nothing was sent"
    assert not sek.sql("SELECT 1 FROM links s JOIN links t ON t.gid = s.gid AND t.view = 'squarespace.order' "
                       "WHERE s.view = 'customcrm.order' AND s.record_id = ?", [str(order["id"])])
    assert not sek.sql("SELECT 1 FROM dead_letters WHERE view LIKE 'squarespace.%' AND resolved_at IS NULL")


def test_sek_prices_never_become_the_global_nok_price(sek: Harness) -> None:
    from talk_assets.sync.merge import table

    rows = sek.sql(f"SELECT count(*), count(price_ex_vat) FROM {table('norm', 'squarespace.sesamproducts')}")
    assert rows[0][0] > 0 and rows[0][1] == 0, rows
