"""Shopify's GraphQL Admin API schema (2026-07), loaded once per process.

The file is Shopify's own introspection result (see `schema/README.md` for origin and licence). It
is big (11 MB unpacked, about a second to build), so the `GraphQLSchema` is built once and cached;
both the sandbox (which executes against it) and the client's document tests use this one object.
"""

from __future__ import annotations

import gzip
import json
import threading
from functools import lru_cache
from pathlib import Path

from graphql import GraphQLSchema, build_client_schema, parse, validate

SCHEMA_FILE = Path(__file__).with_name("schema") / "admin-graphql-2026-07.introspection.json.gz"
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _build() -> GraphQLSchema:
    with gzip.open(SCHEMA_FILE, "rt", encoding="utf-8") as f:
        doc = json.load(f)
    schema = build_client_schema(doc["data"])
    # Shopify marks some interface implementations deprecated, which graphql-core's strict schema
    # check refuses; the schema is Shopify's, so its own shape wins (reference README).
    schema._validation_errors = []  # type: ignore[attr-defined]
    return schema


def admin_schema() -> GraphQLSchema:
    """The cached schema (thread-safe first build: sandbox threads may ask at once)."""
    with _lock:
        return _build()


def validate_document(source: str) -> list[str]:
    """Validation messages for a GraphQL document against the 2026-07 schema (empty when valid)."""
    return [e.message for e in validate(admin_schema(), parse(source))]
