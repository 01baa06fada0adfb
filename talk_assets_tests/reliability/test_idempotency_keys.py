"""Why the first sync's second cycle once rewrote products in the full suite (the breaker test in
test_held_and_dead.py): Shopify stock written at a product's create did not arrive.

The client derived its `inventorySetQuantities` idempotency key from the intent alone (item, location,
quantity, compare quantity), and the Shopify sandbox kept the keys it had seen across
`/_sandbox/reset`. A module that ran the same small world's first sync before (test_real_apis.py)
had set the same new items (their ids restart with the seed) from 0 to the same stock: the next
module's first sync sent the same keys, the sandbox answered the stored result without setting the
level, the new Shopify products read back with stock 0, newer than every other system's value, and
the second cycle wrote that 0 to the CRM, the webshop and PowerOffice.

Both halves are bugs. A reset is the seed state (no memory of earlier requests). And a real shop keeps
a key for Shopify's retention window: "Distinct requests need different idempotency keys ... a
'duplicate request' is one that has the same mutation variables and is not intended to be a separate
operation" (https://shopify.dev/docs/api/usage/implementing-idempotency), so a stock set back to a
quantity it had before, from the same quantity as before, is a new operation and must be applied.
"""

from __future__ import annotations

import uuid

import requests

from talk_assets.config import SYSTEMS
from talk_assets_tests.reliability.support import Harness

SET_QTY = """mutation($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { changes { name quantityAfterChange } } userErrors { field message code } } }"""


def _a_level(rel: Harness) -> tuple[str, str]:
    """(inventory item id, location id) of one stocked variant, through the REST API."""
    shop = rel.client("shopify")
    product = next(iter(shop.iter_records("product")))
    item = product["variants"][0]["inventory_item_id"]
    level = next(lv for lv in shop.iter_records("inventory_level") if str(lv["inventory_item_id"]) == str(item))
    return str(item), str(level["location_id"])


def _available(rel: Harness, item: str, location: str) -> int:
    level = rel.client("shopify").inventory_level(item, location)
    assert level is not None
    return int(level["available"])


def test_a_stock_set_again_to_an_earlier_quantity_is_applied(rel: Harness) -> None:
    """5 -> 10, 10 -> 5, then 5 -> 10 again: the third is a new operation with the first one's variables."""
    shop = rel.client("shopify")
    item, loc = _a_level(rel)
    shop.set_inventory(loc, item, 5)
    shop.set_inventory(loc, item, 10)
    shop.set_inventory(loc, item, 5)
    shop.set_inventory(loc, item, 10)
    assert _available(rel, item, loc) == 10, "a repeated stock write was answered from an earlier one"


def test_a_sandbox_reset_forgets_the_idempotency_keys_it_has_seen(rel: Harness) -> None:
    """The same key before and after `/_sandbox/reset`: after it, the write is new to the shop."""
    item, loc = _a_level(rel)
    url = f"{rel.box.url('shopify')}/admin/api/2026-07/graphql.json"
    headers = {"X-Shopify-Access-Token": SYSTEMS["shopify"].value("access_token")}
    key = str(uuid.uuid4())

    def set_from_current(quantity: int) -> dict:
        have = _available(rel, item, loc)
        q = {"inventoryItemId": f"gid://shopify/InventoryItem/{item}", "locationId": f"gid://shopify/Location/{loc}",
             "quantity": quantity, "changeFromQuantity": have}
        r = requests.post(url, headers=headers, timeout=10, json={"query": SET_QTY, "variables": {
            "key": key, "input": {"name": "available", "reason": "correction", "quantities": [q]}}})
        r.raise_for_status()
        return r.json()["data"]["inventorySetQuantities"]

    try:
        rel.client("shopify").set_inventory(loc, item, 3)
        assert set_from_current(11)["userErrors"] == []
        assert _available(rel, item, loc) == 11
        rel.reset()
        rel.client("shopify").set_inventory(loc, item, 3)  # the same variables as the first set above
        assert set_from_current(11)["userErrors"] == []
        assert _available(rel, item, loc) == 11, "the reset sandbox answered a key from before the reset"
    finally:
        rel.reset()
