"""The generic sandbox of a custom API: CRUD with cursors, ETags, idempotent creates, merge patch.

A system's `App` subclasses `CustomApiApp`, sets `spec` and implements `build_seed(world)`
(plain dicts, shaped exactly as the models dump them). Writes are validated with the same
pydantic models the client parses, in strict JSON mode, so a type the API would reject is
rejected here too, with the offending field named.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from talk_assets.sandbox.server import (
    HttpError,
    Request,
    Response,
    SandboxApp,
    WindowLimiter,
    decode_cursor,
    encode_cursor,
)
from talk_assets.sandbox.store import Table
from talk_assets.sandbox.world import World, build_world
from talk_assets.systems.customapi import webhooks
from talk_assets.systems.customapi.spec import EntitySpec, Record, SystemSpec
from talk_assets.systems.customapi.types import format_ts

CODES = {400: "validation_error", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 412: "precondition_failed", 422: "validation_error", 429: "rate_limited"}
SeedData = dict[str, tuple[list[Record], list[datetime]]]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# RFC 3339 section 5.6 `date-time`, the spec's `format: date-time` (offset required; JSON Schema takes "T").
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def parse_since(raw: str | None) -> datetime | None:
    """The `updated_since` filter: an RFC 3339 date-time, as the spec's `format: date-time` says.

    Absent means no filter; present but empty or anything else (a date alone, no offset) is a 400,
    so a caller's bug is not silently read as "everything".
    """
    if raw is None:
        return None
    bad = HttpError(400, "updated_since must be an RFC 3339 date-time, e.g. 2026-11-23T10:00:00.000Z",
                    field="updated_since")
    if not _DATE_TIME.match(raw):
        raise bad
    try:
        ts = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
    except ValueError:  # 2026-02-30 and the like
        raise bad from None
    return ts.astimezone(UTC)


def etag(version: int) -> str:
    return f'"{version}"'


class CustomApiApp(SandboxApp):
    """A custom API from a `SystemSpec`. Subclasses set `spec` and implement `build_seed`."""

    spec: SystemSpec

    def __init__(self, seed: int = 1, size: int = 50) -> None:
        self.name = self.spec.key
        self.title = self.spec.title
        self.tables: dict[str, Table] = {}
        self.unique: dict[tuple[str, str], dict[str, int]] = {}
        self.idempotency: dict[tuple[str, str], tuple[str, Response]] = {}
        self.api_key = self.spec.api_key()  # fixed at start, like a real server's configuration
        self.webhooks = webhooks.sender(self.spec.key)  # Standard Webhooks notifications (webhooks.py)
        super().__init__(seed, size)
        # 50 requests per second, reported in X-RateLimit-Limit/-Remaining; 429 + Retry-After over it.
        self.limiter = WindowLimiter(50, 1.0, headers=True)

    # -- to implement --------------------------------------------------------------------------
    def build_seed(self, world: World) -> SeedData:
        """Every entity's records (dicts as the models dump them) and their change times."""
        raise NotImplementedError

    # -- SandboxApp ----------------------------------------------------------------------------
    def seed_data(self) -> None:
        data = self.build_seed(build_world(self.seed, self.size))
        self.tables = {}
        self.unique = {}
        self.idempotency = {}
        for e in self.spec.entities:
            records, changed = data.get(e.name, ([], []))
            table = Table(e.name)
            table.load(records, changed)
            self.tables[e.name] = table
            for f in e.unique:
                self.unique[(e.name, f)] = {
                    str(r[f]).lower(): r["id"] for r in records if r.get(f) not in (None, "")
                }

    def credentials(self) -> dict[str, str]:
        return {self.spec.auth_header: self.spec.auth_headers(self.api_key)[self.spec.auth_header]}

    def api_root(self) -> str:
        return self.spec.root

    def authenticate(self, req: Request) -> None:
        if req.path == "/openapi.json":
            return  # the API's description is public
        given = req.header(self.spec.auth_header)
        expected = self.spec.auth_headers(self.api_key)[self.spec.auth_header]
        if not given:
            raise HttpError(401, f"missing {self.spec.auth_header} header", headers=self._challenge())
        if given != expected:
            raise HttpError(401, "invalid API key", headers=self._challenge())

    def _challenge(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"} if self.spec.auth == "bearer" else {}

    def error_response(self, err: HttpError) -> Response:
        code = err.extra.get("code") or CODES.get(err.status) or ("server_error" if err.status >= 500 else "error")
        resp = Response(err.status, {"error": {"code": code, "message": err.message, "field": err.field}})
        resp.headers.update(err.extra.get("headers") or {})
        return resp

    def register_routes(self) -> None:
        self.route("GET", "/openapi.json", self.openapi, name="openapi.json")
        root = self.spec.root
        for e in self.spec.entities:
            base = f"{root}/{e.name}"
            self.route("GET", base, self._bind(self.list, e), name=base)
            self.route("POST", base, self._bind(self.create, e), name=base)
            self.route("GET", f"{base}/_summary", self._bind(self.summary, e), name=f"{base}/_summary")
            one = f"{base}/(?P<id>(?!_summary$)[^/]+)"  # _summary is its own resource (405 for PUT on it)
            for method, handler in (("GET", self.get), ("PUT", self.replace), ("PATCH", self.patch),
                                    ("DELETE", self.delete)):
                self.route(method, one, self._bind(handler, e), name=f"{base}/{{id}}")

    @staticmethod
    def _bind(fn: Callable[[EntitySpec, Request], Response], e: EntitySpec) -> Callable[[Request], Response]:
        return lambda req: fn(e, req)

    # -- handlers ------------------------------------------------------------------------------
    @cached_property
    def _openapi(self) -> dict[str, Any]:
        from talk_assets.systems.customapi.openapi import build_openapi

        return build_openapi(self.spec)

    def openapi(self, req: Request) -> Response:
        return Response(200, self._openapi)

    def list(self, e: EntitySpec, req: Request) -> Response:
        if req.arg("limit") == "":
            raise HttpError(400, "limit must be an integer between 1 and 500", field="limit")
        limit = req.int_arg("limit", 100)
        if not 1 <= limit <= 500:
            raise HttpError(400, "limit must be between 1 and 500", field="limit")
        since_raw = req.arg("updated_since")
        after = None
        token = req.arg("cursor")
        if token:
            state = decode_cursor(token)
            after = state.get("after")
            if not isinstance(after, int):
                raise HttpError(400, "invalid cursor", field="cursor")
            since_raw = state.get("since")  # a cursor carries the filter it was made with
        since = parse_since(since_raw)
        rows, more = self.tables[e.name].page(limit, after=after, changed_min=since)
        nxt = encode_cursor({"after": rows[-1]["id"], "since": since_raw}) if more and rows else None
        return Response(200, {"data": rows, "next_cursor": nxt})

    def summary(self, e: EntitySpec, req: Request) -> Response:
        table = self.tables[e.name]
        newest = table.newest_change()
        return Response(200, {"count": len(table), "max_updated_at": format_ts(newest) if newest else None})

    def get(self, e: EntitySpec, req: Request) -> Response:
        rid, rec = self._find(e, req)
        return Response(200, rec, {"ETag": etag(self.tables[e.name].version(rid))})

    def create(self, e: EntitySpec, req: Request) -> Response:
        key = req.header("Idempotency-Key")
        digest = hashlib.sha256(req.body).hexdigest()
        if key:
            seen = self.idempotency.get((e.name, key))
            if seen is not None:
                if seen[0] != digest:
                    raise HttpError(422, "Idempotency-Key was already used with a different request body",
                                    field="Idempotency-Key")
                first = seen[1]
                return Response(first.status, first.body, {**first.headers, "Idempotent-Replayed": "true"})
        table = self.tables[e.name]
        rec = self._validate(e, self._body(req))
        rid = table.new_id()
        rec["id"] = rid
        now = self._now()
        rec["created_at"] = format_ts(now)
        resp = self._store(e, rec, now)
        resp.status = 201
        resp.headers["Location"] = f"{self.spec.root}/{e.name}/{rid}"
        if key:
            self.idempotency[(e.name, key)] = (digest, Response(201, resp.body, dict(resp.headers)))
        return resp

    def replace(self, e: EntitySpec, req: Request) -> Response:
        rid, cur = self._find(e, req)
        self._check_if_match(e, req, rid)
        rec = self._validate(e, self._body(req))
        rec["id"] = rid
        rec["created_at"] = cur["created_at"]
        return self._store(e, rec, self._now(), cur)

    def patch(self, e: EntitySpec, req: Request) -> Response:
        rid, cur = self._find(e, req)
        self._check_if_match(e, req, rid)
        body = self._body(req)
        base = {k: v for k, v in cur.items() if k not in e.server_fields}
        rec = self._validate(e, merge_patch(base, {k: v for k, v in body.items() if k not in e.server_fields}))
        rec["id"] = rid
        rec["created_at"] = cur["created_at"]
        return self._store(e, rec, self._now(), cur)

    def delete(self, e: EntitySpec, req: Request) -> Response:
        rid, cur = self._find(e, req)
        self._check_if_match(e, req, rid)
        self.tables[e.name].delete(rid)
        webhooks.notify(self, e.name, "deleted", {"id": rid, "updated_at": format_ts(self._now())})
        for f in e.unique:
            if cur.get(f) not in (None, ""):
                self.unique[(e.name, f)].pop(str(cur[f]).lower(), None)
        return Response(204, None)

    # -- helpers -------------------------------------------------------------------------------
    def _now(self) -> datetime:
        now = self.now()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)  # what updated_at can say

    def _find(self, e: EntitySpec, req: Request) -> tuple[int, Record]:
        raw = req.params["id"]
        rec = self.tables[e.name].get(int(raw)) if raw.isdigit() else None
        if rec is None:
            raise HttpError(404, f"{e.name} {raw} not found")
        return rec["id"], rec

    def _body(self, req: Request) -> dict[str, Any]:
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object")
        return body

    def _check_if_match(self, e: EntitySpec, req: Request, rid: int) -> None:
        given = req.header("If-Match")
        if given is None or given.strip() == "*":
            return
        current = etag(self.tables[e.name].version(rid))
        tags = [t.strip().removeprefix("W/") for t in given.split(",")]
        if current not in tags:
            raise HttpError(412, f"{e.name} {rid} has changed: current version is {current}, If-Match was {given}",
                            headers={"ETag": current})

    def _validate(self, e: EntitySpec, body: dict[str, Any]) -> Record:
        """The stored form of a request body: server fields dropped, types checked strictly."""
        data = {k: v for k, v in body.items() if k not in e.server_fields}
        unknown = [k for k in data if k not in e.model.model_fields]
        if unknown:
            raise HttpError(422, f"{unknown[0]}: unknown field", field=unknown[0])
        try:
            model = e.model.model_validate_json(json.dumps(data), strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            msg = first["msg"].removeprefix("Value error, ")
            raise HttpError(422, f"{loc}: {msg}", field=loc or None) from None
        return model.model_dump(mode="json")

    def _store(self, e: EntitySpec, rec: Record, now: datetime, cur: Record | None = None) -> Response:
        """Check references and uniqueness, fill computed fields, write, answer with the ETag."""
        if e.finalize:
            e.finalize(rec)
        for f, target in e.refs.items():
            if rec.get(f) is not None and self.tables[target].get(rec[f]) is None:
                raise HttpError(422, f"{f}: {target} {rec[f]} does not exist", field=f)
        for f in e.unique:
            value = rec.get(f)
            if value in (None, ""):
                continue
            owner = self.unique[(e.name, f)].get(str(value).lower())
            if owner is not None and owner != rec["id"]:
                raise HttpError(409, f"{f}: {value!r} is already used by {e.name} {owner}", field=f)
        for f in e.unique:
            index = self.unique[(e.name, f)]
            if cur is not None and cur.get(f) not in (None, ""):
                index.pop(str(cur[f]).lower(), None)
            if rec.get(f) not in (None, ""):
                index[str(rec[f]).lower()] = rec["id"]
        rec["updated_at"] = format_ts(now)
        table = self.tables[e.name]
        rec["version"] = table.version(rec["id"]) + 1
        table.put(rec, now)
        webhooks.notify(self, e.name, "created" if cur is None else "updated", rec)
        return Response(200, rec, {"ETag": etag(rec["version"])})
