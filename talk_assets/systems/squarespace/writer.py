"""Writing to Squarespace: variants through their product, stock through inventory adjustments,
orders imported with an Idempotency-Key (so a retried import never creates a second order)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from talk_assets.sync.writer import Row, Writer, nest


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
        variant_ids = self._variants_by_sku([li.get("sku") for li in data.get("lineItems") or []])
        items = []
        for li in data.get("lineItems") or []:
            vid = variant_ids.get(str(li.get("sku") or "").upper())
            item = {"lineItemType": "PHYSICAL_PRODUCT" if vid else "CUSTOM", "quantity": int(li["quantity"]),
                    "unitPricePaid": li["unitPricePaid"]}
            item.update({"variantId": vid} if vid else {"title": li.get("sku") or "Item"})
            items.append(item)
        total = data.get("grandTotal.value") or "0.00"
        currency = data.get("grandTotal.currency") or "NOK"
        created = row.glob.get("order_date") or datetime.now(UTC).date().isoformat()
        return {
            # the origin's reference (`talk:...`, the global order property `origin`): a copy found again
            # without the state file; the gid only for a row mapped without one
            "channelName": "talk-assets", "externalOrderReference": data.get("externalOrderReference") or row.gid,
            "createdOn": f"{created}T00:00:00Z" if len(str(created)) == 10 else created,
            "grandTotal": {"currency": currency, "value": total}, "priceTaxInterpretation": "INCLUSIVE",
            "customerEmail": data.get("customerEmail"), "fulfillments": [], "lineItems": items,
            "inventoryBehavior": "SKIP",
        }

    _skus: dict[str, str] | None = None

    def _variants_by_sku(self, skus: list[Any]) -> dict[str, str]:
        """Variant ids by SKU, read once per push (the inventory list is the cheapest full listing)."""
        if self._skus is None and any(skus):
            self._skus = {str(i.get("sku") or "").upper(): str(i["variantId"])
                          for i in self.client.iter_records("inventory") if i.get("sku")}
        return {str(s).upper(): self._skus[str(s).upper()] for s in skus if s and str(s).upper() in (self._skus or {})}

    @staticmethod
    def _variant(data: dict[str, Any]) -> dict[str, Any]:
        """Variant fields of a flattened row; money always carries the store currency."""
        variant = nest({k.split(".", 1)[1]: v for k, v in data.items() if k.startswith("variants.")})
        base = variant.get("pricing", {}).get("basePrice")
        if base is not None:
            base.setdefault("currency", "NOK")
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
