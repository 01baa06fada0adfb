"""Helpers for the GraphQL sandbox tests: post a document the way any HTTP client would."""

from __future__ import annotations

from typing import Any

import requests

from .conftest import API, TOKEN, Shop


def gql(shop: Shop, query: str, variables: dict[str, Any] | None = None, *, token: str = TOKEN,
        expect_errors: bool = False) -> dict[str, Any]:
    """POST one document; fail on HTTP errors and (unless expected) on GraphQL errors."""
    resp = requests.post(f"{shop.url}{API}/graphql.json", json={"query": query, "variables": variables or {}},
                         headers={"X-Shopify-Access-Token": token}, timeout=60)
    assert resp.status_code == 200, resp.text[:2000]
    body = resp.json()
    if not expect_errors:
        assert "errors" not in body, body["errors"]
    assert "cost" in body.get("extensions", {}) or expect_errors, body
    return body


def data(shop: Shop, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return gql(shop, query, variables)["data"]


def num(gid: str) -> int:
    return int(gid.rsplit("/", 1)[-1].split("?", 1)[0])
