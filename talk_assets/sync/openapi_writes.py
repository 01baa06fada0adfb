"""Which fields of a view an API takes, read from the API's own OpenAPI document (`readOnly`).

A system declares its views' read-only and create-only fields (`View.read_only`, `View.create_only`)
from its vendor's schema with `writability`, never by hand: a field marked `readOnly` in the DTO the
API answers with cannot be updated; it can still be sent on create when the create DTO (PowerOffice's
`*PostDto`) has it. A view field the schema does not have is an error, so a renamed or misspelt
field is found when the declaration loads, not as a dead letter. Another kind of schema (Shopify's
GraphQL input types) plugs into the same two View fields with its own reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Schemas = Mapping[str, Any]


def _resolve(schemas: Schemas, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A property's schema with `$ref` and single-element `allOf` followed (readOnly kept from the outside)."""
    ro = bool(schema.get("readOnly"))
    while True:
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        elif len(schema.get("allOf") or ()) == 1:
            schema = schema["allOf"][0]
        elif "anyOf" in schema:  # pydantic's `X | None`
            schema = next((s for s in schema["anyOf"] if s.get("type") != "null"), {})
        else:
            break
        ro = ro or bool(schema.get("readOnly"))
    return {**schema, "readOnly": ro}


def _walk(schemas: Schemas, dto: str, path: list[str]) -> tuple[bool, bool]:
    """(exists, read-only) of the dotted `path` in schema `dto`; read-only if any step is."""
    schema: Mapping[str, Any] = schemas[dto]
    read_only = False
    for part in path:
        if schema.get("type") == "array" and "items" in schema:
            schema = _resolve(schemas, schema["items"])
        props = schema.get("properties") or {}
        if part not in props:
            return False, read_only
        schema = _resolve(schemas, props[part])
        read_only = read_only or bool(schema.get("readOnly"))
    return True, read_only


def writability(schemas: Schemas, fields: list[str], dto: str, create_dto: str | None = None, *,
                source: str, aliases: Mapping[str, str] | None = None,
                ) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(read_only, create_only) pairs (field, why) for a view's `fields` (dotted paths).

    `dto`: the schema the API answers with and updates apply to; `create_dto`: the create body's
    schema (default `dto`); `aliases`: a view field's name in the schema when the client renames it
    (PowerOffice's `Lines` are `SalesOrderLines`); `source`: the document, for the reasons.
    """
    aliases = aliases or {}
    read_only: list[tuple[str, str]] = []
    create_only: list[tuple[str, str]] = []
    for f in dict.fromkeys(fields):
        path = f.split(".")
        path[0] = aliases.get(path[0], path[0])
        exists, ro = _walk(schemas, dto, path)
        if not exists:
            raise ValueError(f"{f}: not a property of {dto} in {source}")
        if not ro:
            continue
        shown = ".".join(path)
        created, create_ro = _walk(schemas, create_dto, path) if create_dto else (True, ro)
        if created and not create_ro:
            create_only.append((f, f"{shown} is readOnly in {dto} ({source}): set on create ({create_dto}), "
                                   "never updated"))
        else:
            where = f", and not in {create_dto}" if create_dto else ""
            read_only.append((f, f"{shown} is readOnly in {dto} ({source}){where}: the API computes it"))
    return tuple(read_only), tuple(create_only)
