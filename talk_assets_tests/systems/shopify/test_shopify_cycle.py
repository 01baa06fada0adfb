"""Whole sync cycles reach Shopify through GraphQL only: a full cycle (bulk reads) and a quiet cycle make
no REST call, counted by the Shopify sandbox itself."""

from __future__ import annotations

from talk_assets_tests.reliability.support import Harness

GRAPHQL_ONLY = {"POST graphql.json", "GET bulk-results"}


def rest_calls(h: Harness) -> dict[str, int]:
    return {k: n for k, n in h.box.stats("shopify")["requests"].items() if k not in GRAPHQL_ONLY}


def test_a_full_cycle_and_a_quiet_cycle_make_no_rest_call_to_shopify(rel: Harness) -> None:
    rel.reset_stats()
    rel.cycle(full=True)
    requests = rel.box.stats("shopify")["requests"]
    assert requests.get("GET bulk-results", 0) >= 1, requests  # the full read was a bulk operation
    assert requests.get("POST graphql.json", 0) > 0 and not rest_calls(rel), requests
    rel.until_quiet()
    rel.reset_stats()
    report = rel.cycle()
    assert report.writes == 0 and not rest_calls(rel), rel.box.stats("shopify")["requests"]
