"""The inventory probe uses only what Squarespace documents, and costs no inventory read (issues 12, 15).

`GET /1.0/commerce/inventory` takes only `cursor` (https://developers.squarespace.com/commerce-apis/retrieve-all-inventory):
no change filter, no timestamp, no webhook topic, and no documentation says a stock change bumps the
product's `modifiedOn` (the sandbox does not bump it). The probe is made of what suggests a stock
change (orders, products) and the period of TALK_SQUARESPACE_INVENTORY_FULL_READ_S, so a quiet store is
probed with a few window reads, never with the whole listing.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from talk_assets.sandbox.server import SandboxServer
from talk_assets.systems.squarespace.client import Client, full_read_seconds
from talk_assets.systems.squarespace.system import SquarespaceResource
from talk_assets_tests.systems.squarespace.conftest import KEY
from talk_assets_tests.systems.squarespace.test_squarespace import new_product


def _inventory_reads(server: SandboxServer) -> int:
    stats = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()["requests"]
    return stats.get("GET inventory", 0)  # the sandbox counts requests by method and resource


def test_a_quiet_store_is_probed_without_reading_the_inventory(fresh: SandboxServer, client: Client) -> None:
    requests.post(f"{fresh.url}/_sandbox/stats/reset", timeout=10)
    before = client.probe("inventory")
    assert Client(fresh.url, KEY, min_interval=0.0).probe("inventory") == before, \
        "stable while nothing changes (and from another client)"
    assert _inventory_reads(fresh) == 0


def test_a_stock_edit_alone_is_seen_once_the_full_read_period_passes(fresh: SandboxServer, client: Client) -> None:
    """A merchant's stock edit in Squarespace moves no documented change time: not the product's
    `modifiedOn`, not the products' or orders' probe. It is read at the next period."""
    slow = Client(fresh.url, KEY, min_interval=0.0, inventory_full_read_s=1e9)
    before, products = slow.probe("inventory"), slow.probe("products")
    item = next(i for i in client.list_inventory() if not i.isUnlimited)
    product = client.get_record("products", fresh.app.variant_product[item.variantId])
    client.adjust_inventory({"setFiniteOperations": [{"variantId": item.variantId, "quantity": item.quantity + 7}]},
                            uuid.uuid4().hex)
    assert client.get_record("products", product["id"])["modifiedOn"] == product["modifiedOn"]
    fresh_client = Client(fresh.url, KEY, min_interval=0.0,
                          inventory_full_read_s=1e9)
    assert fresh_client.probe("products") == products
    assert fresh_client.probe("inventory") == before, "nothing documented suggests the stock change"
    short = Client(fresh.url, KEY, min_interval=0.0, inventory_full_read_s=1.0)
    first = short.probe("inventory")
    time.sleep(1.05)
    assert short.probe("inventory") != first, "a new period: the whole listing is due"


def test_an_order_or_a_product_edit_suggests_a_stock_change(fresh: SandboxServer, client: Client) -> None:
    before = client.probe("inventory")
    order = next(o for o in client.iter_orders() if o["fulfillmentStatus"] == "PENDING")
    client.fulfill_order(order["id"])
    after_order = client.probe("inventory")
    assert after_order != before, "an order changed: stock may have too"
    p = next(client.iter_products())
    client.update_record("products", p["id"], {"name": f"{p['name']} ✓"})
    assert client.probe("inventory") != after_order


@pytest.mark.parametrize("raw", ["0", "-5", "soon", ""])
def test_a_bad_full_read_period_names_its_variable(raw: str) -> None:
    with pytest.raises(ValueError, match="TALK_SQUARESPACE_INVENTORY_FULL_READ_S"):
        full_read_seconds(raw)
    with pytest.raises(ValueError, match="TALK_SQUARESPACE_INVENTORY_FULL_READ_S"):
        SquarespaceResource(url="http://127.0.0.1:1", api_key="k", inventory_full_read_s=raw).client()


def _list_reads(server: SandboxServer) -> int:
    stats = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()["requests"]
    return stats.get("GET products", 0) + stats.get("GET orders", 0)


def test_a_probe_starts_at_the_newest_change_it_saw_last(fresh: SandboxServer, client: Client) -> None:
    """The APIs have no change count and document no sort order, so a probe without a hint finds the newest
    change by windows of one hour and wider, reading every record changed in the first window that has one
    (after an import: all of it). With its last token as the hint it reads only what changed since that
    change (`modifiedAfter`), one page when nothing did, and answers the very same token either way."""
    for i in range(60):  # an import: 60 new products this hour, two pages of 50
        client.create_product(new_product(i) | {"name": f"Import {i} \u00e5 \U0001f389"})
    cold = Client(fresh.url, KEY, min_interval=0.0)
    requests.post(f"{fresh.url}/_sandbox/stats/reset", timeout=10)
    tokens = {e: cold.probe(e) for e in ("products", "orders", "inventory")}
    assert _list_reads(fresh) >= 4, "without a hint the hour's 60 new products are paged through (twice: inventory)"
    for entity, token in tokens.items():
        hinted = Client(fresh.url, KEY, min_interval=0.0)
        requests.post(f"{fresh.url}/_sandbox/stats/reset", timeout=10)
        assert hinted.probe(entity, previous=token) == token, entity
        assert _list_reads(fresh) <= (2 if entity == "inventory" else 1), entity
    product = next(iter(client.iter_products()))
    client.update_product(product["id"], {"name": "Ny\nlinje"})
    after = Client(fresh.url, KEY, min_interval=0.0)
    moved = after.probe("products", previous=tokens["products"])
    assert moved != tokens["products"] and moved == Client(fresh.url, KEY, min_interval=0.0).probe("products")
    assert after.probe("inventory", previous=tokens["inventory"]) != tokens["inventory"]
    # a hint that is no token of this entity (another system's, an old format) is no hint
    assert Client(fresh.url, KEY, min_interval=0.0).probe("products", previous="orders:x:y") == moved


def test_without_the_variable_the_whole_inventory_is_read_every_900_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs with one long period (conftest); a deployment without the variable gets 900 s."""
    from talk_assets.resources import build_resource
    from talk_assets.systems import system

    monkeypatch.delenv("TALK_SQUARESPACE_INVENTORY_FULL_READ_S", raising=False)
    assert build_resource(system("squarespace")).client().inventory_full_read_s == 900.0
