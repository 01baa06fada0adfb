"""The inventory change probe uses only what the Inventory API documents (issue 12).

`GET /1.0/commerce/inventory` takes only `cursor` (https://developers.squarespace.com/commerce-apis/retrieve-all-inventory):
no change filter, and no documentation says a stock change bumps the product's `modifiedOn`. The
sandbox therefore does not bump it, and the probe compares a digest of the whole (cheap, 50 a page)
listing: a stock change is seen, a quiet store probes the same.
"""

from __future__ import annotations

import uuid

from talk_assets.sandbox.server import SandboxServer
from talk_assets.systems.squarespace.client import Client


def test_a_stock_change_is_seen_without_a_product_modified_on_bump(fresh: SandboxServer, client: Client) -> None:
    before = client.probe("inventory")
    assert client.probe("inventory") == before, "stable while nothing changes"
    products = client.probe("products")
    item = next(i for i in client.list_inventory() if not i.isUnlimited)
    product = client.get_record("products", fresh.app.variant_product[item.variantId])
    client.adjust_inventory({"setFiniteOperations": [{"variantId": item.variantId, "quantity": item.quantity + 7}]},
                            uuid.uuid4().hex)
    after_product = client.get_record("products", product["id"])
    # nothing documents that a stock change touches the product: the sandbox promises no more than the docs
    assert after_product["modifiedOn"] == product["modifiedOn"]
    assert client.probe("products") == products
    changed = client.probe("inventory")
    assert changed != before, "the stock change is seen by the inventory probe"
    assert client.probe("inventory") == changed
