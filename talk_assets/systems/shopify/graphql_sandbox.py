"""The Shopify sandbox's GraphQL Admin API: `POST /admin/api/{version}/graphql.json`.

Documents are parsed, validated and executed by graphql-core against Shopify's own 2026-07 schema
(`graphql_schema.py`), so field names, arguments, input types, enums and `userErrors` shapes are
Shopify's. The resolvers read and write the SAME records the REST endpoints serve (`sandbox.App`
tables, in REST shape): an edit through one API is visible through the other. Mutations translate
their input into the REST body and call the REST handler, so both APIs share one set of validation
rules; a REST 422 becomes `userErrors` (`field` in GraphQL's camelCase path, Rails' full message).

Resolution: every GraphQL object is an `Obj(type name, record)`. A field is resolved by a function
registered for (type, field) when the REST record's shape differs, else by the REST key of the same
name in snake_case (`firstName` -> `first_name`). Enum values are the REST value upper-cased,
`DateTime` values are rendered in UTC (`2026-01-02T03:04:05Z`, what the GraphQL Admin API sends).

Auth is the REST endpoints' (`X-Shopify-Access-Token`); a wrong or missing token is the same 401
`{"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}`
(shopify.dev/docs/api/usage/response-codes: 401 "credentials are not present or incorrect", for
REST and GraphQL alike). Documents that do not parse or validate answer HTTP 200 with `errors`;
their messages are graphql-core's wording, not graphql-ruby's (the sandbox's known difference).

Also here: calculated query cost and the per-token bucket (`graphql_cost.py`), access scopes per
token, and bulk operations (JSONL results served by the sandbox under `/bulk-results/`).
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import gc
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    OperationDefinitionNode,
    execute,
    get_named_type,
    parse,
    validate,
)

from talk_assets.sandbox.server import HttpError, Request, Response
from talk_assets.sandbox.store import Record, Table
from talk_assets.systems.shopify import graphql_search as gs
from talk_assets.systems.shopify.graphql_cost import (
    DEFAULT_BUCKET_SIZE,
    DEFAULT_RESTORE_RATE,
    MAX_QUERY_COST,
    CostBucket,
    CostCalculator,
)
from talk_assets.systems.shopify.graphql_schema import admin_schema

if TYPE_CHECKING:
    from talk_assets.systems.shopify.sandbox import App

RATE_DOCS = "https://shopify.dev/api/usage/rate-limits"
SCOPE_DOCS = "https://shopify.dev/api/usage/access-scopes"
MAX_PAGE = 250  # "Input arguments that accept an array have a maximum size of 250" / page size limit
# Every scope the sandbox knows; a token has all of them unless a test narrows it.
ALL_SCOPES = (
    "read_customers", "write_customers", "read_products", "write_products", "read_orders", "write_orders",
    "read_all_orders", "read_inventory", "write_inventory", "read_locations", "read_users",
)
# The scope each root field (and a few nested fields) needs, from each field's "Requires `...`
# access scope" note in Shopify's GraphQL Admin reference (shopify.dev/docs/api/admin-graphql).
SCOPES: dict[tuple[str, str], str] = {
    ("QueryRoot", "customers"): "read_customers", ("QueryRoot", "customer"): "read_customers",
    ("QueryRoot", "products"): "read_products", ("QueryRoot", "product"): "read_products",
    ("QueryRoot", "productVariants"): "read_products", ("QueryRoot", "productVariant"): "read_products",
    ("QueryRoot", "orders"): "read_orders", ("QueryRoot", "order"): "read_orders",
    ("QueryRoot", "locations"): "read_locations", ("QueryRoot", "location"): "read_locations",
    ("QueryRoot", "inventoryItems"): "read_inventory", ("QueryRoot", "inventoryItem"): "read_inventory",
    ("QueryRoot", "inventoryLevel"): "read_inventory", ("QueryRoot", "staffMembers"): "read_users",
    ("QueryRoot", "staffMember"): "read_users",
    ("Order", "customer"): "read_customers", ("Order", "staffMember"): "read_users",
    ("LineItem", "staffMember"): "read_users", ("Customer", "orders"): "read_orders",
    ("Customer", "lastOrder"): "read_orders", ("LineItem", "product"): "read_products",
    ("LineItem", "variant"): "read_products", ("InventoryItem", "variant"): "read_products",
    ("Mutation", "customerCreate"): "write_customers", ("Mutation", "customerUpdate"): "write_customers",
    ("Mutation", "customerDelete"): "write_customers", ("Mutation", "orderUpdate"): "write_orders",
    ("QueryRoot", "customersCount"): "read_customers", ("QueryRoot", "productsCount"): "read_products",
    ("QueryRoot", "ordersCount"): "read_orders",
    ("Mutation", "productSet"): "write_products", ("Mutation", "productCreate"): "write_products",
    ("Mutation", "productUpdate"): "write_products", ("Mutation", "productVariantsBulkCreate"): "write_products",
    ("Mutation", "productVariantsBulkUpdate"): "write_products",
    ("Mutation", "inventorySetQuantities"): "write_inventory", ("Mutation", "orderCreate"): "write_orders",
}
NODE_SCOPES = {"Customer": "read_customers", "Product": "read_products", "ProductVariant": "read_products",
               "Order": "read_orders", "Location": "read_locations", "InventoryItem": "read_inventory",
               "InventoryLevel": "read_inventory"}
ALL_ORDERS_DAYS = 60
# Sandbox settings for the cost bucket (defaults: Shopify's standard plan, see graphql_cost.py).
BUCKET_ENV = "TALK_SANDBOX_SHOPIFY_COST_BUCKET"
RESTORE_ENV = "TALK_SANDBOX_SHOPIFY_COST_RESTORE_RATE"


def _env_points(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of query-cost points, got {raw!r}")
    return value  # without read_all_orders only the last 60 days of orders are visible


class Obj:
    """A GraphQL object: its schema type name and the record (REST shape) it is read from."""

    __slots__ = ("type", "rec", "parent")

    def __init__(self, type_: str, rec: Any, parent: Any = None) -> None:
        self.type = type_
        self.rec = rec
        self.parent = parent


@lru_cache(maxsize=4096)
def snake(name: str) -> str:
    out = []
    for ch in name:
        if ch.isupper():
            out.append("_" + ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def utc(value: str | datetime | None) -> str | None:
    """A REST timestamp (shop zone, with offset) as the GraphQL Admin API renders it: UTC with Z."""
    if value is None:
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gid(kind: str, rid: Any) -> str:
    return f"gid://shopify/{kind}/{rid}"


def parse_gid(value: Any) -> tuple[str, int] | None:
    """("Customer", 123) from "gid://shopify/Customer/123" (a `?query` tail is ignored)."""
    if not isinstance(value, str) or not value.startswith("gid://shopify/"):
        return None
    kind, _, rest = value[len("gid://shopify/"):].partition("/")
    try:
        return kind, int(rest.split("?", 1)[0])
    except ValueError:
        return None


def encode_cursor(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode()


def decode_cursor(token: str) -> tuple[Any, ...]:
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(value, list):
            raise ValueError
        return tuple(value)
    except (ValueError, TypeError):
        raise GraphQLError("Invalid cursor for current pagination sort.") from None


class _Keys:
    """The sort keys of a (key, item) list, as a sequence for `bisect` without copying them."""

    __slots__ = ("items",)

    def __init__(self, items: list[tuple[tuple[Any, ...], Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        return self.items[i][0]


def money_bag(amount: Any, currency: str = "NOK") -> dict[str, Any]:
    m = {"amount": amount if amount is not None else "0.0", "currencyCode": currency}
    return {"shopMoney": m, "presentmentMoney": m}


class Context:
    """Per-request state: the app, the caller's token and scopes, search warnings."""

    def __init__(self, api: GraphQLApi, token: str, host: str, bulk: bool = False) -> None:
        self.api = api
        self.app = api.app
        self.token = token
        self.scopes = api.scopes_for(token)
        self.host = host
        self.bulk = bulk
        self.search: list[dict[str, Any]] = []


def _ctx(info: GraphQLResolveInfo) -> Context:
    return info.context  # type: ignore[no-any-return]


class GraphQLApi:
    """The GraphQL endpoint of one Shopify sandbox `App` (holds its bucket, scopes, bulk ops)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.schema = admin_schema()
        self.bucket = CostBucket(_env_points(BUCKET_ENV, DEFAULT_BUCKET_SIZE),
                                 _env_points(RESTORE_ENV, DEFAULT_RESTORE_RATE))
        self.token_scopes: dict[str, list[str]] = {}
        self.fields: dict[str, dict[str, Callable[..., Any]]] = {}
        self.bulk_ops: dict[int, dict[str, Any]] = {}
        self.bulk_files: dict[str, bytes] = {}
        self.bulk_fault: dict[str, Any] = {}
        self.next_bulk = 1
        # inventorySetQuantities' idempotency keys seen: key -> (the request's variables, its answer)
        self.idempotency: dict[str, tuple[str, dict[str, Any]]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.next_webhook = 1
        self._sorted: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], Any]]] = {}
        self._plans: dict[tuple[str, str], tuple[str | None, Callable[..., Any] | None, str]] = {}
        self._modes: dict[Any, tuple[str, str | None]] = {}
        self._docs: dict[str, tuple[DocumentNode, list[GraphQLError]]] = {}
        self._register()

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to seed state (called by the app's reset): full buckets of the configured size, all
        scopes, no bulk operations, webhook subscriptions, cached lists or idempotency keys seen (a key
        kept across a reset would answer a new shop's write from the old one's: the same seed makes the
        same inventory item ids, so a first sync after a reset sends the same stock writes again)."""
        self.bucket.size = _env_points(BUCKET_ENV, DEFAULT_BUCKET_SIZE)
        self.bucket.restore_rate = _env_points(RESTORE_ENV, DEFAULT_RESTORE_RATE)
        self.bucket.reset()
        self.token_scopes.clear()
        self._sorted.clear()
        for op in self.bulk_ops.values():
            ev = op.get("_release")
            if ev is not None:
                ev.set()
        self.bulk_ops.clear()
        self.bulk_files.clear()
        self.bulk_fault.clear()
        self.idempotency.clear()
        self.webhooks.clear()
        self.next_webhook = 1

    def scopes_for(self, token: str) -> set[str]:
        """The token's scopes; a write scope grants the read of the same resource ("Any scope that writes
        a resource also grants read access to it", shopify.dev/docs/api/usage/access-scopes)."""
        granted = set(self.token_scopes.get(token, ALL_SCOPES))
        return granted | {"read_" + g[len("write_"):] for g in granted if g.startswith("write_")}

    # -- HTTP ----------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """Run one GraphQL request (the app lock is held by the framework while this runs)."""
        ctype = (req.header("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype == "application/graphql":
            payload: Any = {"query": req.body.decode("utf-8", "replace")}
        else:
            try:
                payload = json.loads(req.body) if req.body else None
            except ValueError:
                payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            # Shopify: 400 with `{"errors": {"query": "Required parameter missing or invalid"}}`.
            raise HttpError(400, "Required parameter missing or invalid", field="query")
        variables = payload.get("variables") or {}
        if not isinstance(variables, dict):
            raise HttpError(400, "Required parameter missing or invalid", field="variables")
        token = req.header("X-Shopify-Access-Token") or ""
        body = self.run(payload["query"], variables, payload.get("operationName"), token,
                        req.header("Host") or "127.0.0.1")
        return Response(200, body)

    def run(self, source: str, variables: dict[str, Any], operation_name: str | None, token: str,
            host: str) -> dict[str, Any]:
        speed = self.app.limiter.speed
        enabled = self.app.limiter.enabled
        try:
            doc, errors = self.document(source)
        except GraphQLError as err:
            return {"errors": [err.formatted], "extensions": {"cost": self._cost(0, 0, token, speed)}}
        if errors:
            # Nothing ran and nothing is charged; the docs show no cost for refused documents, the
            # sandbox reports the bucket anyway so `extensions.cost` is on every answer.
            return {"errors": [e.formatted for e in errors[:20]],
                    "extensions": {"cost": self._cost(0, 0, token, speed)}}
        op = self._operation(doc, operation_name)
        if op is None:
            return {"errors": [{"message": "An operation name is required"}]}
        calc = CostCalculator(self.schema, self._fragments(doc), variables)
        requested = calc.operation(op)
        if requested > MAX_QUERY_COST:
            return {"errors": [{
                "message": (f"Query cost is {requested}, which exceeds the single query max cost limit "
                            f"({MAX_QUERY_COST}).\n\nSee {RATE_DOCS} for more information on how the\n"
                            "cost of a query is calculated.\n\nTo query larger amounts of data with fewer "
                            "limits, bulk operations should be used instead.\nSee "
                            "https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage "
                            "details.\n"),
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_QUERY_COST,
                               "documentation": RATE_DOCS}}]}
        ok, available = self.bucket.take(token, requested, speed, enabled)
        if not ok:
            # Shopify's throttled answer: HTTP 200, no data, `THROTTLED`, the bucket in extensions.
            return {"errors": [{"message": "Throttled",
                                "extensions": {"code": "THROTTLED", "documentation": RATE_DOCS}}],
                    "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None,
                                            "throttleStatus": self.bucket.status(token, available, speed)}}}
        ctx = Context(self, token, host)
        with no_gc():
            result = execute(self.schema, doc, root_value=Obj(
                "Mutation" if op.operation.value == "mutation" else "QueryRoot", {}),
                context_value=ctx, variable_values=variables, operation_name=operation_name,
                field_resolver=self.resolve, type_resolver=self.resolve_type, is_awaitable=_never)
        actual = min(requested, calc.operation(op, result.data, actual=True)) if result.data else 0
        if op.operation.value == "mutation":
            actual = requested
        available = self.bucket.refund(token, requested - actual, speed)
        out: dict[str, Any] = {}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        out["data"] = result.data
        ext: dict[str, Any] = {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                                        "throttleStatus": self.bucket.status(token, available, speed)}}
        if ctx.search:
            ext["search"] = ctx.search
        out["extensions"] = ext
        return out

    def document(self, source: str) -> tuple[DocumentNode, list[GraphQLError]]:
        """Parsed and validated once per distinct document (a client sends the same few again and again)."""
        hit = self._docs.get(source)
        if hit is None:
            doc = parse(source)
            hit = (doc, validate(self.schema, doc))
            if len(self._docs) >= 256:
                self._docs.pop(next(iter(self._docs)))
            self._docs[source] = hit
        return hit

    def _cost(self, requested: int, actual: int, token: str, speed: float) -> dict[str, Any]:
        _, available = self.bucket.take(token, 0, speed, False)
        return {"requestedQueryCost": requested, "actualQueryCost": actual,
                "throttleStatus": self.bucket.status(token, available, speed)}

    @staticmethod
    def _operation(doc: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
        ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
        if name:
            return next((o for o in ops if o.name and o.name.value == name), None)
        return ops[0] if len(ops) == 1 else None

    @staticmethod
    def _fragments(doc: DocumentNode) -> dict[str, FragmentDefinitionNode]:
        return {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}

    # -- resolution ----------------------------------------------------------------------------
    @staticmethod
    def resolve_type(value: Any, info: GraphQLResolveInfo, abstract: Any) -> str | None:
        return value.type if isinstance(value, Obj) else None

    def resolve(self, source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        if isinstance(source, Obj):
            key = (source.type, info.field_name)
            plan = self._plans.get(key)
            if plan is None:
                plan = self._plans[key] = (SCOPES.get(key), self.fields.get(source.type, {}).get(info.field_name),
                                           snake(info.field_name))
            need, fn, rest_key = plan
            if need is not None and need not in info.context.scopes:
                raise access_denied(info.field_name, need)
            rec = source.rec
            if fn is not None:
                value = fn(source, info, **args)
            elif type(rec) is not dict:
                value = None
            elif rest_key == "id":
                value = rec.get("admin_graphql_api_id") or gid(source.type, rec.get("id"))
            elif rest_key == "legacy_resource_id":
                value = str(rec.get("id"))
            else:
                value = rec.get(rest_key, rec.get(info.field_name))
            return self._coerce(value, info.return_type)
        if isinstance(source, dict):
            return self._coerce(source.get(info.field_name), info.return_type)
        return None

    def _coerce(self, value: Any, return_type: Any) -> Any:
        if value is None or type(value) is Obj:
            return value
        mode = self._modes.get(return_type)
        if mode is None:
            named = get_named_type(return_type)
            if isinstance(named, GraphQLEnumType):
                mode = ("enum", None)
            elif named.name == "DateTime":
                mode = ("time", None)
            elif isinstance(named, GraphQLObjectType) and not (
                    named.name.endswith("Connection") or named.name.endswith("Payload")):
                mode = ("object", named.name)
            elif isinstance(named, GraphQLObjectType):
                mode = ("list-object", named.name)
            else:
                mode = ("plain", None)
            self._modes[return_type] = mode
        kind, name = mode
        if kind == "plain":
            return value
        if kind == "enum":
            if isinstance(value, list):
                return [v.upper() if isinstance(v, str) else v for v in value]
            return value.upper() if isinstance(value, str) else value
        if kind == "time":
            return utc(value) if isinstance(value, str) else value
        if isinstance(value, list):
            return [Obj(name, v) if isinstance(v, dict) else v for v in value]
        if kind == "object" and isinstance(value, dict):
            return Obj(name, value)
        return value

    def field(self, type_: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.fields.setdefault(type_, {})[name] = fn
            return fn

        return deco

    # -- connections ---------------------------------------------------------------------------
    def connection(self, info: GraphQLResolveInfo, keyed: list[tuple[tuple[Any, ...], Any]], args: dict[str, Any],
                   make: Callable[[Any], Any], *, presorted: bool = False) -> dict[str, Any]:
        """A Relay connection over (sort key, item) pairs, with Shopify's first/last/after/before rules."""
        first, last = args.get("first"), args.get("last")
        after, before, reverse = args.get("after"), args.get("before"), bool(args.get("reverse"))
        bulk = _ctx(info).bulk
        if not bulk:
            if first is None and last is None:
                raise GraphQLError("you must provide one of first or last")
            if first is not None and last is not None:
                raise GraphQLError("providing both first and last is not supported")
            for name, n in (("first", first), ("last", last)):
                if n is not None and not 0 <= n <= MAX_PAGE:
                    # Shopify's wording for an out-of-range page size; not in the docs we found.
                    raise GraphQLError(f"The {name} argument must be between 0 and {MAX_PAGE}.",
                                       extensions={"code": "BAD_REQUEST"})
        if not presorted:
            keyed.sort(key=lambda kv: kv[0])
        keys = _Keys(keyed)
        n = len(keyed)
        # Positions [lo, hi) in the walk order (ascending keys, or descending when reverse).
        lo, hi = 0, n
        if after is not None:
            c = decode_cursor(after)
            lo = n - bisect.bisect_left(keys, c) if reverse else bisect.bisect_right(keys, c)
        if before is not None:
            c = decode_cursor(before)
            hi = n - bisect.bisect_right(keys, c) if reverse else bisect.bisect_left(keys, c)
        hi = max(lo, hi)
        if bulk or (first is None and last is None):
            start, end = lo, hi
        elif first is not None:
            start, end = lo, min(hi, lo + first)
        else:
            start, end = max(lo, hi - last), hi
        picked = [keyed[n - 1 - i] for i in range(start, end)] if reverse else keyed[start:end]
        edges = [{"cursor": encode_cursor(k), "node": make(item)} for k, item in picked]
        return {
            "edges": edges,
            "nodes": [e["node"] for e in edges],
            "pageInfo": {"hasNextPage": end < n, "hasPreviousPage": start > 0,
                         "startCursor": edges[0]["cursor"] if edges else None,
                         "endCursor": edges[-1]["cursor"] if edges else None},
        }

    def search(self, info: GraphQLResolveInfo, raw: str | None, fields: dict[str, gs.FieldTest],
               text: Callable[[Any], str] | None) -> Callable[[Any], bool] | None:
        return self._search(info, raw, fields, text).matcher(fields, text)

    def _search(self, info: GraphQLResolveInfo, raw: str | None, fields: dict[str, gs.FieldTest],
                text: Callable[[Any], str] | None) -> gs.Search:
        s = gs.parse_search(raw, set(fields))
        if s.warnings:
            _ctx(info).search.append({"path": [info.path.key], "query": raw, "warnings": s.warnings})
        return s

    def _candidates(self, table: Any, search: gs.Search) -> list[Any]:
        """The ids to test, in id order: those the table's change index finds for the query's
        `updated_at:>`/`>=` bound (a read of changes), else every id. Each table served here keeps its
        records' `updated_at` as its change time (`changed(kind)` in graphql_resolvers)."""
        found = table.ids_changed(*search.lower_bounds("updated_at"))
        return table.ids if found is None else found

    def table_connection(self, info: GraphQLResolveInfo, table: Any, args: dict[str, Any], type_: str,
                         fields: dict[str, gs.FieldTest], text: Callable[[Any], str] | None,
                         sort_keys: dict[str, Callable[[Any], Any]], extra: Callable[[Any], bool] | None = None
                         ) -> dict[str, Any]:
        """A top-level connection over one REST table: `query` filter, `sortKey`, paging.

        The filtered, sorted (key, record) list is cached per table version, query, sort and scopes,
        so walking 100k records page by page does not filter and sort them again for every page."""
        search = self._search(info, args.get("query"), fields, text)
        match = search.matcher(fields, text)
        sort = args.get("sortKey") or "ID"
        ckey = (table.name, id(table), getattr(table, "mod", None), sort, args.get("query") or "",
                frozenset(_ctx(info).scopes) if extra is not None else None)
        keyed = self._sorted.get(ckey) if ckey[2] is not None else None
        if keyed is None:
            key_of = sort_keys.get(sort, sort_keys["ID"])
            rows = table.rows
            keyed = []
            for rid in self._candidates(table, search):
                r = rows[rid]
                if (match is None or match(r)) and (extra is None or extra(r)):
                    keyed.append(((key_of(r), rid) if sort != "ID" else (rid,), r))
            if sort != "ID":
                keyed.sort(key=lambda kv: kv[0])
            if len(self._sorted) >= 8:
                self._sorted.pop(next(iter(self._sorted)))
            self._sorted[ckey] = keyed
        return self.connection(info, keyed, args, lambda r: Obj(type_, r), presorted=True)

    def table_count(self, info: GraphQLResolveInfo, table: Any, args: dict[str, Any],
                    fields: dict[str, gs.FieldTest], text: Callable[[Any], str] | None,
                    extra: Callable[[Any], bool] | None = None) -> dict[str, Any]:
        """`<x>Count(query:, limit:)`: the matching records, counted up to `limit` (default 10,000;
        null: no limit), with precision AT_LEAST when the limit cut it short (Count object, 2026-07)."""
        search = self._search(info, args.get("query"), fields, text)
        match = search.matcher(fields, text)
        limit = args.get("limit", 10_000)
        n = 0
        for rid in self._candidates(table, search):
            r = table.rows[rid]
            if (match is None or match(r)) and (extra is None or extra(r)):
                n += 1
                if limit is not None and n > limit:
                    return {"count": limit, "precision": "AT_LEAST"}
        return {"count": n, "precision": "EXACT"}

    def list_connection(self, info: GraphQLResolveInfo, items: Iterable[Any], args: dict[str, Any],
                        make: Callable[[Any], Any]) -> dict[str, Any]:
        keyed = [((i,), it) for i, it in enumerate(items)]
        return self.connection(info, keyed, args, make, presorted=True)

    # -- lookups ---------------------------------------------------------------------------------
    def node(self, info: GraphQLResolveInfo, value: Any) -> Obj | None:
        parsed = parse_gid(value)
        if parsed is None:
            raise GraphQLError(f"Invalid global id '{value}'", extensions={"code": "argumentLiteralsIncompatible"})
        kind, rid = parsed
        need = NODE_SCOPES.get(kind)
        if need is not None and need not in _ctx(info).scopes:
            raise access_denied(info.field_name, need)
        app = self.app
        if kind == "Customer":
            rec = app.customers.get(rid)
        elif kind == "Product":
            rec = app.products.get(rid)
        elif kind == "Order":
            rec = app.orders.get(rid)
            if rec is not None and not self._order_visible(info, rec):
                rec = None
        elif kind == "Location":
            rec = app.locations.get(rid)
        elif kind == "ProductVariant":
            found = app._variant(rid)
            return Obj("ProductVariant", found[1]) if found else None
        elif kind == "InventoryItem":
            return self.inventory_item(rid)
        elif kind == "InventoryLevel":
            rec = app.levels.get(rid)
        elif kind == "BulkOperation":
            op = self.bulk_ops.get(rid)
            return Obj("BulkOperation", self._bulk_view(op)) if op else None
        elif kind == "WebhookSubscription":
            rec = self.webhooks.get(rid)
        else:
            rec = None
        return Obj(kind, rec) if rec is not None else None

    def inventory_item(self, item: int) -> Obj | None:
        pv = self.app.item_index.get(item)
        if pv is None:
            return None
        found = self.app._variant(pv[1])
        if found is None:
            return None
        product, variant = found
        return Obj("InventoryItem", {
            "id": item, "admin_graphql_api_id": gid("InventoryItem", item), "sku": variant.get("sku"),
            "tracked": variant.get("inventory_management") == "shopify",
            "requires_shipping": variant.get("requires_shipping", True),
            "created_at": variant.get("created_at"), "updated_at": variant.get("updated_at"),
            "_variant": variant, "_product": product})

    def _order_visible(self, info: GraphQLResolveInfo, rec: dict[str, Any]) -> bool:
        """Without `read_all_orders` an app sees only the last 60 days of orders (Shopify's rule:
        shopify.dev/docs/api/usage/access-scopes#orders-permissions)."""
        if "read_all_orders" in _ctx(info).scopes:
            return True
        created = self.app.created["orders"].get(rec["id"])
        return created is None or created >= self.app.now() - timedelta(days=ALL_ORDERS_DAYS)

    # -- registration ----------------------------------------------------------------------------
    def _register(self) -> None:
        from talk_assets.systems.shopify import graphql_mutations, graphql_resolvers

        graphql_resolvers.register(self)
        graphql_mutations.register(self)

    # -- bulk ------------------------------------------------------------------------------------
    def _bulk_view(self, op: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in op.items() if not k.startswith("_")}

    def bulk_file(self, name: str) -> bytes | None:
        return self.bulk_files.get(name)

    def new_bulk_id(self) -> int:
        bid = self.next_bulk
        self.next_bulk += 1
        return bid

    def start_thread(self, target: Callable[[], None]) -> None:
        threading.Thread(target=target, name=f"shopify-bulk-{uuid.uuid4().hex[:6]}", daemon=True).start()


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a document runs: a big seeded shop is millions of
    objects, and a full collection triggered by the answer's allocations would scan them all (the
    answer itself creates no cycles). The previous state is restored afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _never(value: Any) -> bool:
    """Resolvers here are synchronous: skip graphql-core's awaitable check on every value."""
    return False


def access_denied(field_name: str, scope: str) -> GraphQLError:
    """Shopify's ACCESS_DENIED error for a field the token's scopes do not cover."""
    required = f"`{scope}` access scope."
    return GraphQLError(f"Access denied for {field_name} field. Required access: {required}",
                        extensions={"code": "ACCESS_DENIED", "documentation": SCOPE_DOCS,
                                    "requiredAccess": required})


# -- hooks for the REST app ------------------------------------------------------------------------
class CountingTable(Table):
    """A sandbox table that counts its writes, so a GraphQL connection can keep its filtered and
    sorted id list between pages (cursor paging over 100k records) until the table changes."""

    def __init__(self, name: str, id_field: str = "id") -> None:
        super().__init__(name, id_field)
        self.mod = 0

    def put(self, record: Record, changed: datetime, rid: Any = None) -> Record:
        self.mod += 1
        return super().put(record, changed, rid)

    def load(self, records: list[Record], changed: list[datetime]) -> None:
        self.mod += 1
        super().load(records, changed)

    def delete(self, rid: Any) -> Record | None:
        self.mod += 1
        return super().delete(rid)


_route = threading.local()


def mark_request(path: str) -> None:
    """Remember, for this request's thread, whether it is a GraphQL (or bulk-file) request: those are
    limited by query cost, not by the REST bucket (Shopify keeps the two limits apart)."""
    _route.graphql = "/graphql.json" in path or path.startswith("/bulk-results/")


class RestBucket:
    """Mixin for the REST leaky bucket: GraphQL requests pass without taking a REST slot."""

    def admit(self) -> tuple[bool, dict[str, str]]:
        if getattr(_route, "graphql", False):
            return True, {}
        return super().admit()  # type: ignore[misc, no-any-return]


def control(api: GraphQLApi, sub: str, method: str, body: dict[str, Any], default_token: str) -> Response | None:
    """`/_sandbox/graphql/...`: scopes per token, bucket settings, bulk faults (None: not ours).

    - `PUT graphql/scopes {"token"?: ..., "scopes": [...] | null}` sets (null: resets to all) a
      token's granted scopes; `GET graphql/scopes` lists them.
    - `PUT graphql/cost {"bucket_size"?: n, "restore_rate"?: n}` sets the cost bucket (points,
      points per second before the speed factor); the buckets refill.
    - `PUT graphql/bulk {"next": "fail" | "stall" | null}`; `POST graphql/bulk/release`.
    """
    if sub == "graphql/scopes":
        if method in ("PUT", "POST"):
            token = body.get("token") or default_token
            scopes = body.get("scopes")
            if scopes is None:
                api.token_scopes.pop(token, None)
            else:
                if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                    raise HttpError(400, "scopes must be a list of scope handles", field="scopes")
                api.token_scopes[token] = list(scopes)
        return Response(200, {"default": list(ALL_SCOPES), "tokens": {
            ("(configured token)" if t == default_token else t[:4] + "..."): s for t, s in api.token_scopes.items()}})
    if sub == "graphql/cost":
        if method in ("PUT", "POST"):
            if "bucket_size" in body:
                api.bucket.size = float(body["bucket_size"])
            if "restore_rate" in body:
                api.bucket.restore_rate = float(body["restore_rate"])
            api.bucket.reset()
        return Response(200, {"bucket_size": api.bucket.size, "restore_rate": api.bucket.restore_rate,
                              "max_query_cost": MAX_QUERY_COST})
    if sub == "graphql/bulk":
        if method in ("PUT", "POST"):
            mode = body.get("next")
            if mode not in (None, "fail", "stall"):
                raise HttpError(400, "next must be 'fail', 'stall' or null", field="next")
            if mode is None:
                api.bulk_fault.pop("next", None)
            else:
                api.bulk_fault["next"] = mode
        return Response(200, {"next": api.bulk_fault.get("next"), "operations": [
            api._bulk_view(op) for op in api.bulk_ops.values()]})
    if sub == "graphql/bulk/release" and method == "POST":
        for op in api.bulk_ops.values():
            op["_release"].set()
        return Response(200, {"released": True})
    return None
