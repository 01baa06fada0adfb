"""Typed client of the Shopify Admin REST API, plus the uniform interface the sync engines call.

One `ApiClient` underneath (pooling, retries honouring Shopify's fractional `Retry-After`, pacing from
`X-Shopify-Shop-Api-Call-Limit`). Lists follow the `Link` header, because with Shopify's cursor
pagination the next page can only be asked for by its `page_info` (filters travel inside it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

import requests
from pydantic import BaseModel

from talk_assets.core.http import ApiClient, ApiError, Pacer, RetryPolicy
from talk_assets.systems.shopify.info import INFO as SHOPIFY
from talk_assets.systems.shopify.models import Customer, InventoryLevel, Location, Order, Product, StaffUser

M = TypeVar("M", bound=BaseModel)

CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
MAX_PAGE = 250
# entity -> (collection path, single key, plural key, model)
RESOURCES: dict[str, tuple[str, str, str, type[BaseModel]]] = {
    "customer": ("customers", "customer", "customers", Customer),
    "product": ("products", "product", "products", Product),
    "order": ("orders", "order", "orders", Order),
    # staff: read-only; what the sync needs of them is their id and e-mail (the order's `user_id` is a
    # staff id, and the e-mail is what another system's users share with them)
    "staff": ("users", "user", "users", StaffUser),
}
# Why the staff list may be unreadable: the REST User resource (and GraphQL `StaffMember`) needs the
# `read_users` scope, granted only to custom apps on Shopify Plus or Advanced stores
# (https://shopify.dev/docs/api/admin-graphql/2026-07/objects/StaffMember,
# https://shopify.dev/docs/api/admin-rest/2026-07/resources/user). Without it the sync sees no staff, so
# orders it creates carry no staff user (never another system's user id).
STAFF_UNREADABLE = (403, 404)  # 403: the scope is missing; 404: the resource is not offered to this shop


def parse_error(body: Any, resp: requests.Response) -> tuple[str, str | None] | None:
    """Shopify's `{"errors": "text"}` or `{"errors": {"field": ["message", ...]}}` -> (message, field)."""
    errors = body.get("errors", body.get("error")) if isinstance(body, dict) else body
    if isinstance(errors, str):
        return errors, None
    if isinstance(errors, dict) and errors:
        parts = []
        for fld, msgs in errors.items():
            msgs = msgs if isinstance(msgs, list) else [msgs]
            parts.extend(str(m) if str(m).startswith(fld) else f"{fld} {m}" for m in msgs)
        return "; ".join(parts), next(iter(errors))
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors), None
    return str(body)[:300], None


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("since must be timezone-aware (Shopify would read a naive time in the shop's zone)")
    return value.isoformat(timespec="seconds")


class Client(ApiClient):
    """Shopify Admin REST client for one shop."""

    system = "shopify"
    entities = ("customer", "product", "order", "inventory_level", "staff")

    def __init__(self, base_url: str, access_token: str, api_version: str = "2026-07", *,
                 retry: RetryPolicy | None = None, pacer: Pacer | None = None,
                 timeout: tuple[float, float] = (5.0, 30.0)) -> None:
        super().__init__(
            f"{base_url.rstrip('/')}/admin/api/{api_version}",
            headers={"X-Shopify-Access-Token": access_token},
            timeout=timeout,
            retry=retry,
            pacer=pacer or Pacer(leak_per_s=2.0),
            secrets=[access_token],
            error_parser=parse_error,
            call_limit_header=CALL_LIMIT_HEADER,
        )
        self.api_version = api_version

    @classmethod
    def from_env(cls, **kw: Any) -> Client:
        s = SHOPIFY
        return cls(s.url(), s.value("access_token"), s.value("api_version"), **kw)

    # -- low level ------------------------------------------------------------------------------
    def paginate(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every record of a list endpoint, following `Link: <...>; rel="next"` page by page."""
        url: str | None = path
        while url:
            resp = self.request("GET", url, params=params)
            yield from resp.json().get(key, [])
            url = resp.links.get("next", {}).get("url")
            params = None  # the next link carries page_info (+limit, fields) and nothing else is allowed

    def count(self, entity: str, **filters: Any) -> int:
        path = RESOURCES[entity][0]
        if entity == "order":
            filters.setdefault("status", "any")
        return int(self.get_json(f"{path}/count.json", params=filters or None)["count"])

    def _get(self, entity: str, record_id: int | str) -> dict[str, Any] | None:
        path, single, _, _ = RESOURCES[entity]
        resp = self.request("GET", f"{path}/{int(record_id)}.json", ok=(404,))
        return None if resp.status_code == 404 else resp.json()[single]

    def _create(self, entity: str, data: dict[str, Any]) -> dict[str, Any]:
        path, single, _, _ = RESOURCES[entity]
        return self.request("POST", f"{path}.json", json={single: data}).json()[single]

    def _update(self, entity: str, record_id: int | str, changes: dict[str, Any]) -> dict[str, Any]:
        path, single, _, _ = RESOURCES[entity]
        body = {single: {**changes, "id": int(record_id)}}
        return self.request("PUT", f"{path}/{int(record_id)}.json", json=body).json()[single]

    def _list(self, entity: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        path, _, plural, _ = RESOURCES[entity]
        params = {k: v for k, v in params.items() if v is not None}
        params.setdefault("limit", MAX_PAGE)
        return self.paginate(f"{path}.json", plural, params)

    @staticmethod
    def _dump(data: dict[str, Any] | BaseModel) -> dict[str, Any]:
        return data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else dict(data)

    # -- typed: customers -----------------------------------------------------------------------
    def list_customers(self, **params: Any) -> Iterator[Customer]:
        return (Customer.model_validate(r) for r in self._list("customer", params))

    def get_customer(self, customer_id: int) -> Customer | None:
        rec = self._get("customer", customer_id)
        return None if rec is None else Customer.model_validate(rec)

    def create_customer(self, data: dict[str, Any] | Customer) -> Customer:
        return Customer.model_validate(self._create("customer", self._dump(data)))

    def update_customer(self, customer_id: int, changes: dict[str, Any] | Customer) -> Customer:
        return Customer.model_validate(self._update("customer", customer_id, self._dump(changes)))

    def search_customers(self, query: str, limit: int = 50) -> list[Customer]:
        body = self.get_json("customers/search.json", params={"query": query, "limit": limit})
        return [Customer.model_validate(r) for r in body["customers"]]

    # -- typed: products ------------------------------------------------------------------------
    def list_products(self, **params: Any) -> Iterator[Product]:
        return (Product.model_validate(r) for r in self._list("product", params))

    def get_product(self, product_id: int) -> Product | None:
        rec = self._get("product", product_id)
        return None if rec is None else Product.model_validate(rec)

    def create_product(self, data: dict[str, Any] | Product) -> Product:
        return Product.model_validate(self._create("product", self._dump(data)))

    def update_product(self, product_id: int, changes: dict[str, Any] | Product) -> Product:
        """A `variants` list replaces the product's variants: with id updated, without created,
        missing ones deleted (Shopify's semantics), so send every variant you want to keep."""
        return Product.model_validate(self._update("product", product_id, self._dump(changes)))

    # -- typed: orders --------------------------------------------------------------------------
    def list_orders(self, status: str = "any", **params: Any) -> Iterator[Order]:
        return (Order.model_validate(r) for r in self._list("order", {"status": status, **params}))

    def get_order(self, order_id: int) -> Order | None:
        rec = self._get("order", order_id)
        return None if rec is None else Order.model_validate(rec)

    def create_order(self, data: dict[str, Any] | Order) -> Order:
        return Order.model_validate(self._create("order", self._dump(data)))

    def update_order(self, order_id: int, changes: dict[str, Any] | Order) -> Order:
        return Order.model_validate(self._update("order", order_id, self._dump(changes)))

    # -- typed: locations and inventory ---------------------------------------------------------
    def locations(self) -> list[Location]:
        return [Location.model_validate(r) for r in self.get_json("locations.json")["locations"]]

    def iter_inventory_levels(self, inventory_item_ids: list[int] | None = None,
                              location_ids: list[int] | None = None,
                              updated_at_min: datetime | None = None,
                              page_size: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"limit": page_size}
        if inventory_item_ids:
            params["inventory_item_ids"] = ",".join(str(i) for i in inventory_item_ids)
        if location_ids:
            params["location_ids"] = ",".join(str(i) for i in location_ids)
        if updated_at_min is not None:
            params["updated_at_min"] = _iso(updated_at_min)
        return self.paginate("inventory_levels.json", "inventory_levels", params)

    def inventory_levels(self, inventory_item_ids: list[int] | None = None,
                         location_ids: list[int] | None = None) -> Iterator[InventoryLevel]:
        return (InventoryLevel.model_validate(r) for r in self.iter_inventory_levels(inventory_item_ids, location_ids))

    def set_inventory(self, location_id: int, inventory_item_id: int, available: int) -> InventoryLevel:
        body = {"location_id": location_id, "inventory_item_id": inventory_item_id, "available": available}
        # Setting an absolute level is idempotent, so it may be retried after a lost response.
        resp = self.request("POST", "inventory_levels/set.json", json=body, idempotent=True)
        return InventoryLevel.model_validate(resp.json()["inventory_level"])

    # -- staff ----------------------------------------------------------------------------------
    staff_readable: bool | None = None  # None: not tried yet; False: the token may not read staff

    def iter_staff(self, page_size: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        """Every staff member, or none when the token lacks `read_users` (see `STAFF_UNREADABLE`): the
        documents name no change filter for staff, so the (short) list is read whole."""
        try:
            for rec in self._list("staff", {"limit": page_size}):
                self.staff_readable = True
                yield rec
        except ApiError as err:
            if err.status not in STAFF_UNREADABLE or self.staff_readable:
                raise
            self.staff_readable = False
            return
        if self.staff_readable is None:
            self.staff_readable = True

    # -- uniform interface ----------------------------------------------------------------------
    @staticmethod
    def record_id(entity: str, record: dict[str, Any]) -> str:
        """The id `get_record`/`update_record` take: `id`, or `location_id:inventory_item_id` for stock."""
        if entity == "inventory_level":
            return f"{record['location_id']}:{record['inventory_item_id']}"
        return str(record["id"])

    def _check(self, entity: str) -> None:
        if entity not in self.entities:
            raise ValueError(f"shopify has no entity {entity!r}; it has {', '.join(self.entities)}")

    def iter_records(self, entity: str, since: datetime | None = None,
                     page_size: int | None = None) -> Iterator[dict[str, Any]]:
        self._check(entity)
        limit = min(page_size or MAX_PAGE, MAX_PAGE)
        if entity == "inventory_level":
            loc_ids = [loc.id for loc in self.locations()]
            return self.iter_inventory_levels(location_ids=loc_ids, updated_at_min=since, page_size=limit)
        if entity == "staff":
            return self.iter_staff(limit)
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["updated_at_min"] = _iso(since)
        if entity == "order":
            params["status"] = "any"
        return self._list(entity, params)

    def get_record(self, entity: str, record_id: str) -> dict[str, Any] | None:
        self._check(entity)
        if entity == "inventory_level":
            location_id, _, item_id = record_id.partition(":")
            levels = list(self.iter_inventory_levels([int(item_id)], [int(location_id)]))
            return levels[0] if levels else None
        return self._get(entity, record_id)

    def create_record(self, entity: str, data: dict[str, Any], *, idempotency_key: str | None = None) -> dict:
        """Create one record. Shopify REST has no idempotency key; for customers a lost response is
        recovered by looking the e-mail up (it is unique in a shop), other creates are not retried."""
        self._check(entity)
        if entity == "inventory_level":
            return self.set_inventory(int(data["location_id"]), int(data["inventory_item_id"]),
                                      int(data["available"])).model_dump()
        try:
            return self._create(entity, data)
        except ApiError as err:
            if err.status is None and entity == "customer" and data.get("email"):
                found = self.search_customers(f"email:{data['email']}", limit=1)
                if found:
                    return found[0].model_dump()
            raise

    def update_record(self, entity: str, record_id: str, changes: dict[str, Any],
                      *, expected_version: str | None = None) -> dict:
        """Update one record. Shopify has no conditional PUT, so `expected_version` (the record's
        `updated_at`) is checked by a lookup just before the write; a mismatch raises a 409 ApiError."""
        self._check(entity)
        if expected_version is not None:
            current = self.get_record(entity, record_id)
            if current is None:
                raise ApiError(self.system, "PUT", entity, 404, f"{entity} {record_id} not found")
            if current.get("updated_at") != expected_version:
                raise ApiError(self.system, "PUT", entity, 409,
                               f"{entity} {record_id} changed since version {expected_version} "
                               f"(now {current.get('updated_at')})")
        if entity == "inventory_level":
            location_id, _, item_id = record_id.partition(":")
            return self.set_inventory(int(location_id), int(item_id), int(changes["available"])).model_dump()
        return self._update(entity, record_id, changes)

    def probe(self, entity: str) -> str:
        """Count plus newest `updated_at`: two cheap calls that change whenever the data does.

        Stock changes bump the product's `updated_at`, so inventory is probed through products."""
        self._check(entity)
        if entity == "staff":  # no count, no change time: the whole (short) list's digest
            digest = hashlib.sha256(json.dumps([[u.get("id"), u.get("email"), u.get("first_name"), u.get("last_name"),
                                                 u.get("phone")] for u in self.iter_staff()]).encode()).hexdigest()
            return f"staff:{digest[:16]}"
        target = "product" if entity == "inventory_level" else entity
        path, _, plural, _ = RESOURCES[target]
        params: dict[str, Any] = {"limit": 1, "order": "updated_at desc", "fields": "id,updated_at"}
        if target == "order":
            params["status"] = "any"
        newest = self.get_json(f"{path}.json", params=params)[plural]
        stamp = newest[0]["updated_at"] if newest else ""
        return f"{entity}:{self.count(target)}:{stamp}"
