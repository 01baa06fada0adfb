"""OpenAPI 3.1 documents of the custom APIs, generated from their pydantic models.

`python -m talk_assets.systems.customapi.openapi` rewrites the committed
`customcrm/openapi.json` and `customwebshop/openapi.json`; a test checks they match the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from talk_assets.systems.customapi.spec import EntitySpec, SystemSpec
from talk_assets.systems.customapi.types import ErrorBody, Summary

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _json(_ref("ErrorBody"), description, headers)


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


ETAG = _header('The record\'s version, quoted: "3". Send it back in If-Match.')
RATE_HEADERS = {"X-RateLimit-Limit": _header("Requests allowed per second (50)."),
                 "X-RateLimit-Remaining": _header("Requests left in the current second.")}
ERRORS = {
    "401": _error("Missing or wrong API key (code unauthorized)."),
    "429": _error("More than 50 requests in a second (code rate_limited).",
                  {"Retry-After": _header("Seconds to wait, may be fractional.")}),
}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
            "description": 'Optimistic lock: the ETag last read ("3"). 412 if the record has changed since.'}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}


def _entity_paths(spec: SystemSpec, e: EntitySpec) -> dict[str, Any]:
    model = e.model.__name__
    label = e.name
    ok_record = _json(_ref(model), f"The {label} record.", {"ETag": ETAG, **RATE_HEADERS})
    list_params = [
        {"name": "updated_since", "in": "query", "required": False,
         "schema": {"type": "string", "format": "date-time"},
         "description": "Only records with updated_at at or after this time (inclusive)."},
        {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Opaque next_cursor of the previous page (it carries the updated_since filter)."},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
    ]
    page = {"type": "object", "required": ["data", "next_cursor"], "properties": {
        "data": {"type": "array", "items": _ref(model)},
        "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}],
                        "description": "null on the last page."}}}
    bad_body = {"400": _error("The body is missing, not valid JSON or not a JSON object (code validation_error).")}
    write_errors = {
        "409": _error("A unique field (" + (", ".join(e.unique) or "none") + ") is already used (code conflict)."),
        "422": _error("Invalid body; error.field names the field (code validation_error)."),
    }
    not_found = {"404": _error(f"No such {label} (code not_found).")}
    stale = {"412": _error("If-Match is stale (code precondition_failed); the ETag header has the current "
                           "version.", {"ETag": ETAG})}
    body = {"required": True, "content": {"application/json": {"schema": _ref(model)}}}
    patch_body = {"required": True, "content": {"application/merge-patch+json": {"schema": _ref(model)},
                                                "application/json": {"schema": _ref(model)}}}
    tag = [label]
    return {
        f"{spec.root}/{label}": {
            "get": {"operationId": f"list_{label}", "tags": tag, "summary": f"List {label} in id order",
                    "description": e.description, "parameters": list_params,
                    "responses": {"200": _json(page, "A page.", RATE_HEADERS),
                                  "400": _error("Bad limit, cursor or updated_since."), **ERRORS}},
            "post": {"operationId": f"create_{label}", "tags": tag, "summary": f"Create a {label} record",
                     "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                     "schema": {"type": "string"},
                                     "description": "A repeat with the same key (and body) returns the first "
                                                    "result instead of creating a duplicate."}],
                     "requestBody": body,
                     "responses": {"201": _json(_ref(model), "Created.", {"ETag": ETAG, "Location": _header(
                         "Path of the new record.")}), **bad_body, **write_errors, **ERRORS}},
        },
        f"{spec.root}/{label}/_summary": {
            "get": {"operationId": f"summary_{label}", "tags": tag,
                    "summary": "Count and newest updated_at: a cheap probe that changes when the data changes",
                    "responses": {"200": _json(_ref("Summary"), "The summary."), **ERRORS}},
        },
        f"{spec.root}/{label}/{{id}}": {
            "parameters": [ID],
            "get": {"operationId": f"get_{label}", "tags": tag, "summary": f"Get one {label} record",
                    "responses": {"200": ok_record, **not_found, **ERRORS}},
            "put": {"operationId": f"replace_{label}", "tags": tag,
                    "summary": "Replace the record (omitted fields become null)", "parameters": [IF_MATCH],
                    "requestBody": body,
                    "responses": {"200": ok_record, **bad_body, **not_found, **stale, **write_errors, **ERRORS}},
            "patch": {"operationId": f"patch_{label}", "tags": tag,
                      "summary": "Change some fields (JSON merge patch, RFC 7396)", "parameters": [IF_MATCH],
                      "requestBody": patch_body,
                      "responses": {"200": ok_record, **bad_body, **not_found, **stale, **write_errors, **ERRORS}},
            "delete": {"operationId": f"delete_{label}", "tags": tag, "summary": f"Delete a {label} record",
                       "parameters": [IF_MATCH],
                       "responses": {"204": {"description": "Deleted."}, **not_found, **stale, **ERRORS}},
        },
    }


def build_openapi(spec: SystemSpec) -> dict[str, Any]:
    from talk_assets.systems.customapi.webhooks import openapi_webhooks

    """The OpenAPI 3.1 document of `spec` (deterministic: same code, same document)."""
    models = [(e.model, "validation") for e in spec.entities] + [(Summary, "validation"),
                                                                   (ErrorBody, "validation")]
    _, defs = models_json_schema(models, ref_template=REF)
    paths: dict[str, Any] = {}
    for e in spec.entities:
        paths.update(_entity_paths(spec, e))
    if spec.auth == "bearer":
        scheme: dict[str, Any] = {"type": "http", "scheme": "bearer", "description": "The API key as a bearer token."}
    else:
        scheme = {"type": "apiKey", "in": "header", "name": spec.auth_header}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{spec.title} API", "version": spec.version,
                 "description": f"The {spec.title} REST API as talk-assets expects it. Timestamps are ISO 8601 "
                                "UTC with milliseconds; every write bumps version and updated_at."},
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "webhooks": openapi_webhooks(spec),  # Standard Webhooks notifications (webhooks.py)
        "components": {"schemas": defs.get("$defs", {}), "securitySchemes": {"apiKey": scheme}},
    }


def render(spec: SystemSpec) -> str:
    return json.dumps(build_openapi(spec), indent=2, ensure_ascii=False) + "\n"


def spec_path(spec: SystemSpec) -> Path:
    return Path(__file__).resolve().parent.parent / spec.key / "openapi.json"


def main() -> None:
    from talk_assets.systems.customcrm.spec import SPEC as CRM
    from talk_assets.systems.customwebshop.spec import SPEC as WEBSHOP

    for spec in (CRM, WEBSHOP):
        spec_path(spec).write_text(render(spec), encoding="utf-8")
        print(f"wrote {spec_path(spec)}")


if __name__ == "__main__":
    main()
