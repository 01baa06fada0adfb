"""Bulk query operations of the Shopify GraphQL sandbox.

From Shopify's bulk-operations guide (shopify.dev/docs/api/usage/bulk-operations/queries) and the
schema's own text: `bulkOperationRunQuery(query:)` starts an operation that runs the query in the
background without cost limits or page sizes; it must include at least one connection, at most five,
nested at most two levels deep. One bulk query operation runs per shop at a time (a second gets the
`OPERATION_IN_PROGRESS` userError). Status goes CREATED -> RUNNING -> COMPLETED (or FAILED,
CANCELING -> CANCELED); the result is a JSONL file at `url`, one line per object, where an object of
a nested connection is its own line with `__parentId` naming its parent's id (which the query must
select). `objectCount` counts all lines, `rootObjectCount` the top-level ones.

The sandbox serves the file at `/bulk-results/<token>.jsonl` without credentials (Shopify's URL is a
signed storage link, also usable without the access token). The control API can make the next
operation fail or stall: `PUT /_sandbox/graphql/bulk {"next": "fail" | "stall" | null}`,
`POST /_sandbox/graphql/bulk/release` lets a stalled one finish.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC
from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLResolveInfo,
    OperationDefinitionNode,
    execute,
    get_named_type,
)

from talk_assets.systems.shopify.graphql_cost import is_connection
from talk_assets.systems.shopify.graphql_sandbox import Context, Obj, _never, gid, parse_gid

if TYPE_CHECKING:
    from talk_assets.systems.shopify.graphql_sandbox import GraphQLApi

MAX_CONNECTIONS = 5
MAX_DEPTH = 2


def _now(api: GraphQLApi) -> str:
    return api.app.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_query(api: GraphQLApi, source: str, validate: Any, parse: Any) -> tuple[Any, str | None]:
    """(parsed document, None) or (None, the userError message) for a bulk query."""
    try:
        doc = parse(source)
    except GraphQLError as err:
        return None, f"Invalid bulk query: {err.message}"
    errors = validate(api.schema, doc)
    if errors:
        return None, f"Invalid bulk query: {errors[0].message}"
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if len(ops) != 1 or ops[0].operation.value != "query":
        return None, "Invalid bulk query: the document must contain exactly one query operation"
    count = 0
    deepest = 0

    def walk(sel: Any, parent: Any, depth: int) -> None:
        nonlocal count, deepest
        for s in sel.selections if sel else ():
            if not isinstance(s, FieldNode) or s.name.value.startswith("__"):
                continue
            fdef = parent.fields.get(s.name.value) if hasattr(parent, "fields") else None
            if fdef is None:
                continue
            t = get_named_type(fdef.type)
            d = depth
            if is_connection(t):
                count += 1
                d = depth + 1
                deepest = max(deepest, d)
            if s.selection_set:
                walk(s.selection_set, t, d)

    walk(ops[0].selection_set, api.schema.query_type, 0)
    if count == 0:
        return None, "Bulk queries must contain at least one connection."
    if count > MAX_CONNECTIONS:
        return None, f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections."
    if deepest > MAX_DEPTH + 1:
        return None, f"Bulk queries cannot contain connections with a nesting depth greater than {MAX_DEPTH}."
    return doc, None


def flatten(conn: Any, parent_id: str | None, out: list[str]) -> int:
    """Write one connection's nodes (and, recursively, their nested connections) as JSONL lines."""
    if not isinstance(conn, dict):
        return 0
    items = conn.get("nodes") if isinstance(conn.get("nodes"), list) else [
        e.get("node") for e in conn.get("edges") or [] if isinstance(e, dict)]
    roots = 0
    for node in items:
        if not isinstance(node, dict):
            continue
        roots += 1
        line: dict[str, Any] = {}
        children = []
        for k, v in node.items():
            if isinstance(v, dict) and ("edges" in v or "nodes" in v):
                children.append(v)
            else:
                line[k] = v
        if parent_id is not None:
            line["__parentId"] = parent_id
        out.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
        for c in children:
            flatten(c, node.get("id"), out)
    return roots


def register(api: GraphQLApi, validate: Any, parse: Any) -> None:
    app = api.app
    f = api.field

    def running() -> dict[str, Any] | None:
        return next((op for op in api.bulk_ops.values()
                     if op["type"] == "QUERY" and op["status"] in ("CREATED", "RUNNING", "CANCELING")), None)

    def run(op: dict[str, Any], doc: Any, token: str, host: str, mode: str | None) -> None:
        release: threading.Event = op["_release"]
        with app.lock:
            if op["status"] == "CREATED":
                op["status"] = "RUNNING"
        if mode == "stall":
            release.wait()
        with app.lock:
            if op["status"] in ("CANCELING", "CANCELED"):
                op["status"] = "CANCELED"
                op["completed_at"] = _now(api)
                return
            if mode == "fail":
                op.update(status="FAILED", error_code="INTERNAL_SERVER_ERROR", completed_at=_now(api))
                return
            ctx = Context(api, token, host, bulk=True)
            result = execute(api.schema, doc, root_value=Obj("QueryRoot", {}), context_value=ctx,
                             field_resolver=api.resolve, type_resolver=api.resolve_type, is_awaitable=_never)
            if result.errors:
                denied = any((e.extensions or {}).get("code") == "ACCESS_DENIED" for e in result.errors)
                op.update(status="FAILED", error_code="ACCESS_DENIED" if denied else "INTERNAL_SERVER_ERROR",
                          completed_at=_now(api))
                return
            lines: list[str] = []
            roots = 0
            for value in (result.data or {}).values():
                roots += flatten(value, None, lines)
            payload = ("\n".join(lines) + "\n").encode() if lines else b""
            name = uuid.uuid4().hex
            api.bulk_files[name] = payload
            op.update(status="COMPLETED", completed_at=_now(api), object_count=str(len(lines)),
                      root_object_count=str(roots), file_size=str(len(payload)),
                      url=f"http://{host}/bulk-results/{name}.jsonl" if lines else None)

    @f("Mutation", "bulkOperationRunQuery")
    def run_query(src: Obj, info: GraphQLResolveInfo, query: str, groupObjects: bool = False) -> Any:  # noqa: N803
        ctx: Context = info.context
        busy = running()
        if busy is not None:
            return {"bulkOperation": None, "userErrors": [{
                "field": None, "code": "OPERATION_IN_PROGRESS",
                "message": f"A bulk query operation for this app and shop is already in progress: "
                           f"{busy['admin_graphql_api_id']}."}]}
        doc, problem = check_query(api, query, validate, parse)
        if problem is not None:
            return {"bulkOperation": None, "userErrors": [{"field": ["query"], "code": "INVALID", "message": problem}]}
        bid = api.new_bulk_id()
        op: dict[str, Any] = {
            "id": bid, "admin_graphql_api_id": gid("BulkOperation", bid), "status": "CREATED", "type": "QUERY",
            "query": query, "object_count": "0", "root_object_count": "0", "file_size": None, "url": None,
            "partial_data_url": None, "created_at": _now(api), "completed_at": None, "error_code": None,
            "_release": threading.Event()}
        api.bulk_ops[bid] = op
        mode = api.bulk_fault.pop("next", None)
        api.start_thread(lambda: run(op, doc, ctx.token, ctx.host, mode))
        return {"bulkOperation": Obj("BulkOperation", api._bulk_view(op)), "userErrors": []}

    @f("Mutation", "bulkOperationCancel")
    def cancel(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        p = parse_gid(id)
        op = api.bulk_ops.get(p[1]) if p and p[0] == "BulkOperation" else None
        if op is None:
            return {"bulkOperation": None, "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}]}
        if op["status"] not in ("CREATED", "RUNNING"):
            return {"bulkOperation": Obj("BulkOperation", api._bulk_view(op)), "userErrors": [{
                "field": None, "message": f"A bulk operation cannot be canceled when it is {op['status'].lower()}"}]}
        op["status"] = "CANCELING"
        op["_release"].set()
        return {"bulkOperation": Obj("BulkOperation", api._bulk_view(op)), "userErrors": []}

    @f("QueryRoot", "currentBulkOperation")
    def current(src: Obj, info: GraphQLResolveInfo, type: str = "QUERY") -> Any:  # noqa: A002
        ops = [op for op in api.bulk_ops.values() if op["type"] == (type or "QUERY")]
        return Obj("BulkOperation", api._bulk_view(ops[-1])) if ops else None

    @f("QueryRoot", "bulkOperation")
    def one(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        p = parse_gid(id)
        op = api.bulk_ops.get(p[1]) if p and p[0] == "BulkOperation" else None
        return Obj("BulkOperation", api._bulk_view(op)) if op else None
