"""A Shopify shop that sells in SEK, through real sync cycles (issue 12): a variant's price is in the
shop's currency (`Shop.currencyCode`), so its SEK prices are no value for the global NOK price and never
overwrite it, and a NOK price is never written into the shop (held, with a reason naming both), while
the product's other properties still flow."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets.sync.merge import table
from talk_assets_tests.reliability.support import Harness

V = VIEWS_BY_KEY
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def sek(rel: Harness) -> Iterator[Harness]:
    app = rel.box.servers["shopify"].app
    app.currency = "SEK"
    rel.reset()
    try:
        rel.until_quiet()
        yield rel
    finally:
        app.currency = None  # the sandbox's own (NOK) again; the rel fixture's teardown resets the data


def _variants(h: Harness) -> dict[str, dict]:
    return {str(v["id"]): {**v, "product": p["id"]} for p in h.client("shopify").iter_records("product")
            for v in p["variants"]}


def test_the_shop_currency_is_read_with_every_price(sek: Harness) -> None:
    assert sek.client("shopify").shop_currency() == "SEK"
    assert {v["price_currency"] for v in _variants(sek).values()} == {"SEK"}
    rows = sek.sql(f"SELECT count(*), count(price_ex_vat) FROM {table('norm', 'shopify.sesamproduct')}")
    assert rows[0][0] > 0 and rows[0][1] == 0, rows


def test_a_nok_price_is_never_written_into_a_sek_shop_and_the_rest_still_flows(sek: Harness) -> None:
    crm_view, shop_view = V["customcrm.product"], V["shopify.sesamproduct"]
    gid, crm_id, variant_id = sek.sql(
        "SELECT c.gid, c.record_id, s.record_id FROM links c JOIN links s ON s.gid = c.gid AND s.view = ? "
        "WHERE c.view = ? ORDER BY c.gid LIMIT 1", [shop_view.vkey, crm_view.vkey])[0]
    before = _variants(sek)[variant_id]
    crm_price = Decimal(sek.client("customcrm").get_record("products", crm_id)["unit_price"])
    merged = sek.sql(f"SELECT price_ex_vat FROM {table('merged', 'product')} WHERE gid = ?", [gid])[0][0]
    assert Decimal(merged) == crm_price, "a SEK price became the global NOK price"

    sek.client("customcrm").update_record("products", crm_id, {"unit_price": str(crm_price + 7), "stock_quantity": 77})
    seen = len(sek.reports)
    sek.until_quiet()
    after = _variants(sek)[variant_id]
    assert after["price"] == before["price"], "a NOK price was written into the SEK shop"
    assert after["inventory_quantity"] == 77, "the stock did not flow"
    # the cycles that synced the edit (the last, quiet one runs no push at all)
    reasons = [r.pushed["shopify.sesamproduct"].held_reason for r in sek.reports[seen:] if "shopify.sesamproduct" in r.pushed]
    assert any("SEK" in x and "NOK" in x for x in reasons), reasons

    # a new product: not created with a NOK price in the SEK shop; it waits, with the reason
    sku = f"TALK-SEK-{uuid.uuid4().hex[:6].upper()}"
    sek.client("customcrm").create_record("products", {"sku": sku, "name": f"Vare {sku}", "unit_price": "100.00"})
    report = sek.cycle(allow_errors=False)
    assert "SEK" in report.pushed["shopify.sesamproduct"].held_reason
    assert not any(v.get("sku") == sku for v in _variants(sek).values())
