"""The GraphQL sandbox's calculated query cost, bucket and throttling, bulk operations, and Shopify's
official Python client's GraphQL helper against the endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import requests

from .conftest import TOKEN, Shop
from .gql import data, gql, num

SCRIPT = Path(__file__).with_name("official_graphql_script.py")


# -- cost ----------------------------------------------------------------------------------------
def test_requested_and_actual_cost_of_a_known_document(shop: Shop) -> None:
    doc = "{ products(first: 10) { edges { cursor node { id title variants(first: 5) { nodes { sku } } } } pageInfo { hasNextPage } } }"
    body = gql(shop, doc)
    cost = body["extensions"]["cost"]
    # 2 for the connection + 10 products x (1 + the variants connection: 2 + 5 x 1).
    assert cost["requestedQueryCost"] == 2 + 10 * (1 + 2 + 5)
    products = [shop.app.products.rows[pid] for pid in shop.app.products.ids[:10]]
    assert cost["actualQueryCost"] == 2 + sum(1 + 2 + min(5, len(p["variants"])) for p in products)
    status = cost["throttleStatus"]
    assert status["maximumAvailable"] == 2000.0 and status["restoreRate"] == 100.0 * 50  # x the speed factor
    assert gql(shop, "{ shop { name currencyCode } }")["extensions"]["cost"]["requestedQueryCost"] == 1
    m = gql(shop, 'mutation { customerCreate(input: {email: "kost@example.no"}) { customer { id defaultAddress { id } } userErrors { message } } }')
    assert m["extensions"]["cost"]["requestedQueryCost"] == 10 == m["extensions"]["cost"]["actualQueryCost"]
    frag = gql(shop, "query { node(id: \"gid://shopify/Shop/1\") { ... on Customer { orders(first: 3) { nodes { id } } } ... on Product { title } } }")
    assert frag["extensions"]["cost"]["requestedQueryCost"] == 1 + 2 + 3  # the larger fragment counts


def test_single_query_maximum_is_max_cost_exceeded_and_free(shop: Shop) -> None:
    body = gql(shop, "{ customers(first: 250) { nodes { id orders(first: 10) { nodes { id } } } } }", expect_errors=True)
    assert "data" not in body
    [err] = body["errors"]
    assert err["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert err["extensions"]["cost"] == 2 + 250 * (1 + 2 + 10) and err["extensions"]["maxCost"] == 1000
    assert err["message"].startswith("Query cost is 3252, which exceeds the single query max cost limit (1000).")
    after = gql(shop, "{ shop { name } }")["extensions"]["cost"]["throttleStatus"]
    assert after["currentlyAvailable"] >= 1998  # nothing was taken for the refused query


def test_throttled_then_restored(shop: Shop) -> None:
    shop.control("PUT", "faults", {"rate_limit_speed": 10})
    shop.control("PUT", "graphql/cost", {"bucket_size": 50, "restore_rate": 2})  # 20 points/s at speed 10
    doc = "{ customers(first: 25) { nodes { id } } shop { name } }"
    assert len(shop.app.customers) >= 25  # so the actual cost equals the requested one
    first = gql(shop, doc)["extensions"]["cost"]
    assert first["requestedQueryCost"] == first["actualQueryCost"] == 28
    throttled = gql(shop, doc, expect_errors=True)
    assert "data" not in throttled
    assert throttled["errors"] == [{"message": "Throttled", "extensions": {
        "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}]
    cost = throttled["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 28 and cost["actualQueryCost"] is None
    assert cost["throttleStatus"]["maximumAvailable"] == 50.0 and cost["throttleStatus"]["restoreRate"] == 20.0
    left = cost["throttleStatus"]["currentlyAvailable"]
    assert 22 <= left < 28
    time.sleep((28 - left) / 20 + 0.3)  # what the answer says the bucket needs
    again = gql(shop, doc)["extensions"]["cost"]
    assert again["actualQueryCost"] == 28


def test_rate_limit_switch_turns_throttling_off(shop: Shop) -> None:
    shop.control("PUT", "faults", {"rate_limit_speed": 1, "rate_limit_enabled": False})
    shop.control("PUT", "graphql/cost", {"bucket_size": 10, "restore_rate": 1})
    for _ in range(3):
        assert "errors" not in gql(shop, "{ customers(first: 20) { nodes { id } } }")


# -- bulk operations -------------------------------------------------------------------------------
RUN = """mutation($q: String!) { bulkOperationRunQuery(query: $q) { bulkOperation { id status type }
  userErrors { field message code } } }"""
PRODUCTS_BULK = "{ products { edges { node { id title variants { edges { node { id sku price } } } } } } }"


def wait_bulk(shop: Shop, bid: str, until: tuple[str, ...] = ("COMPLETED", "FAILED", "CANCELED")) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        op = data(shop, "query($id: ID!) { node(id: $id) { ... on BulkOperation { id status errorCode objectCount "
                        "rootObjectCount fileSize url partialDataUrl createdAt completedAt query } } }", {"id": bid})["node"]
        if op["status"] in until:
            return op
        time.sleep(0.05)
    raise AssertionError(f"bulk operation {bid} did not finish")


def test_bulk_query_lifecycle_and_jsonl_with_parent_ids(shop: Shop) -> None:
    started = data(shop, RUN, {"q": PRODUCTS_BULK})["bulkOperationRunQuery"]
    assert started["userErrors"] == [] and started["bulkOperation"]["status"] == "CREATED"
    assert started["bulkOperation"]["type"] == "QUERY"
    op = wait_bulk(shop, started["bulkOperation"]["id"])
    assert op["status"] == "COMPLETED" and op["completedAt"] and op["query"] == PRODUCTS_BULK
    current = data(shop, "{ currentBulkOperation { id status url } }")["currentBulkOperation"]
    assert current["id"] == op["id"] and current["url"] == op["url"]
    resp = requests.get(op["url"], timeout=10)  # a signed link: no access token
    assert resp.status_code == 200
    lines = [json.loads(x) for x in resp.text.splitlines()]
    app = shop.app
    products = [ln for ln in lines if "__parentId" not in ln]
    variants = [ln for ln in lines if "__parentId" in ln]
    assert [num(p["id"]) for p in products] == app.products.ids
    assert all(p["title"] == app.products.rows[num(p["id"])]["title"] and "variants" not in p for p in products)
    want = [(f"gid://shopify/Product/{pid}", v["admin_graphql_api_id"], v["sku"], v["price"])
            for pid in app.products.ids for v in app.products.rows[pid]["variants"]]
    assert [(v["__parentId"], v["id"], v["sku"], v["price"]) for v in variants] == want
    assert op["objectCount"] == str(len(lines)) and op["rootObjectCount"] == str(len(products))
    assert op["fileSize"] == str(len(resp.content))
    assert requests.get(op["url"].replace(op["url"][-12:-6], "000000"), timeout=10).status_code == 404


def test_one_bulk_query_at_a_time_cancel_stall_and_fail(shop: Shop) -> None:
    shop.control("PUT", "graphql/bulk", {"next": "stall"})
    first = data(shop, RUN, {"q": PRODUCTS_BULK})["bulkOperationRunQuery"]["bulkOperation"]
    assert wait_bulk(shop, first["id"], ("RUNNING",))["status"] == "RUNNING"
    second = data(shop, RUN, {"q": "{ customers { edges { node { id } } } }"})["bulkOperationRunQuery"]
    assert second["bulkOperation"] is None
    assert second["userErrors"] == [{"field": None, "code": "OPERATION_IN_PROGRESS", "message":
                                     f"A bulk query operation for this app and shop is already in progress: {first['id']}."}]
    cancel = data(shop, "mutation($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { status } userErrors { message } } }",
                  {"id": first["id"]})["bulkOperationCancel"]
    assert cancel == {"bulkOperation": {"status": "CANCELING"}, "userErrors": []}
    assert wait_bulk(shop, first["id"])["status"] == "CANCELED"
    again = data(shop, "mutation($id: ID!) { bulkOperationCancel(id: $id) { userErrors { message } } }", {"id": first["id"]})
    assert again["bulkOperationCancel"]["userErrors"][0]["message"].endswith("when it is canceled")

    shop.control("PUT", "graphql/bulk", {"next": "fail"})
    failing = data(shop, RUN, {"q": PRODUCTS_BULK})["bulkOperationRunQuery"]["bulkOperation"]
    op = wait_bulk(shop, failing["id"])
    assert (op["status"], op["errorCode"], op["url"]) == ("FAILED", "INTERNAL_SERVER_ERROR", None)
    assert data(shop, "{ currentBulkOperation { id } }")["currentBulkOperation"]["id"] == failing["id"]

    shop.control("PUT", "graphql/bulk", {"next": "stall"})
    held = data(shop, RUN, {"q": "{ customers { edges { node { id email } } } }"})["bulkOperationRunQuery"]["bulkOperation"]
    wait_bulk(shop, held["id"], ("RUNNING",))
    shop.control("POST", "graphql/bulk/release")
    done = wait_bulk(shop, held["id"])
    assert done["status"] == "COMPLETED" and done["objectCount"] == str(len(shop.app.customers))


def test_bulk_query_validation_and_scopes(shop: Shop) -> None:
    bad = data(shop, RUN, {"q": "{ shop { name } }"})["bulkOperationRunQuery"]
    assert bad["bulkOperation"] is None and bad["userErrors"][0]["field"] == ["query"]
    assert bad["userErrors"][0]["code"] == "INVALID"
    broken = data(shop, RUN, {"q": "{ products { edges { node { nope } } } }"})["bulkOperationRunQuery"]
    assert broken["userErrors"][0]["code"] == "INVALID" and "nope" in broken["userErrors"][0]["message"]
    shop.control("PUT", "graphql/scopes", {"scopes": ["read_products"]})
    op = data(shop, RUN, {"q": "{ customers { edges { node { id } } } }"})["bulkOperationRunQuery"]["bulkOperation"]
    done = wait_bulk(shop, op["id"])
    assert (done["status"], done["errorCode"]) == ("FAILED", "ACCESS_DENIED")


# -- Shopify's own client -------------------------------------------------------------------------
def test_shopify_python_api_graphql_helper_works_unchanged(shop: Shop) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), shop.url, TOKEN], capture_output=True, text=True,
                          timeout=60, cwd=SCRIPT.parent.parent.parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["shop"]["data"]["shop"]["currencyCode"] == "NOK"
    assert out["shop"]["extensions"]["cost"]["requestedQueryCost"] == 1
    ids = [num(c["id"]) for c in out["customers"]["data"]["customers"]["nodes"]]
    assert ids == shop.app.customers.ids[:3]
    created = out["created"]["data"]["customerCreate"]
    assert created["userErrors"] == [] and created["customer"]["email"] == "graphql-offisiell@example.no"
    assert out["rest_view"]["last_name"] == "Klient" and out["rest_view"]["email"] == "graphql-offisiell@example.no"
