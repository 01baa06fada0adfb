"""Every GraphQL document the Shopify client can send is valid against Shopify's 2026-07 schema.

Offline: no sandbox. The documents live in one module (`graphql/documents.py`); the client and writer
send nothing else (checked on their source), so validating that module validates every call.
"""

from __future__ import annotations

import ast
import gzip
import json
from functools import lru_cache
from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_client_schema, parse, validate

import talk_assets.systems.shopify as shopify_pkg
from talk_assets.systems.shopify.graphql import documents as D
from talk_assets.systems.shopify.graphql.cost import SINGLE_QUERY_MAX, estimate_cost, page_size

SHOPIFY_DIR = Path(shopify_pkg.__file__).parent
SCHEMA = SHOPIFY_DIR / "schema" / "admin-graphql-2026-07.introspection.json.gz"


@lru_cache(maxsize=1)
def schema() -> GraphQLSchema:
    with gzip.open(SCHEMA, "rt", encoding="utf-8") as f:
        s = build_client_schema(json.load(f)["data"])
    s._validation_errors = []  # type: ignore[attr-defined]  # Shopify's deprecated interface fields
    return s


ALL = {**D.DOCUMENTS, **{f"bulk {k}": v for k, v in D.BULK_QUERIES.items()},
       **{f"bulk {k} filtered": D.bulk_filtered(v, k.split("_")[0], "updated_at:>'2026-01-01T00:00:00Z'")
          for k, v in D.BULK_QUERIES.items()}}


@pytest.mark.parametrize("name", sorted(ALL))
def test_document_is_valid_against_the_2026_07_schema(name: str) -> None:
    errors = validate(schema(), parse(ALL[name]))
    assert not errors, [e.message for e in errors]


def test_an_invalid_document_is_caught() -> None:
    """The check can fail: a REST-era field name is not in the GraphQL schema."""
    errors = validate(schema(), parse("query { customers(first: 1) { nodes { first_name } } }"))
    assert errors and "first_name" in errors[0].message


def _literals(path: Path) -> list[str]:
    return [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


@pytest.mark.parametrize("module", ["client.py", "writer.py"])
def test_the_client_sends_only_the_documents_module(module: str) -> None:
    """No document is written inline anywhere else, and every `D.<NAME>` the client uses exists."""
    source = SHOPIFY_DIR / module
    inline = [s for s in _literals(source) if s.lstrip().startswith(("query ", "mutation ", "query{", "{\n"))]
    assert not inline
    tree = ast.parse(source.read_text())
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name) and n.value.id == "D"}
    assert used <= set(D.DOCUMENTS) | {"BULK_QUERIES", "bulk_filtered"}, used - set(D.DOCUMENTS)
    if module == "client.py":
        # every document is sent by the client (no dead documents that escape the validation's point)
        assert set(D.DOCUMENTS) <= used | {"BULK_QUERIES"}, set(D.DOCUMENTS) - used


def test_every_bulk_query_has_no_variables_and_one_top_connection() -> None:
    """Shopify's bulk queries take no variables; the client sends them as a string argument."""
    for name, q in D.BULK_QUERIES.items():
        assert "$" not in q, name
    assert D.bulk_orders(False).count("staffMember") == 0
    assert D.bulk_orders(True).count("staffMember") == 1


def test_page_sizes_keep_the_requested_cost_under_the_single_query_maximum() -> None:
    """Pages are sized from the documented cost rules (object 1, connection 2 + first x node)."""
    for doc, extra in ((D.CUSTOMERS, {}), (D.PRODUCTS, {"variants": 20}), (D.ORDERS, {"lines": 20, "withStaff": True})):
        first = page_size(doc, extra, "first", SINGLE_QUERY_MAX)
        assert estimate_cost(doc, {**extra, "first": first}) <= SINGLE_QUERY_MAX
        assert estimate_cost(doc, {**extra, "first": first + 1}) > SINGLE_QUERY_MAX or first == 250
    assert estimate_cost(D.CUSTOMER_CREATE, {}) >= 10  # a mutation costs 10
