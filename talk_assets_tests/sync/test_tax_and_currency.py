"""Tax and currency from the data (issue 12): each product's VAT rate comes from the systems that name one
(the webshop's `tax_rate`, the CRM's `vat_rate`, Shopify's `taxable`, the VAT code of a PowerOffice GO
product's sales account), prices are converted with it, a
target that cannot hold a rate gets no price (its create waits, with the reason), and a price in another
currency is never taken for the global NOK price. Values are compared at the target, over HTTP."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets.sync.merge import composed_fields, table
from talk_assets.systems.shopify.models import gid
from talk_assets_tests.conftest import Worlds
from talk_assets_tests.reliability.support import Harness

V = VIEWS_BY_KEY
pytestmark = pytest.mark.timeout(900)


# -- the conversions alone: a price written at a rate comes back as the same price --------------------
def _read(view: str, field: str, prop: str, record: dict[str, Any]) -> Any:
    pr = next(p for p in V[view].props if p.field == field and p.prop == prop)
    assert pr.read is not None
    value = record
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    sql = pr.read.replace("{v}", "$v").replace("{r}", "$r::JSON")
    text = json.dumps(value) if isinstance(value, (list, dict)) else None if value is None else str(value)
    params = {"v": text, "r": json.dumps(record)}
    return duckdb.connect().execute(f"SELECT ({sql})::VARCHAR", {k: x for k, x in params.items() if f"${k}" in sql}
                                    ).fetchall()[0][0]


def _write(view: str, field: str, glob: dict[str, Any]) -> Any:
    pr = next(p for p in V[view].props if p.field == field and p.write is not None)
    sql = pr.write.replace("{g}", f"$g_{pr.prop}")
    for name in glob:
        sql = sql.replace(f"{{g.{name}}}", f"$g_{name}")
    params = {f"g_{k}": v for k, v in glob.items() if f"$g_{k}" in sql}
    return duckdb.connect().execute(f"SELECT ({sql})::VARCHAR", params).fetchall()[0][0]


@pytest.mark.parametrize("rate", ["0.0000", "0.1500", "0.2500", "0.1200"])
def test_a_webshop_price_is_read_and_written_with_the_products_own_rate(rate: str) -> None:
    for price in ("0.01", "0.99", "86.96", "100.00", "719.20", "12345.67"):
        glob = {"price_ex_vat": price, "vat_rate": rate}
        minor = int(_write("customwebshop.product", "price", glob))
        assert minor == int((Decimal(price) * (1 + Decimal(rate)) * 100).quantize(Decimal(1), "ROUND_HALF_UP"))
        percent = _write("customwebshop.product", "tax_rate", glob)
        assert Decimal(percent) == Decimal(rate) * 100
        record = {"price": minor, "tax_rate": float(percent), "currency": "NOK"}
        assert _read("customwebshop.product", "price", "price_ex_vat", record) == price, (price, rate)
        assert _read("customwebshop.product", "tax_rate", "vat_rate", record) == rate


def test_a_price_in_another_currency_is_no_value_and_a_missing_rate_is_the_standard_one() -> None:
    assert _read("customwebshop.product", "price", "price_ex_vat", {"price": 12500, "currency": "SEK"}) is None
    assert _read("customwebshop.product", "price", "price_ex_vat", {"price": 12500, "currency": "NOK"}) == "100.00"
    assert _read("customcrm.product", "unit_price", "price_ex_vat", {"unit_price": "100.00", "currency": "SEK"}) is None
    assert _read("customcrm.product", "unit_price", "price_ex_vat", {"unit_price": "100.00", "currency": "NOK"}) == "100.00"


def test_a_price_without_a_currency_is_in_the_global_one_only_where_the_api_says_so() -> None:
    """Our own APIs document a product's `currency` with the default NOK (both OpenAPI documents), so a
    record without one is priced in the global currency. Squarespace documents every variant price as a
    Money, `{"currency", "value"}` (Products API, retrieve-specific-products, `pricing.basePrice`), and says
    nothing of a price without one: its currency is unknown, so it is no value (never the global price)."""
    assert _read("customwebshop.product", "price", "price_ex_vat", {"price": 12500, "tax_rate": 25.0}) == "100.00"
    assert _read("customcrm.product", "unit_price", "price_ex_vat", {"unit_price": "100.00"}) == "100.00"
    sq, field = "squarespace.sesamproducts", "variants.pricing.basePrice.value"
    for currency, want in (("NOK", "100.00"), ("nok ", "100.00"), ("SEK", None), (None, None), ("", None)):
        money = {"value": "125.00"} if currency is None else {"value": "125.00", "currency": currency}
        assert _read(sq, field, "price_ex_vat", {"variants": {"pricing": {"basePrice": money}}}) == want, currency
    # one conversion for every price incl. VAT that names its currency: no twin left in the library
    from talk_assets.sync import conversions
    assert not hasattr(conversions, "price_incl_vat_in")


def test_shopify_and_squarespace_get_the_price_at_the_products_own_rate() -> None:
    """Neither names a product's rate (Shopify only whether it is taxable): the price is written with the
    product's own rate and read at the one the record shows, so the read is `composed` (it takes part in
    the merge only when the price was edited there: merge.Composed)."""
    variant = "shopify.sesamproduct"
    assert _write(variant, "variants.price", {"price_ex_vat": "100.00", "vat_rate": "0.2500"}) == "125.00"
    assert _write(variant, "variants.price", {"price_ex_vat": "100.00", "vat_rate": None}) == "125.00"
    assert _write(variant, "variants.price", {"price_ex_vat": "100.00", "vat_rate": "0.0000"}) == "100.00"
    assert _write(variant, "variants.price", {"price_ex_vat": "100.00", "vat_rate": "0.1500"}) == "115.00"
    assert _write(variant, "variants.taxable", {"vat_rate": "0.0000"}) == "false"
    assert _write(variant, "variants.taxable", {"vat_rate": "0.1500"}) == "true"
    not_taxed = {"variants": {"price": "100.00", "taxable": False}}
    taxed = {"variants": {"price": "125.00", "taxable": True}}
    assert _read(variant, "variants.price", "price_ex_vat", not_taxed) == "100.00"
    assert _read(variant, "variants.price", "price_ex_vat", taxed) == "100.00"
    assert _read(variant, "variants.taxable", "vat_rate", not_taxed) == "0.0000"
    assert _read(variant, "variants.taxable", "vat_rate", taxed) is None  # taxed says nothing of the rate
    sq = "squarespace.sesamproducts"
    assert _write(sq, "variants.pricing.basePrice.value", {"price_ex_vat": "100.00", "vat_rate": "0.1500"}) == "115.00"
    assert _write(sq, "variants.pricing.basePrice.value", {"price_ex_vat": "100.00", "vat_rate": "0.0000"}) == "100.00"
    for view, field in ((variant, "variants.price"), (sq, "variants.pricing.basePrice.value")):
        assert [c.parts for c in composed_fields(V[view]) if c.field == field] == [("price_ex_vat",)], view
    # the webshop names its own rate: its read undoes the write, nothing is composed but the field
    assert [c.parts for c in composed_fields(V["customwebshop.product"]) if c.field == "price"] == [()]


def test_a_shopify_order_line_is_ex_tax_when_the_order_says_its_prices_exclude_tax() -> None:
    """`Order.taxesIncluded`: "When `true`, the subtotal and line item prices include tax amounts"."""
    items = [{"sku": "A", "quantity": 2, "price": "125.00"}]
    for included, price in ((True, "100.00"), (False, "125.00"), (None, "100.00")):
        got = _read("shopify.order", "line_items", "lines", {"taxes_included": included, "line_items": items})
        assert json.loads(got) == [{"sku": "A", "quantity": 2, "unit_price_ex_vat": float(price)}], included


# -- through sync cycles --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def h(rel: Harness, worlds: Worlds) -> Harness:
    worlds.converge(rel)  # synced until quiet (once per test process; a copy of it here after)
    return rel


def _shopify_variant(h: Harness, sku: str) -> dict[str, Any] | None:
    return next((v for p in h.client("shopify").iter_records("product") for v in p["variants"] if v.get("sku") == sku),
                None)


def _squarespace_price(h: Harness, sku: str) -> str | None:
    return next((v["pricing"]["basePrice"]["value"] for p in h.client("squarespace").iter_records("products")
                 for v in p["variants"] if v.get("sku") == sku), None)


def _crm_product(h: Harness, sku: str) -> dict[str, Any] | None:
    return next((p for p in h.client("customcrm").iter_records("products") if p.get("sku") == sku), None)


def test_a_15_percent_food_product_and_a_0_percent_product_flow_with_their_own_rates(h: Harness) -> None:
    t = uuid.uuid4().hex[:6].upper()
    food, free = f"MAT-{t}", f"FRI-{t}"
    # a 15 % food product in the webshop: 115.00 incl. VAT is 100.00 ex. VAT
    ws = h.client("customwebshop").create_record("products", {
        "sku": food, "title": f"Brunost {t}", "price": 11500, "tax_rate": 15.0, "currency": "NOK", "stock": 5})
    # a 0 % product in the CRM (a book): 50.00 ex. VAT is 50.00 to pay
    h.client("customcrm").create_record("products", {"sku": free, "name": f"Bok {t}", "unit_price": "50.00",
                                                     "vat_rate": "0.00", "currency": "NOK"})
    h.until_quiet()  # and quiet: a price written at 15 % where it is read at 25 % does not come back as another
    # the webshop's food product reaches the CRM (dataflow 001) ex. VAT, with its rate
    crm_food = _crm_product(h, food)
    assert crm_food is not None
    assert (Decimal(crm_food["unit_price"]), Decimal(crm_food["vat_rate"])) == (Decimal("100.00"), Decimal("0.15"))
    # ... and Shopify (000) and Squarespace (003, 002) at its price to pay, 115.00
    shop_food = _shopify_variant(h, food)
    assert shop_food is not None and (shop_food["price"], shop_food["taxable"]) == ("115.00", True), shop_food
    assert _squarespace_price(h, food) == "115.00"
    # the 0 % product reaches Shopify (000) untaxed at 50.00, and Squarespace (002) at 50.00
    shop_free = _shopify_variant(h, free)
    assert shop_free is not None and (shop_free["price"], shop_free["taxable"]) == ("50.00", False), shop_free
    assert _squarespace_price(h, free) == "50.00"
    food_gid = h.gid_of(V["customwebshop.product"], ws["id"])
    assert h.sql(f"SELECT price_ex_vat, vat_rate FROM {table('merged', 'product')} WHERE gid = ?", [food_gid]) == [
        ("100.00", "0.1500")]

    # edits come back with the rate: Shopify's price of the untaxed product, the CRM's price of the food
    product_id = next(p["id"] for p in h.client("shopify").iter_records("product")
                      if any(v["id"] == shop_free["id"] for v in p["variants"]))
    h.client("shopify").update_variants(str(product_id), [{"id": gid("ProductVariant", shop_free["id"]), "price": "60.00"}])
    h.client("customcrm").update_record("products", str(crm_food["id"]), {"unit_price": "200.00"})
    h.until_quiet()
    assert Decimal(_crm_product(h, free)["unit_price"]) == Decimal("60.00")
    assert _squarespace_price(h, free) == "60.00"
    got = h.client("customwebshop").get_record("products", str(ws["id"]))
    assert (got["price"], got["tax_rate"]) == (23000, 15.0), got  # 200.00 + 15 %
    assert _shopify_variant(h, food)["price"] == _squarespace_price(h, food) == "230.00"
    assert h.sql(f"SELECT price_ex_vat, vat_rate FROM {table('merged', 'product')} WHERE gid = ?", [food_gid]) == [
        ("200.00", "0.1500")]

    # an order of the food in the CRM (15 % on its line) reaches Shopify (000) with the order's own tax
    crm = h.client("customcrm")
    customer = next(c for c in crm.iter_records("customers") if c.get("email"))
    order = crm.create_record("orders", {"customer_id": customer["id"], "currency": "NOK", "reference": f"MAT-{t}",
                                         "lines": [{"sku": food, "quantity": 2, "unit_price": "200.00", "vat_rate": "0.15"}]})
    assert (order["total_ex_vat"], order["total_incl_vat"]) == ("400.00", "460.00")
    h.until_quiet()
    shop = next(o for o in h.client("shopify").iter_records("order")
                if o.get("source_identifier") == f"talk:customcrm-orders:{order['id']}")
    assert [(li["sku"], li["quantity"], li["price"]) for li in shop["line_items"]] == [(food, 2, "200.00")]
    assert (shop["taxes_included"], shop["total_price"], shop["total_tax"]) == (False, "460.00", "60.00"), shop
    shop_order = h.counterpart(V["customcrm.order"], order["id"], V["shopify.order"])
    assert json.loads(h.value(V["shopify.order"], shop_order, "lines")) == [
        {"sku": food, "quantity": 2, "unit_price_ex_vat": 200.0}], "the line reads back as written"


def test_a_webshop_product_priced_in_sek_is_never_the_global_nok_price_and_keeps_its_own(h: Harness) -> None:
    """A webshop product priced in SEK: its price is no value for the global NOK price (nothing converted),
    and the NOK price is not written over it (held, with the reason); its other properties still flow."""
    t = uuid.uuid4().hex[:6].upper()
    sku = f"SEK-{t}"
    ws = h.client("customwebshop").create_record("products", {
        "sku": sku, "title": f"Vare {t}", "price": 12500, "tax_rate": 25.0, "currency": "NOK", "stock": 3})
    h.until_quiet()
    crm = _crm_product(h, sku)
    assert crm is not None and Decimal(crm["unit_price"]) == Decimal("100.00")
    h.client("customwebshop").update_record("products", str(ws["id"]), {"currency": "SEK", "price": 150000})
    h.until_quiet()
    assert Decimal(_crm_product(h, sku)["unit_price"]) == Decimal("100.00"), "a SEK price became the NOK price"
    h.client("customcrm").update_record("products", str(crm["id"]), {"unit_price": "110.00", "stock_quantity": 9})
    h.until_quiet()
    got = h.client("customwebshop").get_record("products", str(ws["id"]))
    assert (got["currency"], got["price"], got["stock"]) == ("SEK", 150000, 9), got
    reasons = [r.pushed["customwebshop.product"].held_reason for r in h.reports[-3:] if "customwebshop.product" in r.pushed]
    assert any("SEK" in x and "NOK" in x for x in reasons), reasons


def _po_sales_account(h: Harness, rate: float) -> dict[str, Any]:
    """A PowerOffice sales account whose VAT code has `rate`, found through the API as a user would."""
    po = h.client("poweroffice")
    codes = {c["Id"]: c for c in po.iter_pages("VatCodes")}
    return next(a for a in po.iter_pages("GeneralLedgerAccounts")
                if a.get("VatCodeId") in codes and codes[a["VatCodeId"]]["Rate"] == rate)


def test_poweroffice_products_at_15_and_0_percent_reach_the_others_at_their_own_rate(h: Harness) -> None:
    """A PowerOffice GO product's VAT follows its sales account's VAT code (ProductDto names no rate): a
    product created there at 15 % (food) or 0 % reaches Shopify (dataflow 004) at its price to pay, and a
    product linked to the CRM and the webshop whose sales account is changed in PowerOffice takes the new
    rate there too: the CRM's `vat_rate`, the webshop's `tax_rate` and price incl. VAT, Shopify's price."""
    t = uuid.uuid4().hex[:6].upper()
    po, crm, ws = h.client("poweroffice"), h.client("customcrm"), h.client("customwebshop")
    food_acc, free_acc = _po_sales_account(h, 0.15), _po_sales_account(h, 0.0)
    food = po.create_record("products", {"Code": f"POMAT-{t}", "Name": f"Geitost {t}", "UnitPrice": 100.0,
                                         "StandardSalesAccountId": food_acc["Id"], "StockOnHand": 4.0})
    free = po.create_record("products", {"Code": f"POFRI-{t}", "Name": f"Avis {t}", "UnitPrice": 50.0,
                                         "StandardSalesAccountId": free_acc["Id"], "StockOnHand": 4.0})
    crm_skus = {p["sku"] for p in crm.iter_records("products")}
    ws_skus = {p["sku"] for p in ws.iter_records("products")}
    linked = [p for p in po.iter_records("products") if p["Code"] in crm_skus and p["Code"] in ws_skus
              and p["StandardSalesAccountVatRate"] == 0.25][:2]
    assert len(linked) == 2, "the small world has products in PowerOffice, the CRM and the webshop"
    for rec, acc in zip(linked, (food_acc, free_acc), strict=True):
        po.update_record("products", str(rec["Id"]), {"StandardSalesAccountId": acc["Id"]})
    h.until_quiet()

    # created in PowerOffice: in Shopify at the price to pay, the 0 % one untaxed
    shop_food, shop_free = _shopify_variant(h, food["Code"]), _shopify_variant(h, free["Code"])
    assert shop_food is not None and (shop_food["price"], shop_food["taxable"]) == ("115.00", True), shop_food
    assert shop_free is not None and (shop_free["price"], shop_free["taxable"]) == ("50.00", False), shop_free
    for rec, rate in ((food, "0.1500"), (free, "0.0000")):
        gid = h.gid_of(V["poweroffice.product"], rec["Id"])
        assert h.sql(f"SELECT vat_rate FROM {table('merged', 'product')} WHERE gid = ?", [gid]) == [(rate,)]

    # linked to the CRM and the webshop: the rate changed in PowerOffice reaches both, and Shopify's price
    for rec, rate in zip(linked, (Decimal("0.15"), Decimal(0)), strict=True):
        sku = rec["Code"]
        gid = h.gid_of(V["poweroffice.product"], rec["Id"])
        [(net, vat_rate)] = h.sql(f"SELECT price_ex_vat, vat_rate FROM {table('merged', 'product')} WHERE gid = ?", [gid])
        assert Decimal(vat_rate) == rate, (sku, vat_rate)
        net = Decimal(net)
        crm_rec = _crm_product(h, sku)
        assert (Decimal(crm_rec["unit_price"]), Decimal(crm_rec["vat_rate"])) == (net, rate), crm_rec
        ws_rec = next(p for p in ws.iter_records("products") if p["sku"] == sku)
        gross_ore = int((net * (1 + rate) * 100).quantize(Decimal(1), "ROUND_HALF_UP"))
        assert (Decimal(str(ws_rec["tax_rate"])), ws_rec["price"]) == (rate * 100, gross_ore), ws_rec
        shop = _shopify_variant(h, sku)
        if shop is not None:  # the CRM's products are in Shopify (000)
            assert (Decimal(shop["price"]), shop["taxable"]) == (Decimal(gross_ore) / 100, rate > 0), shop
