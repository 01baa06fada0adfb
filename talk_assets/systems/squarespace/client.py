"""Typed client for the Squarespace Commerce API 1.0 (products, inventory, orders).

One `ApiClient` underneath: Bearer key plus the User-Agent Squarespace insists on, a Pacer at
300 requests/minute (0.2 s apart), retries that honour 429s (the real API sends no Retry-After, so
the default wait is the documented one-minute cooldown), and errors parsed from Squarespace's
`{type, subtype, message, details, contextId}` envelope.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from talk_assets import __version__
from talk_assets.core.http import ApiClient, ApiError, Pacer, RetryPolicy
from talk_assets.systems.squarespace.info import INFO as SQUARESPACE

from .models import InventoryAdjustment, InventoryItem, Order, OrderImport, Product, StorePage, Variant

FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
PROBE_WINDOWS = (timedelta(hours=1), timedelta(days=1), timedelta(days=31), timedelta(days=800),
                 timedelta(days=365 * 60))


def iso(dt: datetime) -> str:
    """ISO 8601 UTC with milliseconds, the form the API documents for modifiedAfter/Before."""
    dt = dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)
    return dt.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def derive_key(*parts: Any) -> str:
    """An Idempotency-Key from request content: the same logical request gets the same key."""
    raw = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:64]


def parse_error(body: Any, resp: requests.Response) -> tuple[str, str | None] | None:
    """Message and offending field from Squarespace's error envelope."""
    if not isinstance(body, dict):
        return str(body)[:300], None
    kind = "/".join(str(x) for x in (body.get("type"), body.get("subtype")) if x)
    msg = str(body.get("message") or body)[:300]
    details = body.get("details")
    fld = details.get("field") if isinstance(details, dict) else None
    return (f"{kind}: {msg}" if kind else msg), fld


def full_read_seconds(raw: str) -> float:
    """`TALK_SQUARESPACE_INVENTORY_FULL_READ_S`, checked: a bad value names the variable."""
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"TALK_SQUARESPACE_INVENTORY_FULL_READ_S must be a number of seconds > 0, got {raw!r}")
    return value


def _probe_change(entity: str, token: str | None) -> datetime | None:
    """The change time a products or orders probe token names (`entity:<modifiedOn>:<id>`), None for any
    other text (no token of this entity, an empty listing's, an older format)."""
    if not token or not token.startswith(f"{entity}:"):
        return None
    stamp, _, rid = token.removeprefix(f"{entity}:").rpartition(":")
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if rid and at.tzinfo else None


class Client(ApiClient):
    """Squarespace Commerce API client: typed methods plus the uniform sync interface."""

    system = "squarespace"
    entities = ("products", "inventory", "orders")

    def __init__(self, origin: str, api_key: str, *, min_interval: float = 0.2,
                 retry: RetryPolicy | None = None, timeout: tuple[float, float] = (5.0, 30.0),
                 inventory_full_read_s: float = 900.0) -> None:
        self.inventory_full_read_s = inventory_full_read_s
        self._probes: dict[str, tuple[float, str]] = {}  # entity -> (monotonic time, probe): see `probe`
        super().__init__(
            f"{origin.rstrip('/')}/1.0/commerce",
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"talk-assets/{__version__}"},
            timeout=timeout,
            retry=retry or RetryPolicy(default_retry_after=60.0),
            pacer=Pacer(min_interval=min_interval),
            secrets=[api_key],
            error_parser=parse_error,
        )

    @classmethod
    def from_env(cls, **kw: Any) -> Client:
        kw.setdefault("inventory_full_read_s", full_read_seconds(SQUARESPACE.value("inventory_full_read_s")))
        return cls(SQUARESPACE.url(), SQUARESPACE.value("api_key"), **kw)

    # -- pagination ----------------------------------------------------------------------------
    def paginate(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """All records of a cursor-paged list; the first request carries the filters, later ones only the cursor."""
        query: dict[str, Any] = {k: v for k, v in (params or {}).items() if v is not None}
        while True:
            body = self.get_json(path, params=query)
            yield from body.get(key) or []
            page = body.get("pagination") or {}
            if not page.get("hasNextPage") or not page.get("nextPageCursor"):
                return
            query = {"cursor": page["nextPageCursor"]}

    @staticmethod
    def window(modified_after: datetime | None, modified_before: datetime | None) -> dict[str, str]:
        """The API wants both ends of a date window or neither."""
        if modified_after is None and modified_before is None:
            return {}
        lo = modified_after or datetime(1970, 1, 1, tzinfo=UTC)
        return {"modifiedAfter": iso(lo), "modifiedBefore": iso(modified_before or FAR_FUTURE)}

    # -- store pages ---------------------------------------------------------------------------
    def store_pages(self) -> list[StorePage]:
        return [StorePage.model_validate(p) for p in self.paginate("store_pages", "storePages")]

    # -- products ------------------------------------------------------------------------------
    def iter_products(self, modified_after: datetime | None = None, modified_before: datetime | None = None,
                      type: str | None = None) -> Iterator[dict[str, Any]]:  # noqa: A002 - the API's name
        params: dict[str, Any] = {**self.window(modified_after, modified_before), "type": type}
        return self.paginate("products", "products", params)

    def list_products(self, **kw: Any) -> list[Product]:
        return [Product.model_validate(p) for p in self.iter_products(**kw)]

    def get_products(self, ids: list[str]) -> list[Product]:
        """Up to 50 products in one request."""
        body = self.get_json(f"products/{','.join(ids)}")
        return [Product.model_validate(p) for p in body["products"]]

    def get_product(self, product_id: str) -> Product | None:
        resp = self.request("GET", f"products/{product_id}", ok=(404,))
        return None if resp.status_code == 404 else Product.model_validate(resp.json()["products"][0])

    def create_product(self, product: Product | dict[str, Any]) -> Product:
        body = _dump(product)
        if not body.get("storePageId"):
            body["storePageId"] = self.store_pages()[0].id
        return Product.model_validate(self.request("POST", "products", json=body).json())

    def update_product(self, product_id: str, changes: dict[str, Any]) -> Product:
        return Product.model_validate(self.request("POST", f"products/{product_id}", json=changes,
                                                   idempotent=True).json())

    def create_variant(self, product_id: str, variant: Variant | dict[str, Any]) -> Variant:
        resp = self.request("POST", f"products/{product_id}/variants", json=_dump(variant))
        return Variant.model_validate(resp.json())

    def update_variant(self, product_id: str, variant_id: str, changes: dict[str, Any]) -> Variant:
        """sku, pricing, attributes, shippingMeasurements; stock goes through `adjust_inventory`."""
        resp = self.request("POST", f"products/{product_id}/variants/{variant_id}", json=changes, idempotent=True)
        return Variant.model_validate(resp.json())

    # -- inventory -----------------------------------------------------------------------------
    def iter_inventory(self) -> Iterator[dict[str, Any]]:
        return self.paginate("inventory", "inventory")

    def list_inventory(self) -> list[InventoryItem]:
        return [InventoryItem.model_validate(i) for i in self.iter_inventory()]

    def get_inventory(self, variant_ids: list[str]) -> list[InventoryItem]:
        out: list[InventoryItem] = []
        for i in range(0, len(variant_ids), 50):
            body = self.get_json(f"inventory/{','.join(variant_ids[i:i + 50])}")
            out += [InventoryItem.model_validate(x) for x in body["inventory"]]
        return out

    def adjust_inventory(self, adjustment: InventoryAdjustment | dict[str, Any],
                         idempotency_key: str | None = None) -> str:
        """Apply stock operations once; returns the Idempotency-Key used (derived from the body if not given).

        A derived key makes an identical adjustment a no-op for as long as Squarespace keeps the
        key (at least a day): pass your own key to repeat the same adjustment on purpose.
        """
        body = _dump(adjustment)
        key = idempotency_key or derive_key("inventory", body)
        self.request("POST", "inventory/adjustments", json=body, headers={"Idempotency-Key": key}, idempotent=True)
        return key

    # -- orders --------------------------------------------------------------------------------
    def iter_orders(self, modified_after: datetime | None = None, modified_before: datetime | None = None,
                    fulfillment_status: str | None = None) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {**self.window(modified_after, modified_before), "fulfillmentStatus": fulfillment_status}
        return self.paginate("orders", "result", params)

    def list_orders(self, **kw: Any) -> list[Order]:
        return [Order.model_validate(o) for o in self.iter_orders(**kw)]

    def get_order(self, order_id: str) -> Order | None:
        resp = self.request("GET", f"orders/{order_id}", ok=(404,))
        return None if resp.status_code == 404 else Order.model_validate(resp.json())

    def import_order(self, order: OrderImport | dict[str, Any], idempotency_key: str | None = None) -> Order:
        """Create an order from another channel; the same key (default: derived from the body) never makes two."""
        body = _dump(order)
        key = idempotency_key or derive_key("order", body)
        resp = self.request("POST", "orders", json=body, headers={"Idempotency-Key": key}, idempotent=True)
        return Order.model_validate(resp.json())

    def fulfill_order(self, order_id: str, shipments: list[dict[str, Any]] | None = None,
                      notify: bool = False) -> None:
        self.request("POST", f"orders/{order_id}/fulfillments", idempotent=True,
                     json={"shouldSendNotification": notify, "shipments": shipments or []})

    # -- the uniform interface -------------------------------------------------------------------
    def _check_entity(self, entity: str) -> None:
        if entity not in self.entities:
            raise ValueError(f"squarespace has no entity {entity!r}; known: {', '.join(self.entities)}")

    def iter_records(self, entity: str, since: datetime | None = None,
                     page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """All records (changed after `since` where the API can filter); page size is fixed at 50."""
        self._check_entity(entity)
        # 1 ms overlap: modifiedAfter is exclusive, and a record stamped exactly `since` may be unseen.
        after = since - timedelta(milliseconds=1) if since else None
        if entity == "products":
            return self.iter_products(modified_after=after, modified_before=FAR_FUTURE if after else None)
        if entity == "orders":
            return self.iter_orders(modified_after=after, modified_before=FAR_FUTURE if after else None)
        # the Inventory API documents no change filter (only `cursor`): always the whole listing
        return self.iter_inventory()

    def get_record(self, entity: str, record_id: str) -> dict[str, Any] | None:
        self._check_entity(entity)
        path = {"products": "products", "inventory": "inventory", "orders": "orders"}[entity]
        resp = self.request("GET", f"{path}/{record_id}", ok=(404,))
        if resp.status_code == 404:
            return None
        body = resp.json()
        if entity == "orders":
            return body
        items = body[entity]
        return items[0] if items else None

    def create_record(self, entity: str, data: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        self._check_entity(entity)
        if entity == "products":
            return self.create_product(data).model_dump(mode="json", exclude_unset=False)
        if entity == "orders":
            return self.import_order(data, idempotency_key).model_dump(mode="json")
        raise ValueError("inventory items are created with their product variant; use update_record to set stock")

    def update_record(self, entity: str, record_id: str, changes: dict[str, Any],
                      *, expected_version: str | None = None) -> dict[str, Any]:
        """Apply `changes`; `expected_version` is the record's modifiedOn (or quantity for inventory)."""
        self._check_entity(entity)
        current = self.get_record(entity, record_id)
        if current is None:
            raise ApiError(self.system, "POST", f"{entity}/{record_id}", 404, f"{entity} {record_id} not found")
        version = str(current.get("quantity") if entity == "inventory" else current.get("modifiedOn"))
        if expected_version is not None and expected_version != version:
            raise ApiError(self.system, "POST", f"{entity}/{record_id}", 409,
                           f"version conflict: expected {expected_version}, found {version}")
        if entity == "inventory":
            return self._update_stock(record_id, current, changes)
        if entity == "orders":
            return self._update_order(record_id, current, changes)
        return self._update_product(record_id, current, changes)

    def _update_stock(self, variant_id: str, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        adj: dict[str, Any] = {}
        if changes.get("isUnlimited"):
            if not current.get("isUnlimited"):
                adj["setUnlimitedOperations"] = [variant_id]
        elif "quantity" in changes or changes.get("isUnlimited") is False:
            qty = int(changes.get("quantity", current.get("quantity", 0)))
            if qty != current.get("quantity") or current.get("isUnlimited"):
                adj["setFiniteOperations"] = [{"variantId": variant_id, "quantity": qty}]
        if adj:
            # Setting an absolute level is idempotent by nature, so a fresh key per call is safe (retries
            # inside `request` reuse it); a content-derived key would turn 5 -> 3 -> 5 into a silent replay.
            self.adjust_inventory(adj, uuid.uuid4().hex)
        return self.get_record("inventory", variant_id) or current

    def _update_order(self, order_id: str, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        unsupported = [k for k in changes if k not in ("fulfillmentStatus", "shipments", "shouldSendNotification")]
        if unsupported or changes.get("fulfillmentStatus", "FULFILLED") != "FULFILLED":
            raise ValueError("Squarespace orders can only be fulfilled through the API "
                             f"(cannot change {', '.join(unsupported) or 'fulfillmentStatus'})")
        if current["fulfillmentStatus"] != "FULFILLED" or changes.get("shipments"):
            self.fulfill_order(order_id, changes.get("shipments"), bool(changes.get("shouldSendNotification")))
        return self.get_record("orders", order_id) or current

    def _update_product(self, product_id: str, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        """Product fields go to the product, variants (by id) to their variant, stock to inventory."""
        product_changes = {k: v for k, v in changes.items() if k != "variants"}
        if product_changes:
            self.update_product(product_id, product_changes)
        variants = {v["id"]: v for v in current.get("variants", [])}
        for v in changes.get("variants") or []:
            vid = v.get("id")
            if vid not in variants:
                self.create_variant(product_id, v)
                continue
            fields = {k: x for k, x in v.items() if k in ("sku", "pricing", "attributes", "shippingMeasurements")
                      and x != variants[vid].get(k)}
            if fields:
                self.update_variant(product_id, vid, fields)
            stock = v.get("stock")
            if stock and stock != variants[vid].get("stock"):
                self._update_stock(vid, {"quantity": variants[vid]["stock"]["quantity"],
                                         "isUnlimited": variants[vid]["stock"]["unlimited"]},
                                   {"quantity": stock.get("quantity", 0), "isUnlimited": bool(stock.get("unlimited"))})
        return self.get_record("products", product_id) or current

    def probe(self, entity: str, previous: str | None = None) -> str:
        """A token that changes when the entity changes (the collect is skipped while it stays the same).

        Products and orders: the newest (modifiedOn, id). The lists have no change count and document no
        sort order, only the window `modifiedAfter`/`modifiedBefore` (exclusive), so the newest is searched
        from `previous` (this probe's last token for the entity: only records changed at or after the change
        it named, one page when nothing did), else in the narrowest recent window that has any record (after
        an import that window holds all of it). Both give the same token. Deletions of products and orders
        are not seen (the API has no count).

        Inventory: `GET /1.0/commerce/inventory` takes only `cursor` (no change filter, no timestamp:
        https://developers.squarespace.com/commerce-apis/retrieve-all-inventory), nothing documents that
        a stock change bumps the product's `modifiedOn`, and the webhook topics are only `order.create`,
        `order.update` and `extension.uninstall` (https://developers.squarespace.com/webhooks/overview).
        Reading the whole listing to probe it would cost a cycle as much as the data. So the token is made
        of what suggests a stock change: the orders' probe (an order takes stock, a cancelled one may give
        it back), the products' probe (a variant added or edited), and the period of
        `inventory_full_read_s` (TALK_SQUARESPACE_INVENTORY_FULL_READ_S, 900 s) we are in, so the whole
        listing is read at least that often. Left: a stock edit made in Squarespace's own pages (or by
        another app) with no order or product change arrives within that period, not at once. The sync's
        own stock writes are read back by the next cycle's plan (a pending write re-reads its target).
        """
        self._check_entity(entity)
        if entity == "inventory":
            period = int(time.time() // self.inventory_full_read_s)
            hints = dict.fromkeys(("orders", "products"))
            if previous and previous.startswith("inventory:"):
                for part in previous.removeprefix("inventory:").split("|"):
                    hints.update({e: part for e in hints if part.startswith(f"{e}:")})
            return (f"inventory:{self._probe_cached('orders', hints['orders'])}|"
                    f"{self._probe_cached('products', hints['products'])}|{period}")
        return self._probe_cached(entity, previous)

    def _probe_cached(self, entity: str, previous: str | None = None) -> str:
        """One probe of products or orders serves the inventory token too, within a few seconds and as
        long as this client wrote nothing (`request` forgets them on every write)."""
        hit = self._probes.get(entity)
        if hit is not None and time.monotonic() - hit[0] < 5.0:
            return hit[1]
        seen = _probe_change(entity, previous)
        # from the last newest change (1 ms: the filter is exclusive); nothing there means the record that was
        # newest is gone (deleted), and the windows find the next one
        token = self._newest_since(entity, seen - timedelta(milliseconds=1)) if seen is not None else None
        if token is None:
            now = datetime.now(UTC)
            token = next((t for width in PROBE_WINDOWS if (t := self._newest_since(entity, now - width))),
                         f"{entity}:empty")
        self._probes[entity] = (time.monotonic(), token)
        return token

    def _newest_since(self, entity: str, after: datetime) -> str | None:
        """The probe token of the newest (modifiedOn, id) among the products or orders changed after `after`."""
        listing = self.iter_orders if entity == "orders" else self.iter_products
        newest = max(((r.get("modifiedOn") or "", r.get("id") or "")
                      for r in listing(modified_after=after, modified_before=FAR_FUTURE)), default=None)
        return f"{entity}:{newest[0]}:{newest[1]}" if newest else None

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        if method.upper() != "GET":
            self._probes.clear()
        return super().request(method, path, **kw)


def _dump(model: Any) -> dict[str, Any]:
    if hasattr(model, "model_dump"):
        return model.model_dump(mode="json", exclude_none=True)
    return dict(model)
