"""The order of a run's steps: what a step reads is made earlier in the same run.

A mapping that ran before a merge it reads would be built from the last run's merge: it misses this
run's new entities (a Shopify customer an order names is created a cycle late, with its orders, and
outside the first sync's circuit-breaker exemption), and the next, quiet, cycle rebuilds it for a
merge it had not seen."""

from __future__ import annotations

import dagster as dg
import pytest

from talk_assets.definitions import defs
from talk_assets.sync.assets import mapped_key, merge_key
from talk_assets.sync.mapping import read_types, target_views


@pytest.mark.parametrize("view", target_views(), ids=lambda v: v.vkey)
def test_a_mapping_runs_after_every_merge_it_reads(view) -> None:  # noqa: ANN001 - a View
    graph = defs.resolve_asset_graph()
    upstream = dg.AssetSelection.assets(mapped_key(view)).upstream().resolve(graph)
    missing = [t for t in read_types(view) if merge_key(t) not in upstream]
    assert not missing, f"{view.vkey} reads merge(s) {missing} but may run before them"


def test_a_customer_mapping_reads_the_order_merge() -> None:
    """The case the first test guards: orders synced into a system make their customers wanted there."""
    shopify_customer = next(v for v in target_views() if v.vkey == "shopify.customer")
    assert "order" in read_types(shopify_customer)
