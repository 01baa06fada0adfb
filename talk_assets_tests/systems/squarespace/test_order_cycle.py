"""Orders reaching Squarespace through real sync cycles against the sandbox (issue 12).

A line whose product Squarespace does not have is never sent as a free-text line (the create-order
docs: an order without existing Squarespace products is an error). Either the product reaches
Squarespace first through the Sesamproducts flow (products are pushed before orders, in the same
cycle), or the order is held back with a reason naming the SKU, and imported in the cycle after the
product exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from talk_assets_tests.reliability.support import Harness

VIEW = "squarespace.order"


@pytest.fixture(scope="module")
def synced(rel: Harness) -> Iterator[Harness]:
    rel.cycle()
    yield rel


def _sq_order(h: Harness, crm_order_id: str) -> dict[str, Any] | None:
    row = h.sql("SELECT t.record_id FROM links s JOIN links t ON t.gid = s.gid AND t.view = 'squarespace.order' "
                "WHERE s.view = 'customcrm.order' AND s.record_id = ?", [crm_order_id])
    return h.client("squarespace").get_record("orders", row[0][0]) if row else None


def _dead(h: Harness) -> list[tuple]:
    return h.sql("SELECT gid, status, error FROM dead_letters WHERE view = 'squarespace.order' AND resolved_at IS NULL")


def test_a_new_product_reaches_squarespace_before_its_order(synced: Harness) -> None:
    t = uuid.uuid4().hex[:8]
    crm = synced.client("customcrm")
    cust = crm.create_record("customers", {"name": f"Ordrefirma {t} AS", "email": f"ordre.{t}@example.no",
                                           "customer_type": "company", "city": "Bergen"})
    prod = crm.create_record("products", {"sku": f"SQ-NEW-{t}", "name": f"Ny vare {t}", "unit_price": "200.00",
                                          "stock_quantity": 4})
    order = crm.create_record("orders", {"customer_id": cust["id"], "reference": f"SQ-{t}",
                                         "lines": [{"sku": prod["sku"], "quantity": 3, "unit_price": "200.00"}]})
    report = synced.cycle()
    assert report.pushed["squarespace.sesamproducts"].created >= 1
    got = _sq_order(synced, str(order["id"]))
    assert got is not None, report.pushed.get(VIEW)
    (line,) = got["lineItems"]
    assert line["lineItemType"] == "PHYSICAL_PRODUCT" and line["sku"] == prod["sku"] and line["quantity"] == 3
    # every documented total is present and agrees with the order: prices ex. VAT (EXCLUSIVE), the tax the
    # CRM order's own (25 %, the CRM line's default rate)
    assert got["priceTaxInterpretation"] == "EXCLUSIVE"
    assert Decimal(got["subtotal"]["value"]) == Decimal(line["unitPricePaid"]["value"]) * 3 == Decimal("600.00")
    assert Decimal(got["taxTotal"]["value"]) == Decimal("150.00")
    assert Decimal(got["grandTotal"]["value"]) == Decimal("750.00")
    assert {got[k]["currency"] for k in ("subtotal", "shippingTotal", "discountTotal", "taxTotal", "grandTotal")} \
        == {"NOK"}
    assert not _dead(synced)


def test_an_order_whose_product_is_nowhere_is_held_with_a_reason_then_imported(synced: Harness) -> None:
    t = uuid.uuid4().hex[:8]
    crm = synced.client("customcrm")
    cust = crm.create_record("customers", {"name": f"Ventefirma {t} AS", "email": f"vent.{t}@example.no",
                                           "customer_type": "company", "city": "Oslo"})
    sku = f"SQ-GHOST-{t}"
    order = crm.create_record("orders", {"customer_id": cust["id"], "reference": f"G-{t}",
                                         "lines": [{"sku": sku, "quantity": 1, "unit_price": "80.00"}]})
    before = synced.stats()["squarespace"]
    report = synced.cycle(allow_errors=True)
    res = report.pushed[VIEW]
    assert res.pending_refs >= 1 and res.held == 0 and sku in res.held_reason and "Squarespace" in res.held_reason, res.as_metadata()
    assert res.as_metadata()["held_reason"] == res.held_reason
    assert _sq_order(synced, str(order["id"])) is None
    assert not _dead(synced), "a missing product is no rejection of the order: nothing is dead-lettered"
    after = synced.stats()["squarespace"]
    assert _order_posts(after) == _order_posts(before), "no import was attempted"
    # the product appears in the CRM: it reaches Squarespace, then the held order follows
    crm.create_record("products", {"sku": sku, "name": f"Spøkelsesvare {t}", "unit_price": "64.00",
                                   "stock_quantity": 1})
    synced.cycle()
    got = _sq_order(synced, str(order["id"]))
    assert got is not None and got["lineItems"][0]["sku"] == sku
    assert not _dead(synced)


def _order_posts(stats: dict[str, Any]) -> int:
    calls = stats.get("calls") or stats.get("requests") or {}
    return sum(int(n) for k, n in calls.items() if k.startswith("POST") and k.rstrip("/").endswith("orders"))


@pytest.mark.parametrize(("rate", "tax"), [("0.15", "30.00"), ("0", "0.00")])
def test_the_tax_of_a_food_and_a_zero_rated_line_comes_from_the_data(synced: Harness, rate: str, tax: str) -> None:
    """A 15 % food product and a 0 % product: the tax Squarespace gets is the order's own, and the line
    reads back at the same net price (no fixed 25 % anywhere on the way)."""
    t = uuid.uuid4().hex[:8]
    crm = synced.client("customcrm")
    cust = crm.create_record("customers", {"name": f"Matbutikk {t} AS", "email": f"mat.{t}@example.no",
                                           "customer_type": "company", "city": "Tromsø"})
    prod = crm.create_record("products", {"sku": f"MAT-{t}", "name": f"Brunost {t}", "unit_price": "100.00",
                                          "vat_rate": rate, "stock_quantity": 9})
    order = crm.create_record("orders", {"customer_id": cust["id"], "reference": f"M-{t}", "lines": [
        {"sku": prod["sku"], "quantity": 2, "unit_price": "100.00", "vat_rate": rate}]})
    synced.cycle()
    got = _sq_order(synced, str(order["id"]))
    assert got is not None
    assert (got["subtotal"]["value"], got["taxTotal"]["value"]) == ("200.00", tax)
    assert Decimal(got["grandTotal"]["value"]) == Decimal("200.00") + Decimal(tax)
    assert got["lineItems"][0]["unitPricePaid"]["value"] == "100.00"
    # collected back, the Squarespace order's line has the CRM line's net price
    synced.cycle()
    sq_lines = synced.norm(_view("squarespace.order"), got["id"], "lines")
    assert '"unit_price_ex_vat":100.00' in str(sq_lines).replace(" ", ""), sq_lines
    assert not _dead(synced)


def _view(key: str) -> Any:
    from talk_assets.sync.declaration import VIEWS_BY_KEY

    return VIEWS_BY_KEY[key]
