"""Shopify's read-only and create-only fields checked against Shopify's own schema (issue 12: "check the
other systems' read-only fields the same way"). Shopify has no `readOnly` flags; what a mutation can
change is its input type in the GraphQL Admin schema (2026-07 introspection, `graphql_schema.py`). Each
field a Shopify view writes after create must be a field of the update mutation's input type, and each
field it writes on create only (or never) must not be: the views' declarations agree with the schema."""

from __future__ import annotations

import pytest

from talk_assets.sync.declaration import VIEWS_BY_KEY as V
from talk_assets.systems.shopify.graphql_schema import admin_schema

# view field -> (the update mutation's input type, the field there, the create input type, the field there),
# as the Shopify writer sends them (systems/shopify/writer.py, graphql_mutations.py); None: no such input
FIELDS: dict[str, dict[str, tuple[str, str, str, str]]] = {
    "shopify.customer": {
        "email": ("CustomerInput", "email", "CustomerInput", "email"),
        "first_name": ("CustomerInput", "firstName", "CustomerInput", "firstName"),
        "last_name": ("CustomerInput", "lastName", "CustomerInput", "lastName"),
        **{f"default_address.{f}": ("MailingAddressInput", g, "MailingAddressInput", g) for f, g in (
            ("company", "company"), ("phone", "phone"), ("address1", "address1"), ("address2", "address2"),
            ("zip", "zip"), ("city", "city"), ("country_code", "countryCode"))},
    },
    "shopify.sesamproduct": {
        "title": ("ProductUpdateInput", "title", "ProductSetInput", "title"),
        "body_html": ("ProductUpdateInput", "descriptionHtml", "ProductSetInput", "descriptionHtml"),
        "variants.sku": ("InventoryItemInput", "sku", "InventoryItemInput", "sku"),
        "variants.title": ("ProductVariantsBulkInput", "optionValues", "ProductVariantSetInput", "optionValues"),
        "variants.price": ("ProductVariantsBulkInput", "price", "ProductVariantSetInput", "price"),
        "variants.taxable": ("ProductVariantsBulkInput", "taxable", "ProductVariantSetInput", "taxable"),
        "variants.barcode": ("ProductVariantsBulkInput", "barcode", "ProductVariantSetInput", "barcode"),
        "variants.inventory_quantity": ("InventorySetQuantitiesInput", "quantities", "InventorySetQuantitiesInput",
                                        "quantities"),
    },
    "shopify.order": {
        "customer.id": ("OrderInput", "customerId", "OrderCreateOrderInput", "customerId"),
        "user_id": ("OrderInput", "userId", "OrderCreateOrderInput", "userId"),
        "email": ("OrderInput", "email", "OrderCreateOrderInput", "email"),
        "currency": ("OrderInput", "currency", "OrderCreateOrderInput", "currency"),
        "total_price": ("OrderInput", "totalPrice", "OrderCreateOrderInput", "totalPrice"),
        "po_number": ("OrderInput", "poNumber", "OrderCreateOrderInput", "poNumber"),
        "processed_at": ("OrderInput", "processedAt", "OrderCreateOrderInput", "processedAt"),
        "line_items": ("OrderInput", "lineItems", "OrderCreateOrderInput", "lineItems"),
        "source_identifier": ("OrderInput", "sourceIdentifier", "OrderCreateOrderInput", "sourceIdentifier"),
    },
}
# written on create only by choice though the API would take an update, with the reason in the README
# ("Known limitations": no conversion reads back exactly what it writes)
BY_CHOICE = {("shopify.sesamproduct", "body_html")}


def _has(type_name: str, field: str) -> bool:
    t = admin_schema().get_type(type_name)
    assert t is not None, type_name
    return field in t.fields  # type: ignore[union-attr]


@pytest.mark.parametrize("vkey", sorted(FIELDS))
def test_what_a_shopify_view_writes_after_create_is_what_shopifys_update_inputs_take(vkey: str) -> None:
    view = V[vkey]
    declared = {p.field for p in view.props}
    assert declared <= set(FIELDS[vkey]), f"{vkey}: map {declared - set(FIELDS[vkey])} to Shopify's inputs"
    for field in declared:  # a field may feed several properties (a company: its name, and not a person)
        writers = [p for p in view.props if p.field == field and p.write is not None]
        update_type, update_field, create_type, create_field = FIELDS[vkey][field]
        updatable = _has(update_type, update_field)
        if any(p.on_update for p in writers):
            assert updatable, f"{vkey}.{field} is written after create, but {update_type} has no {update_field}"
        elif (vkey, field) not in BY_CHOICE:
            assert not updatable, f"{vkey}.{field} is not written after create, yet {update_type}.{update_field} exists"
        if writers:
            assert _has(create_type, create_field), f"{vkey}.{field}: {create_type} has no {create_field}"
