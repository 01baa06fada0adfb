"""The Squarespace sandbox and client, tested over HTTP against the running sandbox (no mocks)."""

from __future__ import annotations

import http.client
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from talk_assets.core.http import ApiError, RetryPolicy
from talk_assets.sandbox.server import SandboxServer
from talk_assets.systems.squarespace.client import Client
from talk_assets.systems.squarespace.models import InventoryAdjustment, OrderImport, Product

from .conftest import KEY

HEX24 = re.compile(r"^[0-9a-f]{24}$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ERROR_KEYS = {"type", "subtype", "message", "details", "contextId"}


def api(server: SandboxServer, path: str) -> str:
    return f"{server.url}/1.0/commerce/{path}"


def new_product(i: int, sku: str | None = None) -> dict[str, Any]:
    return {"type": "PHYSICAL", "name": f"Testvare {i}", "description": "<p>test</p>", "isVisible": True,
            "variantAttributes": ["Variant"],
            "variants": [{"sku": sku or f"TEST-{i:05d}", "attributes": {"Variant": "Standard"},
                          "pricing": {"basePrice": {"currency": "NOK", "value": "199.00"}},
                          "stock": {"quantity": 5, "unlimited": False}}]}


def order_body(variant_id: str, ref: str = "EXT-1", qty: int = 1) -> dict[str, Any]:
    return {"channelName": "Nettbutikk B", "externalOrderReference": ref, "createdOn": "2026-10-01T10:00:00.000Z",
            "customerEmail": "kari.hansen@gmail.com", "priceTaxInterpretation": "INCLUSIVE", "fulfillments": [],
            "billingAddress": {"firstName": "Kari", "lastName": "Hansen", "countryCode": "NO"},
            "lineItems": [{"lineItemType": "PHYSICAL_PRODUCT", "variantId": variant_id, "quantity": qty,
                           "unitPricePaid": {"currency": "NOK", "value": "249.00"}}],
            "fulfillmentStatus": "PENDING",
            "subtotal": {"currency": "NOK", "value": f"{249 * qty}.00"},
            "shippingTotal": {"currency": "NOK", "value": "0.00"},
            "discountTotal": {"currency": "NOK", "value": "0.00"},
            "taxTotal": {"currency": "NOK", "value": f"{249 * qty / 5:.2f}"},
            "grandTotal": {"currency": "NOK", "value": f"{249 * qty}.00"}}


def assert_error(resp: requests.Response, status: int, type_: str, field: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == ERROR_KEYS
    assert body["type"] == type_
    assert body["contextId"]
    if field:
        assert body["details"] == {"field": field}
        assert field.split(".")[-1].split("[")[0] in body["message"] or field in body["message"]
    return body


# -- auth and error shape -------------------------------------------------------------------------
def test_user_agent_and_key_are_required(server: SandboxServer) -> None:
    url = api(server, "products")
    # http.client sends no User-Agent unless told (requests/urllib3 would add one)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("GET", "/1.0/commerce/products", headers={"Authorization": f"Bearer {KEY}"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 400 and body["type"] == "INVALID_REQUEST_ERROR" and "User-Agent" in body["message"]
    blank = requests.get(url, headers={"Authorization": f"Bearer {KEY}", "User-Agent": ""})
    assert_error(blank, 400, "INVALID_REQUEST_ERROR", "User-Agent")
    wrong = requests.get(url, headers={"Authorization": "Bearer nope", "User-Agent": "t"})
    assert_error(wrong, 401, "AUTHORIZATION_ERROR")
    missing = requests.get(url, headers={"User-Agent": "t"})
    assert_error(missing, 401, "AUTHORIZATION_ERROR")
    ok = requests.get(url, headers={"Authorization": f"Bearer {KEY}", "User-Agent": "t"})
    assert ok.status_code == 200


def test_client_error_names_status_and_hides_the_key(server: SandboxServer) -> None:
    bad = Client(server.url, "sqsp-wrong-secret-key", min_interval=0.0)
    with pytest.raises(ApiError) as exc:
        bad.list_products()
    assert exc.value.status == 401
    assert "AUTHORIZATION_ERROR" in str(exc.value)
    assert "sqsp-wrong-secret-key" not in str(exc.value) and "sqsp-wrong-secret-key" not in repr(exc.value.body)


def test_unknown_path_and_method(raw: requests.Session, server: SandboxServer) -> None:
    assert_error(raw.get(api(server, "nothing")), 404, "INVALID_REQUEST_ERROR")
    assert_error(raw.delete(api(server, "orders")), 405, "METHOD_NOT_ALLOWED")


# -- products -----------------------------------------------------------------------------------
def test_product_shape_from_the_seed_world(raw: requests.Session, server: SandboxServer) -> None:
    body = raw.get(api(server, "products")).json()
    assert set(body) == {"products", "pagination"}
    assert body["pagination"] == {"hasNextPage": False, "nextPageCursor": None, "nextPageUrl": None}
    products = body["products"]
    assert products
    mods = [p["modifiedOn"] for p in products]
    assert mods == sorted(mods), "ordered by modifiedOn"
    for p in products:
        assert HEX24.match(p["id"]) and p["type"] == "PHYSICAL" and HEX24.match(p["storePageId"])
        assert STAMP.match(p["createdOn"]) and STAMP.match(p["modifiedOn"]) and p["createdOn"] <= p["modifiedOn"]
        assert p["url"].endswith(p["urlSlug"]) and p["images"] == []
        for v in p["variants"]:
            assert HEX24.match(v["id"])
            assert re.match(r"^\d+\.\d\d$", v["pricing"]["basePrice"]["value"])
            assert v["pricing"]["basePrice"]["currency"] == "NOK"
            assert set(v["stock"]) == {"quantity", "unlimited"} and set(v["attributes"]) == {"Variant"}
    # shares SKUs with the world (CRM / webshop use the same ones)
    assert any(re.match(r"^[A-Z]{4}-\d{5}-", v["sku"] or "") for p in products for v in p["variants"])


def test_get_several_products_and_missing_one(raw: requests.Session, server: SandboxServer, client: Client) -> None:
    ids = [p["id"] for p in raw.get(api(server, "products")).json()["products"][:3]]
    got = raw.get(api(server, "products/" + ",".join(ids))).json()["products"]
    assert [p["id"] for p in got] == ids
    assert_error(raw.get(api(server, "products/" + "0" * 24)), 404, "INVALID_REQUEST_ERROR")
    assert client.get_product("0" * 24) is None
    assert client.get_record("products", ids[0])["id"] == ids[0]


def test_list_filter_validation(raw: requests.Session, server: SandboxServer) -> None:
    url = api(server, "products")
    assert_error(raw.get(url, params={"modifiedAfter": "2026-01-01T00:00:00Z"}), 400, "INVALID_REQUEST_ERROR",
                 "modifiedBefore")
    assert_error(raw.get(url, params={"modifiedAfter": "yesterday", "modifiedBefore": "2026-01-01T00:00:00Z"}),
                 400, "INVALID_REQUEST_ERROR", "modifiedAfter")
    assert_error(raw.get(url, params={"modifiedAfter": "2026-02-01T00:00:00Z",
                                      "modifiedBefore": "2026-01-01T00:00:00Z"}), 400, "INVALID_REQUEST_ERROR",
                 "modifiedBefore")
    assert_error(raw.get(url, params={"type": "SPACESHIP"}), 400, "INVALID_REQUEST_ERROR", "type")
    assert raw.get(url, params={"type": "PHYSICAL"}).json()["products"]
    assert_error(raw.get(url, params={"cursor": "!!notacursor"}), 400, "INVALID_REQUEST_ERROR", "cursor")


def test_create_products_and_page_through_them(fresh: SandboxServer, client: Client, raw: requests.Session) -> None:
    before = len(list(client.iter_records("products")))
    t0 = datetime.now(UTC) - timedelta(seconds=1)
    created = [client.create_product(new_product(i)) for i in range(55)]
    assert all(HEX24.match(p.id or "") and p.variants[0].id for p in created)
    first = raw.get(api(fresh, "products")).json()
    assert len(first["products"]) == 50 and first["pagination"]["hasNextPage"]
    cursor = first["pagination"]["nextPageCursor"]
    assert first["pagination"]["nextPageUrl"].endswith(f"?cursor={cursor}")
    # a cursor cannot be combined with filters
    assert_error(raw.get(api(fresh, "products"), params={"cursor": cursor, "type": "PHYSICAL"}), 400,
                 "INVALID_REQUEST_ERROR", "cursor")
    second = raw.get(api(fresh, "products"), params={"cursor": cursor}).json()
    assert not second["pagination"]["hasNextPage"]
    ids = [p["id"] for p in first["products"] + second["products"]]
    assert len(ids) == len(set(ids)) == before + 55
    # incremental: only the new ones, across pages, via the uniform interface
    recent = list(client.iter_records("products", since=t0))
    assert {p["id"] for p in recent} == {p.id for p in created}
    # the inventory list now spans pages too, with each new variant in it
    inv = list(client.iter_records("inventory"))
    assert len(inv) > 50 and {p.variants[0].id for p in created} <= {i["variantId"] for i in inv}


def test_create_product_validation_names_the_field(fresh: SandboxServer, raw: requests.Session,
                                                   client: Client) -> None:
    url = api(fresh, "products")
    page_id = client.store_pages()[0].id
    body = {**new_product(1), "storePageId": page_id}
    assert_error(raw.post(url, json={**body, "variants": []}), 400, "INVALID_REQUEST_ERROR", "variants")
    bad_price = {**body, "variants": [{**body["variants"][0], "pricing": {"basePrice": {"currency": "NOK",
                                                                                       "value": 199}}}]}
    assert_error(raw.post(url, json=bad_price), 400, "INVALID_REQUEST_ERROR", "variants[0].pricing.basePrice.value")
    usd = {**body, "variants": [{**body["variants"][0], "pricing": {"basePrice": {"currency": "USD",
                                                                                 "value": "1.00"}}}]}
    assert assert_error(raw.post(url, json=usd), 400, "INVALID_REQUEST_ERROR")["subtype"] == "CURRENCY_MISMATCH"
    assert_error(raw.post(url, json={k: v for k, v in body.items() if k != "storePageId"}), 400,
                 "INVALID_REQUEST_ERROR", "storePageId")
    taken = raw.get(url).json()["products"][0]["variants"][0]["sku"]
    dup = {**body, "variants": [{**body["variants"][0], "sku": taken}]}
    assert assert_error(raw.post(url, json=dup), 409, "CONFLICT", "variants[0].sku")["subtype"] == "SKU_UNAVAILABLE"
    with pytest.raises(ApiError) as exc:
        client.create_product(Product.model_validate({**new_product(2), "name": ""}))
    assert exc.value.status == 400 and exc.value.field == "name" and "INVALID_REQUEST_ERROR" in exc.value.message
    created = raw.post(url, json=body)
    assert created.status_code == 201 and created.json()["variants"][0]["stock"] == {"quantity": 5, "unlimited": False}


def test_update_product_and_variant(fresh: SandboxServer, client: Client, raw: requests.Session) -> None:
    p = client.list_products()[0]
    v = p.variants[0]
    time.sleep(0.01)
    up = client.update_product(p.id, {"name": "Nytt navn", "isVisible": False})
    assert up.name == "Nytt navn" and not up.isVisible and up.modifiedOn > p.modifiedOn
    nv = client.update_variant(p.id, v.id, {"pricing": {"basePrice": {"currency": "NOK", "value": "1099.00"}},
                                            "sku": "NEW-SKU-1"})
    assert nv.pricing.basePrice.value == "1099.00" and nv.sku == "NEW-SKU-1"
    assert client.get_inventory([v.id])[0].sku == "NEW-SKU-1"
    stock = raw.post(api(fresh, f"products/{p.id}/variants/{v.id}"), json={"stock": {"quantity": 1}})
    assert_error(stock, 400, "INVALID_REQUEST_ERROR", "stock")
    ro = raw.post(api(fresh, f"products/{p.id}"), json={"createdOn": "2020-01-01T00:00:00Z"})
    assert_error(ro, 400, "INVALID_REQUEST_ERROR", "createdOn")
    missing = raw.post(api(fresh, f"products/{p.id}/variants/{'f' * 24}"), json={"sku": "X"})
    assert assert_error(missing, 404, "INVALID_REQUEST_ERROR")["subtype"] == "PRODUCT_VARIANT_NOT_FOUND"
    nv2 = client.create_variant(p.id, {"sku": "NEW-SKU-2", "attributes": {"Variant": "XXL"},
                                       "pricing": {"basePrice": {"currency": "NOK", "value": "10.00"}}})
    assert nv2.id in {x.id for x in client.get_product(p.id).variants}
    assert client.get_inventory([nv2.id])[0].quantity == 0


# -- inventory ----------------------------------------------------------------------------------
def test_inventory_reads(raw: requests.Session, server: SandboxServer, client: Client) -> None:
    body = raw.get(api(server, "inventory")).json()
    assert set(body) == {"inventory", "pagination"}
    item = body["inventory"][0]
    assert set(item) == {"variantId", "sku", "descriptor", "isUnlimited", "quantity"}
    products = client.list_products()
    stock = {v.id: v.stock.quantity for p in products for v in p.variants}
    assert {i["variantId"]: i["quantity"] for i in body["inventory"]} == stock
    ids = [i["variantId"] for i in body["inventory"][:2]]
    got = raw.get(api(server, "inventory/" + ",".join(ids))).json()
    assert set(got) == {"inventory"} and [i["variantId"] for i in got["inventory"]] == ids
    assert_error(raw.get(api(server, "inventory/" + "a" * 24)), 404, "INVALID_REQUEST_ERROR")
    assert client.get_record("inventory", "a" * 24) is None


def test_inventory_adjustments_are_idempotent(fresh: SandboxServer, raw: requests.Session, client: Client) -> None:
    url = api(fresh, "inventory/adjustments")
    items = [i for i in client.list_inventory() if not i.isUnlimited][:3]
    a, b, c = items
    body = {"incrementOperations": [{"variantId": a.variantId, "quantity": 5}],
            "setFiniteOperations": [{"variantId": b.variantId, "quantity": 7}],
            "setUnlimitedOperations": [c.variantId]}
    assert_error(raw.post(url, json=body), 400, "INVALID_REQUEST_ERROR", "Idempotency-Key")
    assert_error(raw.post(url, json=body, headers={"Idempotency-Key": "bad key!"}), 400,
                 "INVALID_REQUEST_ERROR", "Idempotency-Key")
    before_mod = client.get_product(fresh.app.variant_product[a.variantId]).modifiedOn
    for _ in range(2):  # the replay answers 204 and changes nothing
        r = raw.post(url, json=body, headers={"Idempotency-Key": "adj-1"})
        assert r.status_code == 204 and r.content == b""
    now = {i.variantId: i for i in client.get_inventory([a.variantId, b.variantId, c.variantId])}
    assert now[a.variantId].quantity == a.quantity + 5
    assert now[b.variantId].quantity == 7 and now[c.variantId].isUnlimited
    prod = client.get_product(fresh.app.variant_product[a.variantId])
    assert prod.modifiedOn == before_mod  # undocumented: the sandbox does not bump it (test_inventory_probe.py)
    assert next(v for v in prod.variants if v.id == a.variantId).stock.quantity == a.quantity + 5
    other = {"incrementOperations": [{"variantId": a.variantId, "quantity": 1}]}
    assert_error(raw.post(url, json=other, headers={"Idempotency-Key": "adj-1"}), 400, "INVALID_REQUEST_ERROR",
                 "Idempotency-Key")
    too_many = {"decrementOperations": [{"variantId": b.variantId, "quantity": 8}]}
    r = raw.post(url, json=too_many, headers={"Idempotency-Key": "adj-2"})
    assert assert_error(r, 409, "CONFLICT")["subtype"] == "INSUFFICIENT_STOCK"
    tracked = {"incrementOperations": [{"variantId": c.variantId, "quantity": 1}]}
    r = raw.post(url, json=tracked, headers={"Idempotency-Key": "adj-3"})
    assert assert_error(r, 409, "CONFLICT")["subtype"] == "STOCK_NOT_TRACKED"
    twice = {"incrementOperations": [{"variantId": a.variantId, "quantity": 1}],
             "decrementOperations": [{"variantId": a.variantId, "quantity": 1}]}
    assert_error(raw.post(url, json=twice, headers={"Idempotency-Key": "adj-4"}), 400, "INVALID_REQUEST_ERROR")
    neg = {"setFiniteOperations": [{"variantId": a.variantId, "quantity": -1}]}
    assert_error(raw.post(url, json=neg, headers={"Idempotency-Key": "adj-5"}), 400, "INVALID_REQUEST_ERROR",
                 "setFiniteOperations[0].quantity")
    # the typed client derives the key from the body: sending the same adjustment twice applies it once
    adj = InventoryAdjustment(incrementOperations=[{"variantId": b.variantId, "quantity": 2}])
    assert client.adjust_inventory(adj) == client.adjust_inventory(adj)
    assert client.get_inventory([b.variantId])[0].quantity == 9


# -- orders -------------------------------------------------------------------------------------
def test_order_shape_and_filters(raw: requests.Session, server: SandboxServer, client: Client) -> None:
    body = raw.get(api(server, "orders")).json()
    assert set(body) == {"result", "pagination"}
    orders = body["result"]
    assert orders
    variants = {v.id for p in client.list_products() for v in p.variants}
    for o in orders:
        assert HEX24.match(o["id"]) and o["orderNumber"].isdigit() and STAMP.match(o["modifiedOn"])
        assert o["fulfillmentStatus"] in ("PENDING", "FULFILLED", "CANCELED")
        assert set(o["billingAddress"]) >= {"firstName", "lastName", "address1", "city", "countryCode",
                                            "postalCode", "phone"}
        for li in o["lineItems"]:
            assert li["variantId"] is None or li["variantId"] in variants
            assert re.match(r"^\d+\.\d\d$", li["unitPricePaid"]["value"])
        assert o["grandTotal"]["currency"] == "NOK" and isinstance(o["grandTotal"]["value"], str)
    for status in ("PENDING", "FULFILLED", "CANCELED"):
        got = client.list_orders(fulfillment_status=status)
        assert all(o.fulfillmentStatus == status for o in got)
        assert len(got) == sum(o["fulfillmentStatus"] == status for o in orders)
    assert_error(raw.get(api(server, "orders"), params={"fulfillmentStatus": "SHIPPED"}), 400,
                 "INVALID_REQUEST_ERROR", "fulfillmentStatus")
    mid = sorted(o["modifiedOn"] for o in orders)[len(orders) // 2]
    window = raw.get(api(server, "orders"), params={"modifiedAfter": mid,
                                                    "modifiedBefore": "2100-01-01T00:00:00.000Z"}).json()
    assert {o["id"] for o in window["result"]} == {o["id"] for o in orders if o["modifiedOn"] > mid}
    assert client.get_order(orders[0]["id"]).id == orders[0]["id"]
    assert client.get_order("0" * 24) is None


def test_order_import_is_idempotent_and_fulfillable(fresh: SandboxServer, raw: requests.Session,
                                                    client: Client) -> None:
    url = api(fresh, "orders")
    vid = client.list_inventory()[0].variantId
    body = order_body(vid, "EXT-42")
    assert_error(raw.post(url, json=body), 400, "INVALID_REQUEST_ERROR", "Idempotency-Key")
    missing = {k: v for k, v in body.items() if k != "channelName"}
    assert_error(raw.post(url, json=missing, headers={"Idempotency-Key": "o-0"}), 400, "INVALID_REQUEST_ERROR",
                 "channelName")
    bad_line = {**body, "lineItems": [{**body["lineItems"][0], "variantId": "f" * 24}]}
    assert_error(raw.post(url, json=bad_line, headers={"Idempotency-Key": "o-00"}), 400, "INVALID_REQUEST_ERROR",
                 "lineItems[0].variantId")
    count = len(client.list_orders())
    first = raw.post(url, json=body, headers={"Idempotency-Key": "o-1"})
    again = raw.post(url, json=body, headers={"Idempotency-Key": "o-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert len(client.list_orders()) == count + 1
    o = first.json()
    assert o["lineItems"][0]["variantId"] == vid and o["lineItems"][0]["sku"] and o["fulfillmentStatus"] == "PENDING"
    # the typed client and uniform interface: same content, same order
    imp = OrderImport.model_validate(order_body(vid, "EXT-43"))
    assert client.import_order(imp).id == client.import_order(imp).id
    rec = client.create_record("orders", order_body(vid, "EXT-44"), idempotency_key="k-44")
    assert client.create_record("orders", order_body(vid, "EXT-44"), idempotency_key="k-44")["id"] == rec["id"]
    assert len(client.list_orders()) == count + 3
    # fulfil through the uniform interface
    done = client.update_record("orders", rec["id"], {"fulfillmentStatus": "FULFILLED", "shipments": [
        {"shipDate": "2026-10-02T09:00:00Z", "carrierName": "Posten", "trackingNumber": "70712345"}]})
    assert done["fulfillmentStatus"] == "FULFILLED" and done["fulfillments"][0]["carrierName"] == "Posten"
    assert done["modifiedOn"] > rec["modifiedOn"]
    bad = raw.post(api(fresh, f"orders/{rec['id']}/fulfillments"), json={"shipments": []})
    assert_error(bad, 400, "INVALID_REQUEST_ERROR", "shouldSendNotification")


def test_order_import_cap_100_per_hour(fresh: SandboxServer, raw: requests.Session, client: Client) -> None:
    vid = client.list_inventory()[0].variantId
    raw.put(f"{fresh.url}/_sandbox/faults", json={"rate_limit_speed": 360})  # an hour lasts 10 s
    url = api(fresh, "orders")
    statuses = [raw.post(url, json=order_body(vid, f"CAP-{i}"), headers={"Idempotency-Key": f"cap-{i}"}).status_code
                for i in range(101)]
    assert statuses[:100] == [201] * 100
    assert statuses[100] == 429
    r = raw.post(url, json=order_body(vid, "CAP-x"), headers={"Idempotency-Key": "cap-x"})
    assert_error(r, 429, "TOO_MANY_REQUESTS")
    assert raw.get(url).status_code == 200, "reads are not capped"


# -- rate limit and faults -----------------------------------------------------------------------
def test_rate_limit_300_per_minute_with_cooldown(fresh: SandboxServer, raw: requests.Session) -> None:
    raw.put(f"{fresh.url}/_sandbox/faults", json={"rate_limit_speed": 15})  # a minute lasts 4 s
    url = api(fresh, "store_pages")
    codes = [raw.get(url).status_code for _ in range(301)]
    assert codes[:300] == [200] * 300 and codes[300] == 429
    r = raw.get(url)
    assert_error(r, 429, "TOO_MANY_REQUESTS")
    assert 0 < float(r.headers["Retry-After"]) <= 4.0
    # the client waits out the cooldown and then succeeds
    c = Client(fresh.url, KEY, min_interval=0.0)
    start = time.monotonic()
    assert c.store_pages()
    assert time.monotonic() - start > 1.0


def test_faults_5xx_storm_and_drop(fresh: SandboxServer, raw: requests.Session) -> None:
    faults = f"{fresh.url}/_sandbox/faults"
    c = Client(fresh.url, KEY, min_interval=0.0, retry=RetryPolicy(backoff=0.01, max_retries=8))
    raw.put(faults, json={"error_rate": 1.0, "error_statuses": [503]})
    assert_error(raw.get(api(fresh, "products")), 503, "SERVICE_UNAVAILABLE")
    raw.put(faults, json={"error_rate": 0.5, "error_statuses": [500, 503], "seed": 3})
    assert len(list(c.iter_records("orders"))) == len(fresh.app.orders)
    raw.put(faults, json={"storm_429": 3, "storm_retry_after": 0.05})
    assert c.store_pages()
    raw.put(faults, json={"drop_rate": 0.4, "seed": 5})
    assert len(list(c.iter_records("inventory"))) == len(fresh.app.variant_ids)
    raw.put(faults, json={"drop_rate": 1.0})
    n = len(fresh.app.products)
    with pytest.raises(ApiError) as exc:
        c.create_product(new_product(99) | {"storePageId": fresh.app.store_page["id"]})
    assert exc.value.status is None and exc.value.transient
    raw.put(faults, json={})
    assert len(fresh.app.products) == n, "a dropped create is not retried blindly"
    stats = raw.get(f"{fresh.url}/_sandbox/stats").json()
    assert stats["statuses"].get("429", 0) >= 3 and stats["statuses"].get("500", 0) + stats["statuses"].get(
        "503", 0) >= 2


def test_lost_response_on_import_is_safe_to_retry(fresh: SandboxServer, raw: requests.Session,
                                                  client: Client) -> None:
    vid = client.list_inventory()[0].variantId
    n = len(fresh.app.orders)
    raw.put(f"{fresh.url}/_sandbox/faults", json={"lost_response_rate": 1.0})
    with pytest.raises(ApiError):
        Client(fresh.url, KEY, min_interval=0.0, retry=RetryPolicy(max_retries=0)).import_order(
            order_body(vid, "LOST-1"))
    raw.put(f"{fresh.url}/_sandbox/faults", json={})
    assert len(fresh.app.orders) == n + 1
    again = client.import_order(order_body(vid, "LOST-1"))  # same derived key: the stored answer
    assert len(fresh.app.orders) == n + 1 and again.externalOrderReference == "LOST-1"


# -- the uniform interface -------------------------------------------------------------------------
def test_uniform_update_and_probe(fresh: SandboxServer, client: Client) -> None:
    assert client.entities == ("products", "inventory", "orders")
    probes = {e: client.probe(e) for e in client.entities}
    assert probes == {e: client.probe(e) for e in client.entities}, "stable while nothing changes"
    p = client.iter_records("products").__next__()
    v = p["variants"][0]
    with pytest.raises(ApiError) as exc:
        client.update_record("products", p["id"], {"name": "X"}, expected_version="2000-01-01T00:00:00.000Z")
    assert exc.value.status == 409
    time.sleep(0.01)
    out = client.update_record("products", p["id"], {
        "name": "Ullgenser deluxe",
        "variants": [{"id": v["id"], "pricing": {"basePrice": {"currency": "NOK", "value": "1111.00"}},
                      "stock": {"quantity": 3, "unlimited": False}}]}, expected_version=p["modifiedOn"])
    ov = next(x for x in out["variants"] if x["id"] == v["id"])
    assert out["name"] == "Ullgenser deluxe" and ov["pricing"]["basePrice"]["value"] == "1111.00"
    assert ov["stock"]["quantity"] == 3
    assert client.probe("products") != probes["products"] and client.probe("inventory") != probes["inventory"]
    assert client.probe("orders") == probes["orders"]
    since = datetime.fromisoformat(out["modifiedOn"].replace("Z", "+00:00"))
    assert [r["id"] for r in client.iter_records("products", since=since)] == [p["id"]]
    inv = client.update_record("inventory", v["id"], {"quantity": 5}, expected_version="3")
    assert inv["quantity"] == 5
    assert client.update_record("inventory", v["id"], {"quantity": 3})["quantity"] == 3
    assert client.update_record("inventory", v["id"], {"quantity": 5})["quantity"] == 5, "5->3->5 is not a replay"
    with pytest.raises(ValueError):
        client.create_record("inventory", {})
    with pytest.raises(ValueError):
        client.iter_records("customers")


def test_from_env_and_pacer(server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALK_SQUARESPACE_URL", server.url)
    c = Client.from_env()
    assert c.base_url == f"{server.url}/1.0/commerce"
    assert c.pacer.min_interval == pytest.approx(0.2)
    assert c.session.headers["User-Agent"].startswith("talk-assets/")
    start = time.monotonic()
    c.store_pages()
    c.store_pages()
    c.store_pages()
    assert time.monotonic() - start >= 0.39, "300/minute means 0.2 s between requests"
    monkeypatch.setenv("TALK_SQUARESPACE_API_KEY", "another-key-1234")
    with pytest.raises(ApiError) as exc:
        Client.from_env(min_interval=0.0).store_pages()
    assert exc.value.status == 401 and "another-key-1234" not in str(exc.value)
