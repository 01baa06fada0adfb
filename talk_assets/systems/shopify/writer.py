"""Writing to Shopify: customer addresses, variants through their product, stock through inventory levels."""

from __future__ import annotations

from typing import Any

from talk_assets.core.http import ApiError
from talk_assets.sync.writer import Row, Writer, nest

STOCK = "variants.inventory_quantity"


def _title(row: Row) -> str:
    """The product title: the global name without the variant's own label."""
    name = str(row.glob.get("name") or row.payload.get("variants.sku") or "Product")
    variant = str(row.glob.get("variant_title") or "")
    if variant and name.endswith(" " + variant):
        name = name[: -len(variant) - 1]
    return name


class SystemWriter(Writer):
    _location: int | None = None

    def location_id(self) -> int:
        if self._location is None:
            self._location = int(self.client.locations()[0].id)
        return self._location

    # -- create --------------------------------------------------------------------------------
    def create(self, row: Row) -> dict[str, Any]:
        data = row.typed()
        if row.view.entity == "customer":
            body = nest({k: v for k, v in data.items() if v is not None})
            address = body.pop("default_address", None)
            if address:
                body["addresses"] = [address]
            return self.client.create_record("customer", body)
        if row.view.entity == "product":
            variant = {k.split(".", 1)[1]: v for k, v in data.items() if k.startswith("variants.") and k != STOCK}
            variant["option1"] = variant.pop("title", None) or "Default Title"
            body = {"title": data.get("title") or _title(row), "body_html": row.glob.get("description") or "",
                    "variants": [{k: v for k, v in variant.items() if v is not None}]}
            product = self.client.create_record("product", body)
            created = product["variants"][0]
            if data.get(STOCK) is not None:
                self.client.set_inventory(self.location_id(), int(created["inventory_item_id"]), int(data[STOCK]))
            return created
        body = nest({k: v for k, v in data.items() if v is not None})
        return self.client.create_record(row.view.entity, body)

    # -- update --------------------------------------------------------------------------------
    def update(self, row: Row, fields: list[str]) -> dict[str, Any]:
        data = row.typed(fields)
        if row.view.entity == "customer":
            return self._update_customer(row, data)
        if row.view.entity == "product":
            return self._update_variant(row, data)
        return self.client.update_record(row.view.entity, row.record_id, nest(data), expected_version=row.version)

    def _current(self, entity: str, record_id: str, version: str | None) -> dict[str, Any]:
        current = self.client.get_record(entity, record_id)
        if current is None:
            raise ApiError("shopify", "GET", entity, 404, f"{entity} {record_id} not found")
        if version is not None and current.get("updated_at") != version:
            raise ApiError("shopify", "PUT", entity, 409,
                           f"{entity} {record_id} changed since it was collected ({version} -> {current.get('updated_at')})")
        return current

    def _update_customer(self, row: Row, data: dict[str, Any]) -> dict[str, Any]:
        current = self._current("customer", row.record_id, row.version)
        body = nest(data)
        address = body.pop("default_address", None)
        if address:
            addresses = [dict(a) for a in current.get("addresses") or []]
            if addresses:
                addresses[0].update(address)
            else:
                addresses = [address]
            body["addresses"] = addresses
        return self.client.update_record("customer", row.record_id, body)

    def _update_variant(self, row: Row, data: dict[str, Any]) -> dict[str, Any]:
        product = self._current("product", row.parent_id, row.version)
        variants = [dict(v) for v in product.get("variants") or []]
        mine = next((v for v in variants if str(v["id"]) == str(row.record_id)), None)
        if mine is None:
            raise ApiError("shopify", "PUT", "product", 404, f"variant {row.record_id} not found")
        changes = {k.split(".", 1)[1]: v for k, v in data.items() if k.startswith("variants.") and k != STOCK}
        if "title" in changes:
            changes["option1"] = changes.pop("title")
        body: dict[str, Any] = {}
        if data.get("title"):  # the product's title (shared by its variants), changeable after create
            body["title"] = data["title"]
        if changes:
            mine.update(changes)
            keep = ("id", "sku", "price", "barcode", "option1", "option2", "option3", "compare_at_price")
            body["variants"] = [{k: v.get(k) for k in keep if k in v} for v in variants]
        if body:
            self.client.update_record("product", row.parent_id, body)
        if STOCK in data and data[STOCK] is not None:
            self.client.set_inventory(self.location_id(), int(mine["inventory_item_id"]), int(data[STOCK]))
        return mine
