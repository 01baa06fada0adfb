"""PowerOffice GO -> Shopify against the known Sesam mappings (`shared/SYSTEMS.md`, issue 12): each known
pair is in the generated dataflow document, and the two that are not aligned say why (NetAmount is not
Shopify's `total_price`; UnitPrice is converted at the product's own VAT rate, not a fixed 1.25)."""

from __future__ import annotations

import re
from pathlib import Path

from talk_assets.sync.declaration import VIEWS_BY_KEY as V
from talk_assets.sync.docs import render_seed

README = Path(__file__).resolve().parents[3] / "README.md"
# SYSTEMS.md, "Known Sesam mappings to Shopify" (PowerOffice GO API v2)
KNOWN = {
    "Product to Shopify Sesamproduct": [("Name", "title"), ("Description", "variants.title"),
                                        ("UnitPrice", "variants.price"),
                                        ("StockOnHand", "variants.inventory_quantity")],
    "Salesorders to Shopify Order": [("CurrencyCode", "currency"), ("CustomerId", "customer.id"),
                                     ("PurchaseOrderReference", "po_number")],
}


def _pairs(section: str) -> set[tuple[str, str]]:
    text = render_seed("004").split(f"PowerOffice GO {section}")[1].split("\nPowerOffice GO ")[0]
    table = text.split(".. list-table::")[1]
    return set(re.findall(r"\* - (\S+)\n\s+- (\S+)\n", table))


def test_the_known_product_and_order_mappings_are_in_the_dataflow_document() -> None:
    for section, known in KNOWN.items():
        got = _pairs(section)
        assert set(known) <= got, (section, set(known) - got)


def test_net_amount_is_not_total_price_and_the_docs_say_why() -> None:
    assert ("NetAmount", "total_price") not in _pairs("Salesorders to Shopify Order")
    order = V["poweroffice.salesorders"]
    assert "NetAmount is ex. VAT" in order.description and "total_price" in order.description
    readme = README.read_text(encoding="utf-8")
    assert "`NetAmount` is not mapped to Shopify's `total_price`" in readme
    # Shopify computes total_price from the lines: read, never written
    assert all(p.write is None for p in V["shopify.order"].props if p.field == "total_price")


def test_unit_price_is_converted_at_the_products_own_rate_not_a_fixed_1_25() -> None:
    price = next(p for p in V["shopify.sesamproduct"].props if p.field == "variants.price")
    assert price.write is not None and "{g.vat_rate}" in price.write and "1.25" not in price.write
    po_price = next(p for p in V["poweroffice.product"].props if p.field == "UnitPrice")
    assert po_price.prop == "price_ex_vat" and "1.25" not in (po_price.read or "")
