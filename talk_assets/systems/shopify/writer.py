"""Writing to Shopify through GraphQL: customers with their default address, a product variant through
`productSet` (create) or `productUpdate` + `productVariantsBulkUpdate` (update, so the product title and
the variant fields follow their source after the first create), stock through `inventorySetQuantities`
with its compare quantity, orders through `orderCreate`.

A mutation's `userErrors` arrive as an `ApiError` (422, or 409 for a stale compare quantity) naming the
field and Shopify's message; the push engine turns them into dead letters or conflicts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from talk_assets.core.http import ApiError
from talk_assets.sync.conversions import PRICE_CURRENCY, STANDARD_VAT_RATE
from talk_assets.sync.writer import HeldBack, Row, Writer, money_amount, nest, net_of_lines
from talk_assets.systems.shopify.client import MUTATIONS
from talk_assets.systems.shopify.models import gid

STOCK = "variants.inventory_quantity"
PRICE = "variants.price"
PRODUCT_FIELDS = {"title": "title", "body_html": "descriptionHtml"}


def _title(row: Row) -> str:
    """The product title: the global name without the variant's own label."""
    name = str(row.glob.get("name") or row.payload.get("variants.sku") or "Product")
    variant = str(row.glob.get("variant_title") or "")
    if variant and name.endswith(" " + variant):
        name = name[: -len(variant) - 1]
    return name


def _currency_reason(shop: str) -> str:
    return (f"product prices are in {PRICE_CURRENCY}, but the Shopify shop sells in {shop} and no exchange rate "
            "is known: the price is not converted, the write waits.")


def _order_taxes(row: Row) -> dict[str, Any]:
    """An order's taxes from its own data: the line prices the view writes exclude tax, and the tax is
    the order's total less its net amount (`taxesIncluded: false` and one order-level tax line, which
    Shopify splits across the taxable lines: OrderCreateOrderInput.taxLines), so a 15 % or a 0 % order
    goes as its source has it. Only an order without a total is taxed at the standard rate."""
    net = money_amount(row.glob.get("net_amount")) or net_of_lines(row.glob.get("lines"))
    total = money_amount(row.glob.get("total_amount"))
    if net is None:
        return {"taxes_included": False}
    tax = total - net if total is not None else (net * Decimal(STANDARD_VAT_RATE)).quantize(Decimal("0.01"))
    if tax <= 0:
        return {"taxes_included": False}
    rate = (tax / net).quantize(Decimal("0.0001")) if net > 0 else Decimal(0)
    return {"taxes_included": False, "tax_lines": [{"title": "MVA", "rate": str(rate), "price": f"{tax:.2f}"}]}


class SystemWriter(Writer):
    # None of customerCreate, productSet and orderCreate takes an idempotency key in 2026-07 (only the
    # inventory mutations do, and the client derives theirs): creates are recognised by merge key.
    supports_idempotency_key = False

    # -- create --------------------------------------------------------------------------------
    def create(self, row: Row) -> dict[str, Any]:
        data = row.typed()
        if row.view.entity == "customer":
            body = nest({k: v for k, v in data.items() if v is not None})
            return self.client.create_record("customer", body)
        if row.view.entity == "product":
            if data.get(PRICE) is not None:
                self._check_currency()
            variant = {k.split(".", 1)[1]: v for k, v in data.items() if k.startswith("variants.")}
            variant["option1"] = variant.pop("title", None) or "Default Title"
            body = {"title": data.get("title") or _title(row), "variants": [{k: v for k, v in variant.items() if v is not None}]}
            if row.glob.get("description"):
                body["body_html"] = row.glob["description"]
            product = self.client.create_record("product", body)
            # the new variant, its product and how many mutations made it (the webhook inbox's own writes)
            return {**product["variants"][0], "product_id": product["id"], MUTATIONS: product.get(MUTATIONS, 1)}
        body = nest({k: v for k, v in data.items() if v is not None})
        if row.view.entity == "order":
            body.update(_order_taxes(row))
        return self.client.create_record(row.view.entity, body)

    # -- update --------------------------------------------------------------------------------
    def update(self, row: Row, fields: list[str]) -> dict[str, Any]:
        data = row.typed(fields)
        if row.view.entity == "customer":
            self._current("customer", row.record_id, row.version)
            return self.client.update_record("customer", row.record_id, nest(data))
        if row.view.entity == "product":
            shop = self.client.shop_currency().upper() if PRICE in data else PRICE_CURRENCY
            if shop != PRICE_CURRENCY:
                self.write_then_hold(list(data), [PRICE], _currency_reason(shop),
                                     lambda rest: self._update_variant(row, {k: data[k] for k in rest}))
            return self._update_variant(row, data)
        return self.client.update_record(row.view.entity, row.record_id, nest(data), expected_version=row.version)

    def _check_currency(self) -> None:
        """Product prices are global in `PRICE_CURRENCY`; a shop selling in another currency gets none
        (`ProductVariant.price` is in the shop's default currency, and no exchange rate is known)."""
        shop = self.client.shop_currency().upper()
        if shop != PRICE_CURRENCY:
            raise HeldBack(_currency_reason(shop))

    def _current(self, entity: str, record_id: str, version: str | None) -> dict[str, Any]:
        """The record now; a 409 when it changed since the collect that the row was mapped from."""
        current = self.client.get_record(entity, record_id)
        if current is None:
            raise ApiError("shopify", "GET", entity, 404, f"{entity} {record_id} not found")
        if version is not None and current.get("updated_at") != version:
            raise ApiError("shopify", "POST", entity, 409,
                           f"{entity} {record_id} changed since it was collected ({version} -> {current.get('updated_at')})")
        return current

    def _update_variant(self, row: Row, data: dict[str, Any]) -> dict[str, Any]:
        product = self._current("product", row.parent_id, row.version)
        mine = next((v for v in product.get("variants") or [] if str(v["id"]) == str(row.record_id)), None)
        if mine is None:
            raise ApiError("shopify", "POST", "product", 404, f"variant {row.record_id} not found")
        # product-level fields: the title follows the global name (without the variant's label)
        # product-level fields; the title is the global name without the variant's label (the write
        # conversion `without_label` made it)
        top = {gql: data[rest] for rest, gql in PRODUCT_FIELDS.items() if rest in data and data[rest] is not None}
        made = 0
        if top:
            self.client.update_product_fields(row.parent_id, top)
            made += 1
        changes = {k.split(".", 1)[1]: v for k, v in data.items() if k.startswith("variants.") and k != STOCK}
        variant: dict[str, Any] = {}
        for rest, gql in (("price", "price"), ("barcode", "barcode"), ("compare_at_price", "compareAtPrice"),
                          ("taxable", "taxable")):
            if rest in changes:
                variant[gql] = changes[rest] if changes[rest] is None or rest == "taxable" else str(changes[rest])
        if "sku" in changes:
            variant["inventoryItem"] = {"sku": changes["sku"]}
        if changes.get("title"):
            option = next((o["name"] for o in product.get("options") or [] if o.get("position") == 1), "Title")
            variant["optionValues"] = [{"optionName": option, "name": changes["title"]}]
        if variant:
            self.client.update_variants(row.parent_id, [{"id": gid("ProductVariant", mine["id"]), **variant}])
            made += 1
        if STOCK in data and data[STOCK] is not None:
            # compare quantity: the level read just before the write; a change in between is a 409
            self.client.set_inventory(self.client.location_gid(), mine["inventory_item_id"], int(data[STOCK]))
            made += 1
        # the variant as read before the write (its change time is the old one), its product, and how many
        # mutations changed the product (the webhook inbox's record of our own writes)
        return {**mine, "product_id": mine.get("product_id") or row.parent_id, MUTATIONS: made}
