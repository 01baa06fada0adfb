"""Shopify's own Python client (ShopifyAPI) works against the sandbox with only the site changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import TOKEN, Shop

SCRIPT = Path(__file__).with_name("official_client_script.py")


def test_shopify_python_api_works_unchanged(shop: Shop) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), shop.url, TOKEN], capture_output=True, text=True,
                          timeout=60, cwd=SCRIPT.parent.parent.parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["customer_ids"] == shop.app.customers.ids[: len(out["customer_ids"])]
    assert len(out["customer_ids"]) == len(shop.app.customers) - 1  # the one it created came after
    assert out["pages"] == -(-len(out["customer_ids"]) // 5)
    assert out["first_email"] == shop.app.customers.rows[out["customer_ids"][0]]["email"]
    assert out["created"] and out["updated"] and out["customer"]["last_name"] == "Bibliotek"
    assert out["dup_saved"] is False and any("has already been taken" in m for m in out["dup_errors"])
    assert out["product_created"] and out["product_updated"]
    assert out["product"]["title"] == "Bibliotekgenser 2"
    assert [v["price"] for v in out["product"]["variants"]] == ["799.00", "899.00"]
    assert out["order_created"] and out["order_updated"] and out["order"]["note"] == "Fra ShopifyAPI"
    assert out["order"]["total_price"] == "1798.00" and out["order"]["customer"]["id"] == out["customer"]["id"]
    assert out["orders_any"] == len(shop.app.orders)
