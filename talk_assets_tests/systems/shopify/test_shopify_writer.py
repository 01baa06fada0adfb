"""The Shopify writer through the push engine against the GraphQL sandbox: a mutation's `userErrors`
become a dead letter naming the field and Shopify's message; a product's title and variant fields
follow their source after the first create (issue #12 "two-way"); no REST call is made."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets.sync.push import execute, record_outcomes
from talk_assets.sync.store import connect
from talk_assets.sync.writer import Row
from talk_assets.sync.writers import writer_for
from talk_assets.systems.shopify import client as client_mod
from talk_assets.systems.shopify.client import Client

from .conftest import Shop
from .test_shopify_client import rest_calls

CUSTOMER = VIEWS_BY_KEY["shopify.customer"]
PRODUCT = VIEWS_BY_KEY["shopify.sesamproduct"]


def row(view, gid: str, action: str, payload: dict, *, record_id: str | None = None, parent_id: str | None = None,
        glob: dict | None = None, version: str | None = None, changed: list[str] | None = None) -> Row:
    return Row(view, gid, action, None, record_id, parent_id, changed or list(payload), payload, {}, glob or {},
               "h-" + gid, version)


def test_user_errors_become_a_dead_letter_naming_the_field(shop: Shop, client: Client, tmp_path: Path) -> None:
    client_mod._SCOPE_CACHE.clear()
    taken = next(iter(client.iter_records("customer", page_size=3)))["email"]
    rows = [row(CUSTOMER, "g-dup", "create", {"email": taken.upper(), "first_name": "Dup"}),
            row(CUSTOMER, "g-ok", "create", {"email": "ny.kunde@example.no", "first_name": "Ny",
                                             "default_address.city": "Tromsø", "default_address.zip": "9008",
                                             "default_address.country_code": "NO"})]
    outcomes = execute(writer_for("shopify", client), rows)
    assert [o.status for o in outcomes] == ["failed", "created"]
    with connect(tmp_path / "talk.duckdb") as con:
        res = record_outcomes(con, CUSTOMER, outcomes, datetime.now(UTC))
        dead = con.execute("SELECT gid, status, error, body FROM dead_letters").fetchall()
    assert res.failed == 1 and res.created == 1
    gid, status, error, body = dead[0]
    assert gid == "g-dup" and status == 422
    assert "email" in error and "has already been taken" in error and "(field 'email')" in error
    assert "userErrors" in body
    made = client.get_record("customer", outcomes[1].record_id)
    assert made["default_address"]["city"] == "Tromsø"
    assert not rest_calls(shop)


def test_product_title_and_variant_fields_are_updated_after_the_first_create(shop: Shop, client: Client) -> None:
    client_mod._SCOPE_CACHE.clear()
    w = writer_for("shopify", client)
    payload = {"variants.sku": "TK-1", "variants.title": "Blå", "variants.price": "125.00",
               "variants.barcode": "7000000000123", "variants.inventory_quantity": "4"}
    created = w.create(row(PRODUCT, "g-p", "create", payload, glob={"name": "Termokopp Blå", "variant_title": "Blå"}))
    product_id = str(created["product_id"])
    got = client.get_record("product", product_id)
    assert got["title"] == "Termokopp" and got["variants"][0]["inventory_quantity"] == 4
    shop.advance(5)
    upd = {"title": "Termokrus", "variants.price": "139.00", "variants.sku": "TK-2", "variants.title": "Mørkeblå",
           "variants.inventory_quantity": "9"}
    w.update(row(PRODUCT, "g-p", "update", upd, record_id=str(created["id"]), parent_id=product_id,
                 glob={"name": "Termokrus Mørkeblå", "variant_title": "Mørkeblå"}, version=got["updated_at"]),
             list(upd))
    now = client.get_record("product", product_id)
    v = now["variants"][0]
    assert now["title"] == "Termokrus"
    assert (v["price"], v["sku"], v["title"], v["inventory_quantity"]) == ("139.00", "TK-2", "Mørkeblå", 9)
    assert not rest_calls(shop)


def test_a_product_changed_since_collect_is_a_conflict(shop: Shop, client: Client) -> None:
    client_mod._SCOPE_CACHE.clear()
    product = next(iter(client.iter_records("product", page_size=2)))
    variant = product["variants"][0]
    r = row(PRODUCT, "g-c", "update", {"variants.price": "1.00"}, record_id=str(variant["id"]),
            parent_id=str(product["id"]), version="2000-01-01T00:00:00Z")
    [out] = execute(writer_for("shopify", client), [r])
    assert out.status == "conflict"
    assert client.get_record("product", str(product["id"]))["variants"][0]["price"] == variant["price"]
