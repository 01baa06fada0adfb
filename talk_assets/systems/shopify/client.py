"""Client of Shopify's GraphQL Admin API, plus the uniform interface the sync engines call.

Every read and write is a document from `graphql/documents.py` sent to
`POST /admin/api/{version}/graphql.json` (Shopify calls REST legacy since 2024-10:
https://shopify.dev/docs/apps/build/graphql/migrate). One `ApiClient` underneath (pooling, retries,
clean errors); pacing by calculated query cost (`graphql/cost.py`). The records handed to the sync keep
Shopify's REST field names (`models.*_record`), so nothing downstream depends on the transport.

- Reads of changes: `query: "updated_at:>'…'"`, `sortKey: UPDATED_AT`, cursor paging by `pageInfo`,
  pages sized so the requested cost stays under the single-query maximum.
- Full reads (`since=None`): a bulk operation, polled, its JSONL result streamed line by line.
- Writes: `customerCreate`/`customerUpdate` (+ the address mutations), `productSet`, `productUpdate`,
  `productVariantsBulkUpdate`, `inventorySetQuantities` (compare quantity + idempotency key),
  `orderCreate`, `orderUpdate`. `userErrors` become an `ApiError` (HTTP 422 semantics) naming the field.
- Access scopes: before the first call the installation's scopes are read; a missing one stops the
  client with one error listing all that are missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import requests

from talk_assets.core.http import ApiClient, ApiError, Pacer, RetryPolicy
from talk_assets.sync.model import paged_probe_part
from talk_assets.systems.shopify.graphql import documents as D
from talk_assets.systems.shopify.graphql.cost import CostPacer, ceil_ratio, estimate_cost, page_size
from talk_assets.systems.shopify.info import INFO as SHOPIFY
from talk_assets.systems.shopify.models import (
    Customer,
    InventoryLevel,
    Location,
    Order,
    Product,
    customer_record,
    gid,
    gid_number,
    inventory_level_record,
    location_record,
    order_record,
    product_record,
    staff_record,
)

log = logging.getLogger("talk_assets.shopify")

COUNT_SLACK = 5  # records the first page of a counted read holds beyond the count (changes made since it)
NESTED_PAGE = 20  # variants per product and lines per order asked for in a page (the rest is paged per record)
ENDPOINT = "graphql.json"
# in the answer to a product write: how many mutations changed the product. Each comes back as its own
# `products/*` notification naming the product (webhooks.py `own_echoes`)
MUTATIONS = "_mutations"
# GraphQL error codes -> the HTTP status with the same meaning for the push engine (`system_fault`)
ERROR_STATUS = {"ACCESS_DENIED": 403, "UNAUTHORIZED": 401, "INTERNAL_SERVER_ERROR": 500, "THROTTLED": 429,
                "MAX_COST_EXCEEDED": 400, "BAD_REQUEST": 400, "NOT_FOUND": 404}
# the first segment of a userError `field` that only names the mutation's argument
ARGUMENTS = ("input", "order", "product", "address", "customer")

# Scopes per entity (https://shopify.dev/docs/api/usage/access-scopes): reading, and writing what the
# writer writes. `read_all_orders`: without it orders older than 60 days are not returned at all.
# `read_locations`: the stock is written at the shop's first active location. A write scope grants the
# read of the same resource ("Any scope that writes a resource also grants read access to it").
READ_SCOPES = {"customer": ("read_customers",), "product": ("read_products", "read_inventory", "read_locations"),
               "order": ("read_orders", "read_all_orders")}
WRITE_SCOPES = {"customer": ("write_customers",), "product": ("write_products", "write_inventory"),
                "order": ("write_orders",)}
OPTIONAL_SCOPES = {"read_users": "orders' staff member (`user_id`); Shopify Plus/Advanced only"}
_SCOPE_CACHE: dict[str, tuple[float, frozenset[str]]] = {}
_SCOPE_TTL = 300.0
_scope_lock = threading.Lock()
# Why the staff list may be unreadable: GraphQL `staffMembers` / `StaffMember` (and the REST User
# resource) need the `read_users` scope, granted only to custom apps on Shopify Plus or Advanced stores
# (https://shopify.dev/docs/api/admin-graphql/2026-07/objects/StaffMember). Without it the sync sees no
# staff, so orders it creates carry no staff user (never another system's user id).


def parse_error(body: Any, resp: requests.Response) -> tuple[str, str | None] | None:
    """Shopify's `{"errors": "text"}`, `{"errors": {"field": [...]}}` or GraphQL `{"errors": [{"message"}]}`."""
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
        return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors), None
    return str(body)[:300], None


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("since must be timezone-aware (Shopify would read a naive time in the shop's zone)")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name(document: str) -> str:
    """The operation name of a document (for errors and cost memory)."""
    head = document.lstrip().split("(", 1)[0].split("{", 1)[0].split()
    return head[1] if len(head) > 1 else "query"


def user_error(system: str, operation: str, errors: list[dict[str, Any]], status: int = 422) -> ApiError:
    """`userErrors` as one ApiError: "<field>: <Shopify's message>", with the first field named."""
    parts, first_field = [], None
    for e in errors:
        path = [str(p) for p in e.get("field") or []]
        if len(path) > 1 and path[0] in ARGUMENTS:
            path = path[1:]
        fld = ".".join(path) or None
        first_field = first_field or fld
        parts.append(f"{fld}: {e.get('message')}" if fld else str(e.get("message")))
    return ApiError(system, "POST", f"{ENDPOINT} {operation}", status, "; ".join(parts), {"userErrors": errors},
                    first_field)


class MissingScopes(ApiError):
    """The token lacks scopes the enabled dataflows need (raised before any data call)."""


class Client(ApiClient):
    """Shopify GraphQL Admin API client for one shop."""

    system = "shopify"
    entities = ("customer", "product", "order", "inventory_level", "staff")
    staff_page_size = 250  # the staff probe's page: a connection's largest `first` (shopify.dev/docs/api/usage/pagination-graphql)

    def __init__(self, base_url: str, access_token: str, api_version: str = "2026-07", *,
                 retry: RetryPolicy | None = None, pacer: Pacer | None = None,
                 timeout: tuple[float, float] = (5.0, 30.0), check_scopes: bool = True,
                 bulk_full_reads: bool = True) -> None:
        super().__init__(
            f"{base_url.rstrip('/')}/admin/api/{api_version}",
            headers={"X-Shopify-Access-Token": access_token, "Content-Type": "application/json"},
            timeout=timeout,
            retry=retry,
            # a plain Pacer's fixed floor is kept; the cost bucket is always followed
            pacer=pacer if isinstance(pacer, CostPacer) else CostPacer(min_interval=pacer.min_interval if pacer else 0.0),
            secrets=[access_token],
            error_parser=parse_error,
        )
        self.api_version = api_version
        self.check_scopes = check_scopes
        self.bulk_full_reads = bulk_full_reads
        self.bulk_poll = (0.2, 5.0)  # first and longest wait between polls of a bulk operation
        self.bulk_timeout = 6 * 3600.0
        self._scope_key = hashlib.sha256(f"{self.base_url}|{access_token}".encode()).hexdigest()
        self._scopes: frozenset[str] | None = None
        self._ratio: dict[str, float] = {}  # per document: server's requested cost / our estimate
        self._location: str | None = None
        self._currency: str | None = None
        self.throttled = 0  # THROTTLED answers retried (benchmarks, tests)

    @property
    def cost_pacer(self) -> CostPacer:
        assert isinstance(self.pacer, CostPacer)
        return self.pacer

    @classmethod
    def from_env(cls, **kw: Any) -> Client:
        s = SHOPIFY
        return cls(s.url(), s.value("access_token"), s.value("api_version"), **kw)

    # -- the one GraphQL call -----------------------------------------------------------------------
    def graphql(self, document: str, variables: dict[str, Any] | None = None, *,
                idempotent: bool | None = None) -> dict[str, Any]:
        """Send one document and return its `data`; paced by cost, THROTTLED retried after the time the
        bucket needs, other errors raised as ApiError (ACCESS_DENIED as 403, and so on)."""
        name = _name(document)
        if self.check_scopes and document is not D.ACCESS_SCOPES:
            self.ensure_scopes()
        is_mutation = document.lstrip().startswith("mutation")
        if idempotent is None:
            idempotent = not is_mutation
        estimate = estimate_cost(document, variables) * self._ratio.get(name, 1.0)
        waited = 0.0
        while True:
            self.cost_pacer.wait_for(estimate)
            resp = self.request("POST", ENDPOINT, json={"query": document, "variables": variables or {}},
                                idempotent=idempotent)
            try:
                body = resp.json()
            except ValueError:
                raise ApiError(self.system, "POST", f"{ENDPOINT} {name}", resp.status_code,
                               f"the answer is not JSON ({len(resp.content)} bytes)") from None
            cost = (body.get("extensions") or {}).get("cost")
            self.cost_pacer.observe_cost(cost)
            requested = (cost or {}).get("requestedQueryCost")
            if requested:
                base = estimate_cost(document, variables)
                self._ratio[name] = ceil_ratio(requested, base)
                estimate = float(requested)
            errors = body.get("errors") or []
            codes = {((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}
            if "THROTTLED" in codes:
                # a THROTTLED query was not executed, so even a mutation is safe to send again
                wait = self.cost_pacer.seconds_until(float(requested or estimate))
                if waited + wait <= self.retry.max_rate_limit_wait:
                    waited += wait
                    self.throttled += 1
                    log.info("shopify %s: THROTTLED, waiting %.2fs for the cost bucket", name, wait)
                    time.sleep(wait)
                    continue
            if errors:
                code = next((c for c in codes if c), None)
                status = ERROR_STATUS.get(code or "", 400)
                message = self._clean("; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                                                 for e in errors))
                if status in (401, 403):
                    message += f" (check the credentials and the access scopes they grant: {SHOPIFY.env_name('access_token')})"
                raise ApiError(self.system, "POST", f"{ENDPOINT} {name}", status, message, body)
            return body.get("data") or {}

    def mutate(self, document: str, variables: dict[str, Any], root: str, *, idempotent: bool = False,
               conflict_codes: tuple[str, ...] = ()) -> dict[str, Any]:
        """Run a mutation and return its payload; `userErrors` raise (409 for `conflict_codes`, else 422)."""
        payload = self.graphql(document, variables, idempotent=idempotent).get(root)
        if payload is None:  # a null payload without errors: nothing was done that we can read back
            raise ApiError(self.system, "POST", f"{ENDPOINT} {root}", 502, f"{root} answered no payload")
        errors = payload.get("userErrors") or []
        if errors:
            status = 409 if any(e.get("code") in conflict_codes for e in errors) else 422
            raise user_error(self.system, root, errors, status)
        return payload

    # -- access scopes ------------------------------------------------------------------------------
    def granted_scopes(self) -> frozenset[str]:
        """The installation's access scopes (`currentAppInstallation.accessScopes`), cached a few minutes."""
        with _scope_lock:
            hit = _SCOPE_CACHE.get(self._scope_key)
        if hit and time.monotonic() - hit[0] < _SCOPE_TTL:
            return hit[1]
        data = self.graphql(D.ACCESS_SCOPES)
        scopes = frozenset(s["handle"] for s in data["currentAppInstallation"]["accessScopes"])
        with _scope_lock:
            _SCOPE_CACHE[self._scope_key] = (time.monotonic(), scopes)
        return scopes

    @staticmethod
    def required_scopes() -> dict[str, str]:
        """scope -> why, for what the enabled dataflows do with Shopify: every source is read; a view is
        written when it is a dataflow's target and sharing to it is on (`TALK_SHARE_SHOPIFY[_<ENTITY>]`)."""
        from talk_assets.settings import settings
        from talk_assets.sync.declaration import DATAFLOWS, SOURCES

        need: dict[str, str] = {}
        for src in SOURCES:
            if src.system == "shopify":
                for s in READ_SCOPES.get(src.entity, ()):
                    need.setdefault(s, f"reading {src.entity}s")
        st = settings()
        for flow in DATAFLOWS:
            t = flow.target
            if t.system == "shopify" and st.share_enabled("shopify", t.entity):
                for s in WRITE_SCOPES.get(t.entity, ()):
                    need.setdefault(s, f"writing {t.entity}s ({t.vkey})")
        return need

    def ensure_scopes(self) -> frozenset[str]:
        """Stop with one error listing every scope the enabled dataflows need and the token lacks."""
        if self._scopes is not None:
            return self._scopes
        granted = self.granted_scopes()
        implied = granted | {"read_" + s.removeprefix("write_") for s in granted if s.startswith("write_")}
        missing = {s: why for s, why in self.required_scopes().items() if s not in implied}
        if missing:
            with _scope_lock:
                _SCOPE_CACHE.pop(self._scope_key, None)
            listed = ", ".join(f"{s} ({why})" for s, why in sorted(missing.items()))
            raise MissingScopes(
                self.system, "POST", f"{ENDPOINT} AccessScopes", 403,
                f"the access token lacks {len(missing)} access scope(s) the enabled dataflows need: {listed}. "
                f"Grant them to the custom app in the Shopify admin (Settings > Apps > Develop apps > "
                f"Configuration > Admin API access scopes), reinstall it and set the new token in "
                f"{SHOPIFY.env_name('access_token')}; or turn the writes off with TALK_SHARE_SHOPIFY_<ENTITY>=false",
                None, sorted(missing)[0])
        self._scopes = implied
        return implied

    def has_scope(self, scope: str) -> bool:
        if not self.check_scopes:
            return True
        try:
            return scope in self.ensure_scopes()
        except MissingScopes:
            return scope in self.granted_scopes()

    @property
    def with_staff(self) -> bool:
        """Whether orders can carry their staff member (needs `read_users`)."""
        return self.has_scope("read_users")

    # -- paging ---------------------------------------------------------------------------------------
    def _pages(self, document: str, root: list[str], variables: dict[str, Any],
               first_page: int | None = None) -> Iterator[dict[str, Any]]:
        """Nodes of the connection at path `root`, page by page, each page as large as the cost budget
        allows (`first` chosen from the estimate, corrected by the server's requested cost); the first
        page at most `first_page` records (when the caller knows how many will come)."""
        after: str | None = None
        name = _name(document)
        fixed = variables.pop("first", None)
        while True:
            first = fixed or page_size(document, {**variables, "after": after}, "first", self.cost_pacer.budget(),
                                       self._ratio.get(name, 1.0))
            if first_page is not None and after is None:
                first = max(1, min(first, first_page))
            data = self.graphql(document, {**variables, "first": first, "after": after})
            conn: Any = data
            for key in root:
                conn = (conn or {}).get(key)
            if not conn:
                return
            yield from conn.get("nodes") or []
            info = conn.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info["endCursor"]

    def _rest_of(self, document: str, root: list[str], record_gid: str, conn: dict[str, Any]) -> list[dict[str, Any]]:
        """All nodes of a nested connection: the first page as read, then the following pages."""
        nodes = list(conn.get("nodes") or [])
        info = conn.get("pageInfo") or {}
        if info.get("hasNextPage"):
            nodes.extend(self._pages(document, root, {"id": record_gid, "after": info["endCursor"], "first": 250}))
        return nodes

    def _product(self, node: dict[str, Any]) -> dict[str, Any]:
        variants = self._rest_of(D.PRODUCT_VARIANTS, ["product", "variants"], node["id"], node.get("variants") or {})
        return product_record(node, variants, self.shop_currency())

    def _order(self, node: dict[str, Any]) -> dict[str, Any]:
        lines = self._rest_of(D.ORDER_LINE_ITEMS, ["order", "lineItems"], node["id"], node.get("lineItems") or {})
        return order_record(node, lines)

    def read_changes(self, entity: str, since: datetime | None, page_size_: int | None = None) -> Iterator[dict]:
        """Records changed since `since` (all without), by cursor paging sorted by update time.

        With `since` (and no fixed page size) the changes are counted first (one query of a few cost
        points, `<x>Count(query:)`): none is the end of the read; a few are read in one page sized to the
        count, so the query requests their cost and not a full page's (Shopify books the requested cost
        before running, https://shopify.dev/docs/api/usage/limits#cost-calculation); more than the cost
        bucket holds (paging them would wait for it to refill at its restore rate, ~10 s per full page on
        the standard plan) are read by a bulk operation with the same filter, which the cost limit does
        not apply to. Issue #15: a setup cycle re-reading its own writes spent 40 s asleep in the pacer."""
        query = f"updated_at:>'{_iso(since)}'" if since is not None else None
        if since is None or page_size_:
            return self._paged(entity, query, page_size_)
        count = self.count_changes(entity, query)
        if count == 0:
            return iter(())
        if self.bulk_full_reads and self._paging_would_wait(entity, query, count):
            return self._bulk_or_pages(entity, query)
        return self._paged(entity, query, None, first_page=count + COUNT_SLACK)

    def count_changes(self, entity: str, query: str | None) -> int:
        """How many records match `query` now (exact: `limit: null`)."""
        document = {"customer": D.COUNT_CUSTOMERS, "product": D.COUNT_PRODUCTS, "order": D.COUNT_ORDERS}[entity]
        data = self.graphql(document, {"query": query})
        return int((next(iter(data.values())) or {}).get("count") or 0)

    def _read_document(self, entity: str, query: str | None) -> tuple[str, list[str], dict[str, Any]]:
        """The paged read's document, connection path and variables (without `first`/`after`)."""
        if entity == "customer":
            return D.CUSTOMERS, ["customers"], {"query": query}
        if entity == "product":
            return D.PRODUCTS, ["products"], {"query": query, "variants": NESTED_PAGE}
        if entity == "order":
            return D.ORDERS, ["orders"], {"query": query, "lines": NESTED_PAGE, "withStaff": self.with_staff}
        raise ValueError(entity)

    def _paging_would_wait(self, entity: str, query: str | None, count: int) -> bool:
        """Whether reading `count` records by pages requests more points than the bucket holds at most
        (`throttleStatus.maximumAvailable` of the last answer), so the pacer would have to wait."""
        document, _, v = self._read_document(entity, query)
        ratio = self._ratio.get(_name(document), 1.0)
        one, two = (estimate_cost(document, {**v, "first": k}) for k in (1, 2))
        per_record = (two - one) * ratio
        return per_record * count > self.cost_pacer.budget_max()

    def _paged(self, entity: str, query: str | None, page_size_: int | None,
               first_page: int | None = None) -> Iterator[dict]:
        document, root, v = self._read_document(entity, query)
        if page_size_:
            v["first"] = page_size_
        nodes = self._pages(document, root, v, first_page)
        if entity == "customer":
            return (customer_record(n) for n in nodes)
        if entity == "product":
            return (self._product(n) for n in nodes)
        return (self._order(n) for n in nodes)

    # -- bulk operations ------------------------------------------------------------------------------
    def bulk_records(self, entity: str, search: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record (or those matching the search `search`) through a bulk operation: run, poll,
        stream the JSONL result, rebuild children from `__parentId`
        (https://shopify.dev/docs/api/usage/bulk-operations/queries). The file is read line by line and
        a record is yielded as soon as its children are complete, never held whole."""
        if entity == "order":
            query = D.BULK_QUERIES["order" if self.with_staff else "order_without_staff"]
        else:
            query = D.BULK_QUERIES[entity]
        if search is not None:
            query = D.bulk_filtered(query, entity, search)
        payload = self.mutate(D.BULK_RUN, {"query": query}, "bulkOperationRunQuery")
        op_id = payload["bulkOperation"]["id"]
        op = self._await_bulk(op_id)
        url = op.get("url")
        if not url:  # completed with no objects: Shopify gives no file
            return
        yield from self._stream_jsonl(entity, url)

    def _await_bulk(self, op_id: str) -> dict[str, Any]:
        delay, longest = self.bulk_poll
        deadline = time.monotonic() + self.bulk_timeout
        while True:
            op = self.graphql(D.BULK_STATUS, {"id": op_id})["bulkOperation"]
            status = op["status"]
            if status == "COMPLETED":
                return op
            if status in ("FAILED", "CANCELED", "CANCELING", "EXPIRED"):
                code = op.get("errorCode")
                http = {"ACCESS_DENIED": 403, "INTERNAL_SERVER_ERROR": 500, "TIMEOUT": 504}.get(code or "", 500)
                raise ApiError(self.system, "POST", f"{ENDPOINT} bulkOperation", http,
                               f"bulk operation {op_id} {status.lower()}" + (f" ({code})" if code else ""), op)
            if time.monotonic() > deadline:
                raise ApiError(self.system, "POST", f"{ENDPOINT} bulkOperation", None,
                               f"bulk operation {op_id} still {status.lower()} after {self.bulk_timeout:.0f}s", op)
            time.sleep(delay)
            delay = min(longest, delay * 1.5)

    def _stream_jsonl(self, entity: str, url: str) -> Iterator[dict[str, Any]]:
        """Read the result file line by line. The URL is a signed download link, fetched without the
        access token (it may point at another host)."""
        build = {"customer": lambda n, kids: customer_record(n),
                 "product": lambda n, kids: product_record(n, kids, self.shop_currency()),
                 "order": lambda n, kids: order_record(n, kids)}[entity]
        current: dict[str, Any] | None = None
        children: list[dict[str, Any]] = []
        with requests.get(url, stream=True, timeout=self.timeout) as resp:
            if resp.status_code >= 400:
                raise ApiError(self.system, "GET", "bulk operation result", resp.status_code, resp.text[:300])
            for raw in resp.iter_lines():
                if not raw:
                    continue
                node = json.loads(raw)
                parent = node.pop("__parentId", None)
                if parent is None:
                    if current is not None:
                        yield build(current, children)
                    current, children = node, []
                elif current is not None and parent == current.get("id"):
                    children.append(node)
                else:  # groupObjects: true promises children right after their parent
                    raise ApiError(self.system, "GET", "bulk operation result", None,
                                   f"a child of {parent} is not next to its parent in the bulk result")
        if current is not None:
            yield build(current, children)

    # -- single records -------------------------------------------------------------------------------
    def _get(self, entity: str, record_id: int | str) -> dict[str, Any] | None:
        if entity == "customer":
            node = self.graphql(D.CUSTOMER_BY_ID, {"id": gid("Customer", record_id)}).get("customer")
            return customer_record(node) if node else None
        if entity == "product":
            node = self.graphql(D.PRODUCT_BY_ID, {"id": gid("Product", record_id), "variants": NESTED_PAGE}).get("product")
            return self._product(node) if node else None
        if entity == "order":
            node = self.graphql(D.ORDER_BY_ID, {"id": gid("Order", record_id), "lines": NESTED_PAGE,
                                                "withStaff": self.with_staff}).get("order")
            return self._order(node) if node else None
        raise ValueError(entity)

    def count(self, entity: str) -> int:
        doc = {"customer": D.PROBE_CUSTOMERS, "product": D.PROBE_PRODUCTS, "order": D.PROBE_ORDERS}[entity]
        root = {"customer": "customersCount", "product": "productsCount", "order": "ordersCount"}[entity]
        return int(self.graphql(doc)[root]["count"])

    # -- writes ---------------------------------------------------------------------------------------
    def create_customer_record(self, body: dict[str, Any]) -> dict[str, Any]:
        """`customerCreate` with the default address in one call. CustomerInput.addresses is deprecated
        in 2026-07 in favour of `customerAddressCreate`, but still served; one call keeps the create
        atomic (no customer without its address when the second call would fail)."""
        inp = customer_input(body)
        address = body.get("default_address") or (body.get("addresses") or [None])[0]
        if address:
            inp["addresses"] = [address_input(address)]
        node = self.mutate(D.CUSTOMER_CREATE, {"input": inp}, "customerCreate")["customer"]
        return customer_record(node)

    def update_customer_record(self, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """`customerUpdate`; a changed default address is sent whole, with its id (updated in place)."""
        inp = {"id": gid("Customer", record_id), **customer_input(changes)}
        address = changes.get("default_address") or (changes.get("addresses") or [None])[0]
        if address:
            current = self._get("customer", record_id)
            if current is None:
                raise ApiError(self.system, "POST", f"{ENDPOINT} customerUpdate", 404, f"customer {record_id} not found")
            existing = current.get("default_address") or {}
            merged = address_input({**existing, **address})
            if existing.get("admin_graphql_api_id"):
                merged["id"] = existing["admin_graphql_api_id"]
            inp["addresses"] = [merged]
        node = self.mutate(D.CUSTOMER_UPDATE, {"input": inp}, "customerUpdate")["customer"]
        return customer_record(node)

    def product_set(self, product: dict[str, Any]) -> dict[str, Any]:
        """`productSet` (synchronous): create or replace a product with its variants. A variant whose
        stock did not come out as asked (`inventoryQuantities` only sets levels where the item is
        stocked) is set afterwards with `inventorySetQuantities`."""
        node = self.mutate(D.PRODUCT_SET, {"input": product, "variants": NESTED_PAGE}, "productSet")["product"]
        record = self._product(node)
        fixed = 0
        for asked, got in zip(product.get("variants") or [], record["variants"], strict=False):
            want = next((q["quantity"] for q in asked.get("inventoryQuantities") or []), None)
            if want is not None and got.get("inventory_quantity") != want and got.get("inventory_item_id"):
                loc = asked["inventoryQuantities"][0]["locationId"]
                self.set_inventory(loc, got["inventory_item_id"], want)
                fixed += 1
        out = (self._get("product", record["id"]) or record) if fixed else record
        # how many mutations changed the product: each is notified as its own `products/*` (webhooks.py)
        return {**out, MUTATIONS: 1 + fixed}

    def update_product_fields(self, product_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """`productUpdate` of product-level fields (title, descriptionHtml, ...)."""
        return self.mutate(D.PRODUCT_UPDATE, {"product": {"id": gid("Product", product_id), **fields}},
                           "productUpdate")["product"]

    def update_variants(self, product_id: str, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`productVariantsBulkUpdate` of some variants of one product."""
        payload = self.mutate(D.VARIANTS_UPDATE, {"productId": gid("Product", product_id), "variants": variants},
                              "productVariantsBulkUpdate")
        return payload.get("productVariants") or []

    def locations(self) -> list[Location]:
        nodes = self._pages(D.LOCATIONS, ["locations"], {"first": 50})
        return [Location.model_validate(location_record(n)) for n in nodes]

    def location_gid(self) -> str:
        """The shop's first active location (where the stock is written)."""
        if self._location is None:
            nodes = list(self._pages(D.LOCATIONS, ["locations"], {"first": 50}))
            active = [n for n in nodes if n.get("isActive", True)] or nodes
            if not active:
                raise ApiError(self.system, "POST", f"{ENDPOINT} Locations", 422, "the shop has no location")
            self._location = active[0]["id"]
        return self._location

    def shop_currency(self) -> str:
        if self._currency is None:
            self._currency = self.graphql(D.SHOP)["shop"]["currencyCode"]
        return self._currency

    def inventory_level(self, item_id: int | str, location_id: int | str) -> dict[str, Any] | None:
        data = self.graphql(D.INVENTORY_LEVEL, {"item": gid("InventoryItem", item_id)})
        loc = gid("Location", location_id)
        nodes = ((data.get("inventoryItem") or {}).get("inventoryLevels") or {}).get("nodes") or []
        node = next((n for n in nodes if (n.get("location") or {}).get("id") == loc), None)
        return inventory_level_record(node) if node else None

    def set_inventory(self, location_id: int | str, inventory_item_id: int | str, available: int, *,
                      expected: int | None | str = "read", reference: str | None = None) -> InventoryLevel:
        """`inventorySetQuantities` of `available`, with the compare quantity as an optimistic lock:
        `expected` is the quantity we believe is there ("read": read it just before). A different
        quantity at Shopify is a 409 (CHANGE_FROM_QUANTITY_STALE). The idempotency key is new for each
        call and the HTTP layer's retries of it (after a lost answer) send it again: "Distinct requests
        need different idempotency keys" (https://shopify.dev/docs/api/usage/implementing-idempotency).
        A key derived from the intent alone would repeat when a stock goes back to an earlier quantity
        from the same quantity as before, and Shopify would answer that new write with the stored
        result of the old one, without setting the level. A retry in a later cycle needs no key: it
        reads the level again, and the compare quantity refuses a stale one."""
        loc, item = gid("Location", location_id), gid("InventoryItem", inventory_item_id)
        if expected == "read":
            level = self.inventory_level(item, loc)
            expected = level["available"] if level else None
        quantity = {"inventoryItemId": item, "locationId": loc, "quantity": int(available),
                    "changeFromQuantity": expected}
        body = {"name": "available", "reason": "correction", "quantities": [quantity]}
        if reference:
            body["referenceDocumentUri"] = reference
        key = f"talk-{uuid.uuid4()}"
        self.mutate(D.INVENTORY_SET, {"input": body, "key": key}, "inventorySetQuantities", idempotent=True,
                    conflict_codes=("CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"))
        return InventoryLevel(inventory_item_id=gid_number(item) or 0, location_id=gid_number(loc) or 0,
                              available=int(available))

    def create_order_record(self, body: dict[str, Any]) -> dict[str, Any]:
        node = self.mutate(D.ORDER_CREATE, {"order": self.order_input(body), "options": None,
                                            "lines": NESTED_PAGE, "withStaff": self.with_staff},
                           "orderCreate")["order"]
        return self._order(node)

    def update_order_record(self, record_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        fields = {"email": "email", "po_number": "poNumber", "note": "note", "phone": "phone"}
        inp: dict[str, Any] = {"id": gid("Order", record_id)}
        inp.update({fields[k]: v for k, v in changes.items() if k in fields})
        if "tags" in changes:
            inp["tags"] = _tag_list(changes["tags"])
        unknown = set(changes) - set(fields) - {"tags"}
        if unknown:
            raise ValueError(f"Shopify's orderUpdate cannot change {', '.join(sorted(unknown))} of an order")
        node = self.mutate(D.ORDER_UPDATE, {"input": inp, "lines": NESTED_PAGE, "withStaff": self.with_staff},
                           "orderUpdate")["order"]
        return self._order(node)

    def order_input(self, body: dict[str, Any]) -> dict[str, Any]:
        """OrderCreateOrderInput from a REST-shaped order (what the mapping writes)."""
        currency = body.get("currency") or self.shop_currency()
        out: dict[str, Any] = {"currency": currency}
        for rest, gql in (("email", "email"), ("po_number", "poNumber"), ("note", "note"),
                          ("source_identifier", "sourceIdentifier"), ("source_name", "sourceName"),
                          ("financial_status", "financialStatus"), ("processed_at", "processedAt")):
            if body.get(rest) is not None:
                out[gql] = body[rest].upper() if gql == "financialStatus" else body[rest]
        if body.get("tags"):
            out["tags"] = _tag_list(body["tags"])
        if body.get("taxes_included") is not None:  # OrderCreateOrderInput.taxesIncluded
            out["taxesIncluded"] = bool(body["taxes_included"])
        if body.get("tax_lines"):  # OrderCreateOrderInput.taxLines (OrderCreateTaxLineInput)
            out["taxLines"] = [{"title": t.get("title") or "Tax", "rate": float(t.get("rate") or 0),
                                "priceSet": {"shopMoney": {"amount": str(t["price"]), "currencyCode": currency}}}
                               for t in body["tax_lines"]]
        customer_id = (body.get("customer") or {}).get("id")
        if customer_id is not None:
            out["customer"] = {"toAssociate": {"id": gid("Customer", customer_id)}}
        if body.get("user_id") is not None:
            out["userId"] = gid("StaffMember", body["user_id"])
        lines = []
        for li in body.get("line_items") or []:
            line: dict[str, Any] = {"quantity": int(li.get("quantity") or 1)}
            for rest, gql in (("sku", "sku"), ("title", "title"), ("variant_title", "variantTitle")):
                if li.get(rest) is not None:
                    line[gql] = li[rest]
            if li.get("variant_id") is not None:
                line["variantId"] = gid("ProductVariant", li["variant_id"])
            if li.get("price") is not None:
                line["priceSet"] = {"shopMoney": {"amount": str(li["price"]), "currencyCode": currency}}
            lines.append(line)
        out["lineItems"] = lines
        return out

    # -- uniform interface ----------------------------------------------------------------------------
    # -- staff ----------------------------------------------------------------------------------
    def iter_staff(self, page_size_: int | None = None) -> Iterator[dict[str, Any]]:
        """Every staff member (`staffMembers`), or none when the token lacks `read_users`: the documents
        name no change filter for staff, so the (short) list is read whole."""
        if not self.has_scope("read_users"):
            return
        v: dict[str, Any] = {"first": page_size_} if page_size_ else {}
        for n in self._pages(D.STAFF_MEMBERS, ["staffMembers"], v):
            yield staff_record(n)

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
        """Changes since `since` by paging; everything (`since=None`) by a bulk operation, or by paging
        when another bulk query of this app is running (Shopify runs one at a time per shop) or when
        `page_size` is given (tests, benchmarks)."""
        self._check(entity)
        if since is not None:
            _iso(since)
        if entity == "inventory_level":
            return self._inventory_levels(since, page_size)
        if entity == "staff":
            return self.iter_staff(page_size)
        if since is None and self.bulk_full_reads and page_size is None:
            return self._bulk_or_pages(entity)
        return self.read_changes(entity, since, page_size)

    def _bulk_or_pages(self, entity: str, search: str | None = None) -> Iterator[dict[str, Any]]:
        try:
            gen = self.bulk_records(entity, search)
            first = next(gen, None)
        except ApiError as err:
            body = err.body if isinstance(err.body, dict) else {}
            if any(e.get("code") == "OPERATION_IN_PROGRESS" for e in body.get("userErrors") or []):
                log.info("shopify %s: another bulk query is running, reading by pages instead", entity)
                yield from self._paged(entity, search, None)
                return
            raise
        if first is not None:
            yield first
            yield from gen

    def _inventory_levels(self, since: datetime | None, page_size_: int | None) -> Iterator[dict[str, Any]]:
        """Stock per location and item. Shopify documents no `updated_at` filter for a location's
        inventory levels, so changes are found by comparing each level's `updatedAt` here."""
        for loc in self._pages(D.LOCATIONS, ["locations"], {"first": 50}):
            v: dict[str, Any] = {"location": loc["id"]}
            if page_size_:
                v["first"] = page_size_
            for n in self._pages(D.INVENTORY_LEVELS, ["location", "inventoryLevels"], v):
                rec = inventory_level_record(n)
                if since is None or (rec["updated_at"] and datetime.fromisoformat(rec["updated_at"]) > since):
                    yield rec

    def get_record(self, entity: str, record_id: str) -> dict[str, Any] | None:
        self._check(entity)
        if entity == "inventory_level":
            location_id, _, item_id = record_id.partition(":")
            return self.inventory_level(item_id, location_id)
        return self._get(entity, record_id)

    def create_record(self, entity: str, data: dict[str, Any], *, idempotency_key: str | None = None) -> dict:
        """Create one record from a REST-shaped body. customerCreate/productSet/orderCreate take no
        idempotency key in 2026-07, so a lost answer is recovered by recognition: a customer by its
        e-mail (unique in a shop) here, the rest by the sync's merge keys in the next collect."""
        self._check(entity)
        if entity == "inventory_level":
            return self.set_inventory(data["location_id"], data["inventory_item_id"], int(data["available"])).model_dump()
        if entity == "customer":
            try:
                return self.create_customer_record(data)
            except ApiError as err:
                if err.status is None and data.get("email"):
                    found = self.find_customer_by_email(str(data["email"]))
                    if found:
                        return found
                raise
        if entity == "product":
            return self.product_set(product_set_input(data, self.location_gid()))
        return self.create_order_record(data)

    def delete_record(self, entity: str, record_id: str) -> None:
        """Delete a customer (`customerDelete`); the sync never deletes, the conformance suite cleans up
        the record it created. Other entities are not deleted through this client."""
        if entity != "customer":
            raise ValueError(f"the Shopify client deletes customers only, not {entity!r}")
        self.mutate(D.CUSTOMER_DELETE, {"input": {"id": gid("Customer", record_id)}}, "customerDelete")

    def find_customer_by_email(self, email: str) -> dict[str, Any] | None:
        quoted = email.replace("\\", "\\\\").replace('"', '\\"')
        nodes = self._pages(D.CUSTOMERS, ["customers"], {"query": f'email:"{quoted}"', "first": 1})
        for n in nodes:
            return customer_record(n)
        return None

    def update_record(self, entity: str, record_id: str, changes: dict[str, Any],
                      *, expected_version: str | None = None) -> dict:
        """Update one record. Shopify has no conditional update, so `expected_version` (the record's
        `updated_at`) is checked by a read just before the write; a mismatch raises a 409 ApiError."""
        self._check(entity)
        if expected_version is not None:
            current = self.get_record(entity, record_id)
            if current is None:
                raise ApiError(self.system, "POST", entity, 404, f"{entity} {record_id} not found")
            if current.get("updated_at") != expected_version:
                raise ApiError(self.system, "POST", entity, 409,
                               f"{entity} {record_id} changed since version {expected_version} "
                               f"(now {current.get('updated_at')})")
        if entity == "inventory_level":
            location_id, _, item_id = record_id.partition(":")
            return self.set_inventory(location_id, item_id, int(changes["available"])).model_dump()
        if entity == "customer":
            return self.update_customer_record(record_id, changes)
        if entity == "product":
            fields = product_update_input(changes)
            if fields:
                self.update_product_fields(record_id, fields)
            return self._get("product", record_id) or {}
        return self.update_order_record(record_id, changes)

    def probe(self, entity: str, previous: str | None = None) -> str:
        """Count plus newest `updatedAt`, in one cheap query of documented arguments
        (`<x>Count`, `sortKey: UPDATED_AT, reverse: true, first: 1`). Stock is probed through products."""
        self._check(entity)
        if entity == "staff":  # no count, no change time, no sort by change: the whole list's digest
            def digest() -> tuple[str, bool]:
                staff = [[u.get("id"), u.get("email"), u.get("first_name"), u.get("last_name"), u.get("phone")]
                         for u in self.iter_staff(self.staff_page_size)]
                return hashlib.sha256(json.dumps(staff).encode()).hexdigest()[:16], len(staff) >= self.staff_page_size

            # a shop with more staff than one page (Plus: no staff limit) would spend its cost bucket on
            # every probe: above one page the digest is taken once per TALK_PROBE_REFRESH_S
            return f"staff:{paged_probe_part((previous or '').removeprefix('staff:') or None, digest)}"
        target = "product" if entity == "inventory_level" else entity
        doc = {"customer": D.PROBE_CUSTOMERS, "product": D.PROBE_PRODUCTS, "order": D.PROBE_ORDERS}[target]
        data = self.graphql(doc)
        count = (next(v for k, v in data.items() if k.endswith("Count")) or {}).get("count")
        nodes = next(v for k, v in data.items() if not k.endswith("Count"))["nodes"]
        return f"{entity}:{count}:{nodes[0]['updatedAt'] if nodes else ''}"

    # -- typed helpers (kept for callers of the REST-era client) ---------------------------------------
    def list_customers(self, **_: Any) -> Iterator[Customer]:
        return (Customer.model_validate(r) for r in self.read_changes("customer", None))

    def list_products(self, **_: Any) -> Iterator[Product]:
        return (Product.model_validate(r) for r in self.read_changes("product", None))

    def list_orders(self, **_: Any) -> Iterator[Order]:
        return (Order.model_validate(r) for r in self.read_changes("order", None))

    def get_customer(self, customer_id: int) -> Customer | None:
        rec = self._get("customer", customer_id)
        return None if rec is None else Customer.model_validate(rec)

    def get_product(self, product_id: int) -> Product | None:
        rec = self._get("product", product_id)
        return None if rec is None else Product.model_validate(rec)

    def get_order(self, order_id: int) -> Order | None:
        rec = self._get("order", order_id)
        return None if rec is None else Order.model_validate(rec)


# -- REST-shaped bodies -> GraphQL inputs ------------------------------------------------------------
def _tag_list(tags: Any) -> list[str]:
    return [t.strip() for t in tags.split(",") if t.strip()] if isinstance(tags, str) else list(tags or [])


def customer_input(body: dict[str, Any]) -> dict[str, Any]:
    """CustomerInput (without id and addresses) from a REST-shaped customer."""
    out: dict[str, Any] = {}
    for rest, gql in (("email", "email"), ("first_name", "firstName"), ("last_name", "lastName"),
                      ("phone", "phone"), ("note", "note")):
        if rest in body:
            out[gql] = body[rest]
    if "tags" in body:
        out["tags"] = _tag_list(body["tags"])
    return out


def address_input(a: dict[str, Any]) -> dict[str, Any]:
    """MailingAddressInput from a REST-shaped address (countryCode/provinceCode, not the deprecated names)."""
    keys = {"first_name": "firstName", "last_name": "lastName", "company": "company", "address1": "address1",
            "address2": "address2", "city": "city", "province_code": "provinceCode", "zip": "zip",
            "country_code": "countryCode", "phone": "phone"}
    return {gql: a[rest] for rest, gql in keys.items() if rest in a}


def product_update_input(changes: dict[str, Any]) -> dict[str, Any]:
    keys = {"title": "title", "body_html": "descriptionHtml", "vendor": "vendor", "product_type": "productType",
            "handle": "handle"}
    out = {gql: changes[rest] for rest, gql in keys.items() if rest in changes}
    if "status" in changes and changes["status"]:
        out["status"] = str(changes["status"]).upper()
    if "tags" in changes:
        out["tags"] = _tag_list(changes["tags"])
    return out


OPTION = "Title"  # a product with one option: Shopify names it "Title" with the value "Default Title"


def variant_set_input(v: dict[str, Any], location: str | None, option: str = OPTION) -> dict[str, Any]:
    """ProductVariantSetInput from a REST-shaped variant (`inventory_quantity` becomes the quantity at
    `location`)."""
    out: dict[str, Any] = {"optionValues": [{"optionName": option, "name": v.get("option1") or v.get("title")
                                             or "Default Title"}]}
    for rest, gql in (("sku", "sku"), ("price", "price"), ("barcode", "barcode"), ("compare_at_price", "compareAtPrice")):
        if v.get(rest) is not None:
            out[gql] = str(v[rest])
    if v.get("taxable") is not None:
        out["taxable"] = bool(v["taxable"])
    if v.get("inventory_quantity") is not None and location:
        out["inventoryItem"] = {"tracked": True}
        out["inventoryQuantities"] = [{"locationId": location, "name": "available", "quantity": int(v["inventory_quantity"])}]
    return out


def product_set_input(body: dict[str, Any], location: str | None) -> dict[str, Any]:
    """ProductSetInput from a REST-shaped product with its variants."""
    variants = [variant_set_input(v, location) for v in body.get("variants") or [{}]]
    values = []
    for v in variants:
        name = v["optionValues"][0]["name"]
        if name not in values:
            values.append(name)
    out: dict[str, Any] = {"title": body.get("title") or "Product", "descriptionHtml": body.get("body_html") or "",
                           "productOptions": [{"name": OPTION, "position": 1, "values": [{"name": n} for n in values]}],
                           "variants": variants}
    out.update({k: v for k, v in product_update_input({k: body[k] for k in body if k not in ("title",)}).items()})
    return out
