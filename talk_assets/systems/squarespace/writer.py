"""Writing to Squarespace: variants through their product, stock through inventory adjustments,
orders imported with an Idempotency-Key (so a retried import never creates a second order)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any

from talk_assets.sync.conversions import PRICE_CURRENCY
from talk_assets.sync.writer import HeldBack, Row, Writer, money_amount, nest, net_of_lines


def _name(row: Row) -> str:
    name = str(row.glob.get("name") or row.payload.get("variants.sku") or "Product")
    variant = str(row.glob.get("variant_title") or "")
    return name[: -len(variant) - 1] if variant and name.endswith(" " + variant) else name


class SystemWriter(Writer):
    supports_idempotency_key = True  # orders; products are matched by SKU on the next collect

    def create(self, row: Row) -> dict[str, Any]:
        data = row.typed()
        if row.view.entity == "products":
            variant = self._variant(data)
            label = (variant.pop("attributes", None) or {}).get("Variant") or row.glob.get("variant_title")
            stock = row.glob.get("stock")
            body = {
                "type": "PHYSICAL", "name": data.get("name") or _name(row), "description": row.glob.get("description") or "",
                "isVisible": True, "variantAttributes": ["Variant"] if label else [],
                "variants": [{**variant, **({"attributes": {"Variant": label}} if label else {}),
                              "stock": {"quantity": int(stock or 0), "unlimited": False}}],
            }
            product = self.client.create_record("products", body)
            return product["variants"][0]
        if row.view.entity == "orders":
            return self.client.create_record("orders", self._order(row, data), idempotency_key=row.idem_key)
        return super().create(row)

    def _order(self, row: Row, data: dict[str, Any]) -> dict[str, Any]:
        """The create-order body with every field the documentation marks Required
        (https://developers.squarespace.com/commerce-apis/create-order): lines of existing product
        variants only, and the five totals. A line whose SKU Squarespace does not have holds the
        order back (`HeldBack`) until the product exists: products are pushed before orders in every
        cycle, so a product of the CRM or the webshop is there by then (the Sesamproducts flow)."""
        lines = data.get("lineItems") or []
        variant_ids = self._variants_by_sku([li.get("sku") for li in lines])
        missing = sorted({str(li.get("sku") or "(no SKU)") for li in lines
                          if str(li.get("sku") or "").upper() not in variant_ids})
        if missing:
            raise HeldBack(
                f"Squarespace has no product with SKU {', '.join(missing[:5])}"
                f"{f' (+{len(missing) - 5} more)' if len(missing) > 5 else ''}: an imported order may only name "
                "existing Squarespace products (create-order docs), so the order waits until the product reaches "
                "Squarespace (Sesamproducts flow from the Custom CRM or the Custom Webshop).")
        currency = str(data.get("grandTotal.currency") or "").upper() or None
        store = self._store_currency()
        if currency and store and currency != store:
            raise HeldBack(f"order in {currency}, but the Squarespace store sells in {store} and no exchange rate "
                           "is known: not converted, the order waits.")
        currency = currency or store
        if currency is None:
            raise HeldBack("the order has no currency and the Squarespace store has no product to read its "
                           "currency from: the order waits.")
        items, subtotal = [], Decimal(0)
        for li in lines:
            qty = int(li["quantity"])
            price = money_amount((li.get("unitPricePaid") or {}).get("value")) or Decimal(0)  # ex. VAT (the view)
            subtotal += price * qty
            items.append({"lineItemType": "PHYSICAL_PRODUCT", "variantId": variant_ids[str(li["sku"]).upper()],
                          "quantity": qty, "unitPricePaid": _money(currency, price)})
        # Prices go EXCLUSIVE of tax and the tax is the order's own (its total less its net amount), so no
        # rate is assumed: a 15 % or a 0 % line is sent as its source has it. What the total holds beyond
        # lines and tax is shipping (and fees); below them, a discount.
        grand = money_amount(row.glob.get("total_amount")) or money_amount(data.get("grandTotal.value")) or subtotal
        net = money_amount(row.glob.get("net_amount")) or net_of_lines(row.glob.get("lines")) or subtotal
        tax = max(grand - net, Decimal(0))
        rest = grand - subtotal - tax
        created = row.glob.get("order_date") or datetime.now(UTC).date().isoformat()
        return {
            # the origin's reference (`talk:...`, the global order property `origin`): a copy found again
            # without the state file; the gid only for a row mapped without one
            "channelName": "talk-assets", "externalOrderReference": data.get("externalOrderReference") or row.gid,
            "createdOn": f"{created}T00:00:00Z" if len(str(created)) == 10 else created,
            "customerEmail": data.get("customerEmail"), "lineItems": items,
            "priceTaxInterpretation": "EXCLUSIVE", "fulfillmentStatus": "PENDING", "inventoryBehavior": "SKIP",
            "subtotal": _money(currency, subtotal),
            "shippingTotal": _money(currency, max(rest, Decimal(0))),
            "discountTotal": _money(currency, max(-rest, Decimal(0))),
            "taxTotal": _money(currency, tax),
            "grandTotal": _money(currency, grand),
        }

    _skus: dict[str, str] | None = None
    _currency: str | None = None

    def _variants_by_sku(self, skus: list[Any]) -> dict[str, str]:
        """Variant ids by SKU, read once per push (the inventory list is the cheapest full listing)."""
        if self._skus is None and any(skus):
            self._skus = {str(i.get("sku") or "").upper(): str(i["variantId"])
                          for i in self.client.iter_records("inventory") if i.get("sku")}
        return {str(s).upper(): self._skus[str(s).upper()] for s in skus if s and str(s).upper() in (self._skus or {})}

    def _store_currency(self) -> str | None:
        """The store's currency, read from its products' prices (the Commerce API 1.0 documents no store
        settings endpoint; every money value carries the store currency). None for a store without products."""
        if self._currency is None:
            prices = ((v.get("pricing") or {}).get("basePrice") or {} for p in
                      islice(self.client.iter_records("products"), 50) for v in p.get("variants") or [])
            self._currency = next((str(m["currency"]).upper() for m in prices if m.get("currency")), None)
        return self._currency

    def _variant(self, data: dict[str, Any]) -> dict[str, Any]:
        """Variant fields of a flattened row; money carries the store currency, which must be the global
        prices' (`PRICE_CURRENCY`): no rate is known to convert, so a store in another currency holds it."""
        variant = nest({k.split(".", 1)[1]: v for k, v in data.items() if k.startswith("variants.")})
        base = variant.get("pricing", {}).get("basePrice")
        if base is not None:
            store = self._store_currency() or PRICE_CURRENCY
            if store != PRICE_CURRENCY:
                raise HeldBack(f"product prices are in {PRICE_CURRENCY}, but the Squarespace store sells in {store} "
                               "and no exchange rate is known: the price is not converted, the write waits.")
            base["currency"] = store
        return variant

    def update(self, row: Row, fields: list[str]) -> dict[str, Any]:
        data = row.typed(fields)
        if row.view.entity == "products":
            variant = self._variant(data)
            variant["id"] = row.record_id
            changes: dict[str, Any] = {"variants": [variant]}
            if data.get("name"):  # the product's name (shared by its variants), changeable after create
                changes["name"] = data["name"]
            return self.client.update_record("products", row.parent_id, changes, expected_version=row.version)
        return super().update(row, fields)

    def new_record_id(self, row: Row, created: dict[str, Any]) -> str:
        return str(created.get("id") or created.get("variantId"))


def _money(currency: str, value: Decimal) -> dict[str, str]:
    """Squarespace money: the currency and a string amount with two decimals."""
    return {"currency": currency, "value": f"{value.quantize(Decimal('0.01')):.2f}"}


