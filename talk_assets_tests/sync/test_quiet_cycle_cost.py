"""What a quiet cycle spends its time on (issue #15): work that does not depend on the data is done once.

Measured at the default sandbox size (cProfile of a quiet cycle): pricing Shopify's read documents (a GraphQL parse
for each of the ~8 sizes `page_size` tries, on every page of every read) was the largest part of a
quiet cycle spent in the project's own code."""

from __future__ import annotations

import graphql
import pytest

from talk_assets.systems.shopify.graphql import cost
from talk_assets.systems.shopify.graphql import documents as D


def test_a_read_document_is_parsed_once_however_many_pages_are_priced(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []

    def counting_parse(document: str, *a: object, **kw: object) -> graphql.DocumentNode:
        parsed.append(document)
        return graphql.parse(document, *a, **kw)

    monkeypatch.setattr(cost, "parse", counting_parse)
    cost._operation.cache_clear()
    variables = {"query": "updated_at:>'2026-01-01T00:00:00Z'", "lines": 50, "withStaff": True, "after": None}
    sizes = [cost.page_size(D.ORDERS, variables, "first", budget) for budget in (1000.0, 400.0, 1000.0)]
    assert parsed.count(D.ORDERS) == 1, len(parsed)
    # the same prices as a fresh parse gives: the cached tree is only read
    cost._operation.cache_clear()
    assert [cost.page_size(D.ORDERS, variables, "first", budget) for budget in (1000.0, 400.0, 1000.0)] == sizes
    assert 1 <= sizes[1] <= sizes[0] <= 250
