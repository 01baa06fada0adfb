"""The Shopify sandbox's GraphQL Admin API at its HTTP boundary: resolvers, paging, search, mutations,
userErrors, scopes, and that REST and GraphQL are one store."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import pytest
import requests

from talk_assets.systems.shopify import graphql_search as gs
from talk_assets.systems.shopify.graphql_schema import admin_schema

from .conftest import API, TOKEN, Shop
from .gql import data, gql, num

UTC_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")



@pytest.fixture(autouse=True, scope="module")
def _schema_built() -> None:
    """Build Shopify's schema (seconds on a busy machine) before the first request's timeout runs."""
    admin_schema()

# -- transport, auth ---------------------------------------------------------------------------
def test_bad_token_is_shopifys_401_and_graphql_does_not_use_the_rest_bucket(shop: Shop) -> None:
    resp = requests.post(f"{shop.url}{API}/graphql.json", json={"query": "{ shop { name } }"},
                         headers={"X-Shopify-Access-Token": "shpat_wrong"}, timeout=60)
    assert resp.status_code == 401
    assert resp.json() == {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
    ok = requests.post(f"{shop.url}{API}/graphql.json", json={"query": "{ shop { name } }"},
                       headers={"X-Shopify-Access-Token": TOKEN}, timeout=60)
    assert ok.status_code == 200 and "X-Shopify-Shop-Api-Call-Limit" not in ok.headers
    raw = requests.post(f"{shop.url}{API}/graphql.json", data="{ shop { currencyCode } }",
                        headers={"X-Shopify-Access-Token": TOKEN, "Content-Type": "application/graphql"}, timeout=60)
    assert raw.json()["data"] == {"shop": {"currencyCode": "NOK"}}
    missing = requests.post(f"{shop.url}{API}/graphql.json", json={"variables": {}},
                            headers={"X-Shopify-Access-Token": TOKEN}, timeout=60)
    assert missing.status_code == 400 and missing.json() == {"errors": {"query": "Required parameter missing or invalid"}}


def test_invalid_documents_are_refused_by_shopifys_schema(shop: Shop) -> None:
    body = gql(shop, "{ customers(first: 1) { nodes { notAField } } }", expect_errors=True)
    assert "data" not in body and "notAField" in body["errors"][0]["message"]
    body = gql(shop, "{ customers(first: 1) { nodes { id } ", expect_errors=True)
    assert body["errors"][0]["message"].startswith("Syntax Error")


# -- every read resolver -----------------------------------------------------------------------
def test_shop_and_installation(shop: Shop) -> None:
    d = data(shop, "{ shop { id name currencyCode taxesIncluded ianaTimezone myshopifyDomain "
                   "enabledPresentmentCurrencies } currentAppInstallation { id accessScopes { handle } } }")
    assert d["shop"]["currencyCode"] == "NOK" and d["shop"]["taxesIncluded"] is True
    assert d["shop"]["ianaTimezone"] == "Europe/Oslo" and d["shop"]["id"].startswith("gid://shopify/Shop/")
    handles = {s["handle"] for s in d["currentAppInstallation"]["accessScopes"]}
    assert {"read_customers", "write_customers", "read_products", "write_products", "read_orders",
            "write_orders", "read_all_orders", "read_inventory", "write_inventory", "read_locations"} <= handles


CUSTOMER_FIELDS = """id legacyResourceId email firstName lastName phone note tags state verifiedEmail taxExempt
  createdAt updatedAt displayName defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber }
  defaultAddress { id address1 address2 city zip countryCodeV2 company phone firstName lastName }
  addressesV2(first: 5) { nodes { address1 } }"""


def test_customers_resolve_from_the_rest_records(shop: Shop) -> None:
    seen: list[int] = []
    after = None
    while True:
        d = data(shop, f"query($after: String) {{ customers(first: 7, after: $after) {{ "
                       f"nodes {{ {CUSTOMER_FIELDS} }} pageInfo {{ hasNextPage hasPreviousPage endCursor }} }} }}",
                 {"after": after})["customers"]
        for c in d["nodes"]:
            rec = shop.app.customers.rows[num(c["id"])]
            assert c["legacyResourceId"] == str(rec["id"]) and c["email"] == rec["email"]
            assert c["firstName"] == rec["first_name"] and c["lastName"] == rec["last_name"]
            assert c["phone"] == rec["phone"] and c["state"] == rec["state"].upper()
            assert c["tags"] == [t for t in rec["tags"].split(", ") if t]
            assert UTC_RE.match(c["createdAt"]) and UTC_RE.match(c["updatedAt"])
            assert (c["defaultEmailAddress"] or {}).get("emailAddress") == rec["email"]
            if rec.get("default_address"):
                a = rec["default_address"]
                assert c["defaultAddress"]["city"] == a["city"] and c["defaultAddress"]["countryCodeV2"] == a["country_code"]
                assert c["defaultAddress"]["id"].startswith("gid://shopify/MailingAddress/")
                assert len(c["addressesV2"]["nodes"]) == len(rec["addresses"])
            else:
                assert c["defaultAddress"] is None
            seen.append(rec["id"])
        assert d["pageInfo"]["hasPreviousPage"] == (after is not None)
        if not d["pageInfo"]["hasNextPage"]:
            break
        after = d["pageInfo"]["endCursor"]
    assert seen == shop.app.customers.ids
    one = data(shop, "query($id: ID!) { customer(id: $id) { email } node(id: $id) { id ... on Customer { email } } }",
               {"id": f"gid://shopify/Customer/{seen[0]}"})
    assert one["customer"]["email"] == one["node"]["email"] == shop.app.customers.rows[seen[0]]["email"]
    assert data(shop, '{ customer(id: "gid://shopify/Customer/1") { id } }')["customer"] is None


def test_products_variants_and_inventory(shop: Shop) -> None:
    d: list[dict] = []
    after = None
    while True:  # five products a page keeps the requested cost under Shopify's 1,000
        page = data(shop, """query($after: String) { products(first: 5, after: $after) { nodes { id title handle vendor
            productType status tags descriptionHtml createdAt updatedAt totalInventory variantsCount { count }
            options { name values }
            variants(first: 10) { nodes { id sku barcode price compareAtPrice title position taxable inventoryPolicy
              inventoryQuantity selectedOptions { name value } product { id }
              inventoryItem { id sku tracked inventoryLevels(first: 1) { nodes { id
                quantities(names: ["available", "on_hand", "committed"]) { name quantity }
                location { id name } item { id } } } } } } } pageInfo { hasNextPage endCursor } } }""",
                    {"after": after})["products"]
        d += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert [num(p["id"]) for p in d] == shop.app.products.ids
    for p in d:
        rec = shop.app.products.rows[num(p["id"])]
        assert (p["title"], p["handle"], p["vendor"], p["productType"]) == (
            rec["title"], rec["handle"], rec["vendor"], rec["product_type"])
        assert p["status"] == "ACTIVE" and p["variantsCount"]["count"] == len(rec["variants"])
        assert p["totalInventory"] == sum(v["inventory_quantity"] for v in rec["variants"])
        for v, vr in zip(p["variants"]["nodes"], rec["variants"], strict=True):
            assert num(v["id"]) == vr["id"] and v["sku"] == vr["sku"] and v["price"] == vr["price"]
            assert v["inventoryPolicy"] == "DENY" and v["product"]["id"] == p["id"]
            assert v["selectedOptions"] == [{"name": "Title", "value": vr["option1"]}]
            item = v["inventoryItem"]
            assert num(item["id"]) == vr["inventory_item_id"] and item["sku"] == vr["sku"]
            level = item["inventoryLevels"]["nodes"][0]
            q = {x["name"]: x["quantity"] for x in level["quantities"]}
            assert q == {"available": vr["inventory_quantity"], "on_hand": vr["inventory_quantity"], "committed": 0}
            assert level["location"]["name"] == "Lager Oslo" and level["item"]["id"] == item["id"]
    vid = d[0]["variants"]["nodes"][0]["id"]
    item_id = d[0]["variants"]["nodes"][0]["inventoryItem"]["id"]
    level_id = d[0]["variants"]["nodes"][0]["inventoryItem"]["inventoryLevels"]["nodes"][0]["id"]
    one = data(shop, """query($p: ID!, $v: ID!, $i: ID!, $l: ID!) { product(id: $p) { title }
        productVariant(id: $v) { sku } inventoryItem(id: $i) { sku } inventoryLevel(id: $l) { quantities(names: ["available"]) { quantity } }
        nodes(ids: [$p, $v, $i]) { id } }""", {"p": d[0]["id"], "v": vid, "i": item_id, "l": level_id})
    assert one["product"]["title"] == d[0]["title"] and one["productVariant"]["sku"] == d[0]["variants"]["nodes"][0]["sku"]
    assert one["inventoryItem"]["sku"] == one["productVariant"]["sku"]
    assert [n["id"] for n in one["nodes"]] == [d[0]["id"], vid, item_id]


def test_product_variants_and_inventory_items_connections_with_sku_search(shop: Shop) -> None:
    all_variants = [v for pid in shop.app.products.ids for v in shop.app.products.rows[pid]["variants"]]
    d = data(shop, "{ productVariants(first: 250) { nodes { id sku } } inventoryItems(first: 250) { nodes { id sku } } }")
    assert [num(v["id"]) for v in d["productVariants"]["nodes"]] == sorted(v["id"] for v in all_variants)
    assert sorted(num(i["id"]) for i in d["inventoryItems"]["nodes"]) == sorted(v["inventory_item_id"] for v in all_variants)
    sku = all_variants[3]["sku"]
    d = data(shop, "query($q: String) { productVariants(first: 5, query: $q) { nodes { sku } } "
                   "inventoryItems(first: 5, query: $q) { nodes { sku } } products(first: 5, query: $q) { nodes { id } } }",
             {"q": f"sku:{sku}"})
    assert [v["sku"] for v in d["productVariants"]["nodes"]] == [sku] == [i["sku"] for i in d["inventoryItems"]["nodes"]]
    assert [num(p["id"]) for p in d["products"]["nodes"]] == [all_variants[3]["product_id"]]


def test_orders_with_line_items_customer_staff_and_money(shop: Shop) -> None:
    d: list[dict] = []
    after = None
    while True:
        page = data(shop, """query($after: String) { orders(first: 10, after: $after) { nodes { id name email createdAt
            updatedAt processedAt closedAt cancelledAt closed currencyCode sourceIdentifier poNumber note tags
            displayFinancialStatus displayFulfillmentStatus
            totalPriceSet { shopMoney { amount currencyCode } } totalTaxSet { shopMoney { amount } }
            customer { id email } staffMember { id }
            lineItems(first: 10) { nodes { id sku title quantity variantTitle vendor variant { id } product { id }
              originalUnitPriceSet { shopMoney { amount currencyCode } } } } } pageInfo { hasNextPage endCursor } } }""",
                    {"after": after})["orders"]
        d += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # Every status (unlike REST's `status=open` default), in the schema's default order, PROCESSED_AT.
    by_processed = sorted(shop.app.orders.ids, key=lambda i: (
        datetime.fromisoformat(shop.app.orders.rows[i]["processed_at"]), i))
    assert [num(o["id"]) for o in d] == by_processed
    for o in d:
        rec = shop.app.orders.rows[num(o["id"])]
        assert o["name"] == rec["name"] and o["email"] == rec["email"]
        assert o["totalPriceSet"]["shopMoney"] == {"amount": rec["total_price"], "currencyCode": "NOK"}
        assert o["closed"] == (rec["closed_at"] is not None)
        assert o["displayFinancialStatus"] == rec["financial_status"].upper()
        assert (o["customer"] or {}).get("id") == ((rec.get("customer") or {}).get("admin_graphql_api_id"))
        assert (o["staffMember"] or {}).get("id") == (f"gid://shopify/StaffMember/{rec['user_id']}"
                                                      if rec["user_id"] is not None else None)
        for li, lr in zip(o["lineItems"]["nodes"], rec["line_items"], strict=True):
            assert (li["sku"], li["quantity"], li["originalUnitPriceSet"]["shopMoney"]["amount"]) == (
                lr["sku"], lr["quantity"], lr["price"])
            assert (num(li["variant"]["id"]) if li["variant"] else None) == lr["variant_id"]
    first = d[0]
    assert data(shop, "query($id: ID!) { order(id: $id) { name } }", {"id": first["id"]})["order"]["name"] == first["name"]


def test_customer_orders_count_and_last_order(shop: Shop) -> None:
    app = shop.app
    by_customer: dict[int, list[int]] = {}
    for oid in app.orders.ids:
        cid = (app.orders.rows[oid].get("customer") or {}).get("id")
        if cid:
            by_customer.setdefault(cid, []).append(oid)
    cid, oids = max(by_customer.items(), key=lambda kv: len(kv[1]))
    lonely = next(c for c in app.customers.ids if c not in by_customer)
    d = data(shop, """query($a: ID!, $b: ID!) { a: customer(id: $a) { numberOfOrders canDelete lastOrder { id }
        amountSpent { amount currencyCode } orders(first: 50) { nodes { id } } }
        b: customer(id: $b) { numberOfOrders canDelete lastOrder { id } orders(first: 5) { nodes { id } } } }""",
             {"a": f"gid://shopify/Customer/{cid}", "b": f"gid://shopify/Customer/{lonely}"})
    assert d["a"]["numberOfOrders"] == str(len(oids)) and d["a"]["canDelete"] is False
    assert [num(o["id"]) for o in d["a"]["orders"]["nodes"]] == oids and num(d["a"]["lastOrder"]["id"]) == oids[-1]
    total = sum(float(app.orders.rows[o]["total_price"]) for o in oids)
    assert float(d["a"]["amountSpent"]["amount"]) == round(total, 2)
    assert d["b"] == {"numberOfOrders": "0", "canDelete": True, "lastOrder": None, "orders": {"nodes": []}}


def test_locations(shop: Shop) -> None:
    d = data(shop, "{ locations(first: 10) { nodes { id legacyResourceId name isActive fulfillsOnlineOrders "
                   "address { address1 city zip countryCode } } } location { name } }")
    [loc] = d["locations"]["nodes"]
    rec = shop.app.locations.rows[num(loc["id"])]
    assert loc["name"] == rec["name"] == d["location"]["name"] and loc["isActive"] is True
    assert loc["address"] == {"address1": rec["address1"], "city": rec["city"], "zip": rec["zip"], "countryCode": "NO"}


# -- paging and search -------------------------------------------------------------------------
def test_updated_at_filter_sort_reverse_and_backward_paging(shop: Shop) -> None:
    app = shop.app
    ids = app.customers.ids
    cutoff = sorted(app.customers.changed.values())[len(ids) // 2]
    want = sorted((cid for cid in ids if app.customers.changed[cid] > cutoff),
                  key=lambda c: (app.customers.changed[c], c))
    q = f"updated_at:>'{cutoff.isoformat()}'"
    got: list[int] = []
    after = None
    while True:
        page = data(shop, "query($q: String, $a: String) { customers(first: 4, after: $a, query: $q, sortKey: UPDATED_AT) "
                          "{ edges { cursor node { id updatedAt } } pageInfo { hasNextPage endCursor } } }",
                    {"q": q, "a": after})["customers"]
        got += [num(e["node"]["id"]) for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert got == want and want
    rev = data(shop, "query($q: String) { customers(first: 250, query: $q, sortKey: UPDATED_AT, reverse: true) "
                     "{ nodes { id } } }", {"q": q})["customers"]["nodes"]
    assert [num(n["id"]) for n in rev] == want[::-1]
    last = data(shop, "{ customers(last: 3) { nodes { id } pageInfo { hasNextPage hasPreviousPage startCursor } } }")
    assert [num(n["id"]) for n in last["customers"]["nodes"]] == ids[-3:]
    assert last["customers"]["pageInfo"]["hasPreviousPage"] is True
    before = data(shop, "query($b: String) { customers(last: 2, before: $b) { nodes { id } } }",
                  {"b": last["customers"]["pageInfo"]["startCursor"]})["customers"]["nodes"]
    assert [num(n["id"]) for n in before] == ids[-5:-3]



@pytest.mark.parametrize("kind", ["customer", "order", "product"])
def test_reads_of_changes_answer_as_a_filter_of_every_record(shop: Shop, kind: str) -> None:
    """The change index (issue #15: at 1M records the sandbox tested every record on each read) never
    changes an answer: after a few edits, bounds with `>`, `>=`, a date, other terms, OR and negation
    give exactly the records a test of every record gives, in connections and counts."""
    app = shop.app
    table = getattr(app, f"{kind}s")
    shop.advance(60)
    cutoff = datetime.fromisoformat(shop.control("GET", "clock")["now"])
    shop.advance(1)
    # few enough for the index to answer (a quarter of the table at most; the seed has 5 orders)
    edited = [table.ids[1], table.ids[-2]] if len(table) >= 8 else [table.ids[1]]
    for rid in edited:
        body = {"note": "Ødegård-van der Berg 🌲"} if kind != "product" else {"title": "Ærlig\nsåpe 🧼"}
        assert shop.api("PUT", f"{kind}s/{rid}.json", json={kind: {"id": rid, **body}}).status_code == 200
    changed = table.changed
    iso = cutoff.isoformat()
    some = table.ids[0]
    queries = {
        f"updated_at:>'{iso}'": lambda r: changed[r] > cutoff,
        f"updated_at:>='{iso}'": lambda r: changed[r] >= cutoff,
        f"updated_at:>'{iso}' id:>{edited[0]}": lambda r: changed[r] > cutoff and r > edited[0],
        f"updated_at:>'{iso}' OR id:{some}": lambda r: changed[r] > cutoff or r == some,
        f"-updated_at:>'{iso}'": lambda r: not changed[r] > cutoff,
        f"updated_at:>{cutoff.date().isoformat()}": lambda r: changed[r] > datetime.combine(
            cutoff.date(), datetime.min.time(), tzinfo=gs.SHOP_TZ),
    }
    plural = f"{kind}s"
    for q, want_test in queries.items():
        want = [rid for rid in table.ids if want_test(rid)]
        got = data(shop, f"query($q: String) {{ {plural}(first: 250, query: $q, sortKey: ID) {{ nodes {{ id }} }} "
                         f"{plural}Count(query: $q) {{ count precision }} }}", {"q": q})
        assert [num(n["id"]) for n in got[plural]["nodes"]] == want, q
        assert got[f"{plural}Count"] == {"count": len(want), "precision": "EXACT"}, q
    assert sorted(edited) == [rid for rid in table.ids if changed[rid] > cutoff]
    assert table.ids_changed(changed_gt=cutoff) == sorted(edited)  # the index answered the narrow reads

def test_email_search_unknown_fields_and_page_size_rules(shop: Shop) -> None:
    rec = next(r for r in shop.app.customers.rows.values() if r["email"])
    body = gql(shop, "query($q: String) { customers(first: 5, query: $q) { nodes { id } } }",
               {"q": f"email:{rec['email'].upper()} colour:blue"})
    assert [num(n["id"]) for n in body["data"]["customers"]["nodes"]] == [rec["id"]]
    assert body["extensions"]["search"] == [{"path": ["customers"], "query": f"email:{rec['email'].upper()} colour:blue",
                                             "warnings": [{"field": "colour", "message": "Invalid search field for this query."}]}]
    neg = data(shop, "query($q: String) { customers(first: 250, query: $q) { nodes { id } } }",
               {"q": f"-email:{rec['email']}"})["customers"]["nodes"]
    assert len(neg) == len(shop.app.customers) - 1
    for doc in ("{ customers { nodes { id } } }", "{ customers(first: 251) { nodes { id } } }"):
        body = gql(shop, doc, expect_errors=True)
        assert body["data"] is None and body["errors"][0]["path"] == ["customers"]


# -- REST and GraphQL are one store ------------------------------------------------------------
def test_rest_edit_is_visible_through_graphql_and_back(shop: Shop) -> None:
    cid = shop.app.customers.ids[2]
    gid = f"gid://shopify/Customer/{cid}"
    before = data(shop, "query($id: ID!) { customer(id: $id) { updatedAt } }", {"id": gid})["customer"]["updatedAt"]
    shop.advance(5)
    assert shop.api("PUT", f"customers/{cid}.json", json={"customer": {"first_name": "Åse-Marie 🌲"}}).status_code == 200
    after = data(shop, "query($id: ID!) { customer(id: $id) { firstName updatedAt } }", {"id": gid})["customer"]
    assert after["firstName"] == "Åse-Marie 🌲" and after["updatedAt"] > before
    d = data(shop, "mutation($i: CustomerInput!) { customerUpdate(input: $i) { customer { lastName tags } userErrors { field message } } }",
             {"i": {"id": gid, "lastName": "van der Berg\nandre linje", "tags": ["vip", " vip ", "ny"]}})
    assert d["customerUpdate"]["userErrors"] == [] and d["customerUpdate"]["customer"]["tags"] == ["vip", "ny"]
    rest = shop.api("GET", f"customers/{cid}.json").json()["customer"]
    assert rest["last_name"] == "van der Berg\nandre linje" and rest["first_name"] == "Åse-Marie 🌲"
    assert rest["tags"] == "vip, ny"
    found = data(shop, "query($q: String) { customers(first: 1, query: $q, sortKey: UPDATED_AT, reverse: true) "
                       "{ nodes { id } } }", {"q": f"updated_at:>'{after['updatedAt']}'"})["customers"]["nodes"]
    assert [n["id"] for n in found] == [gid]


# -- mutations and userErrors ------------------------------------------------------------------
CREATE = """mutation($i: CustomerInput!) { customerCreate(input: $i) {
  customer { id email firstName lastName phone note tags defaultAddress { city countryCodeV2 } } userErrors { field message } } }"""


def test_customer_create_hostile_values_and_user_errors(shop: Shop) -> None:
    long_note = "å" * 10_000
    d = data(shop, CREATE, {"i": {"email": "O'Brien+test@example.no", "firstName": "Đặng", "lastName": "Ø",
                                  "note": long_note, "phone": "+47 912 34 567",
                                  "addresses": [{"address1": "Gate 1\n2. etg", "city": "Tromsø", "countryCode": "NO"}]}})
    c = d["customerCreate"]["customer"]
    assert d["customerCreate"]["userErrors"] == [] and c["note"] == long_note and c["phone"] == "+4791234567"
    assert c["defaultAddress"] == {"city": "Tromsø", "countryCodeV2": "NO"}
    rest = shop.api("GET", f"customers/{num(c['id'])}.json").json()["customer"]
    assert rest["email"] == "O'Brien+test@example.no" and rest["note"] == long_note
    taken = data(shop, CREATE, {"i": {"email": "o'brien+TEST@example.no"}})["customerCreate"]
    assert taken == {"customer": None, "userErrors": [{"field": ["email"], "message": "Email has already been taken"}]}
    bad = data(shop, CREATE, {"i": {"email": "not an email", "phone": "12"}})["customerCreate"]
    assert {(tuple(e["field"]), e["message"]) for e in bad["userErrors"]} == {
        (("email",), "Email is invalid"), (("phone",), "Phone is invalid")}
    empty = data(shop, CREATE, {"i": {"note": "only a note"}})["customerCreate"]
    assert empty["customer"] is None and empty["userErrors"][0]["field"] is None
    missing = data(shop, "mutation { customerUpdate(input: {id: \"gid://shopify/Customer/1\", firstName: \"x\"}) "
                         "{ customer { id } userErrors { field message } } }")["customerUpdate"]
    assert missing == {"customer": None, "userErrors": [{"field": ["id"], "message": "Customer does not exist"}]}


PRODUCT_SET = """mutation($input: ProductSetInput!, $id: ProductSetIdentifiers) { productSet(input: $input, identifier: $id) {
  product { id title handle status tags options { name values } variants(first: 10) { nodes { id sku price title selectedOptions { name value } } } }
  userErrors { field message code } } }"""


def test_product_set_creates_updates_and_deletes_variants(shop: Shop) -> None:
    options = [{"name": "Størrelse", "values": [{"name": "S"}, {"name": "M"}]}]
    variants = [{"optionValues": [{"optionName": "Størrelse", "name": "S"}], "price": "499.00", "sku": "SET-S"},
                {"optionValues": [{"optionName": "Størrelse", "name": "M"}], "price": "529.50",
                 "inventoryItem": {"sku": "SET-M"}}]
    d = data(shop, PRODUCT_SET, {"input": {"title": "Settgenser 🧶", "status": "DRAFT", "tags": ["ull"],
                                           "productOptions": options, "variants": variants}})["productSet"]
    assert d["userErrors"] == []
    p = d["product"]
    assert p["status"] == "DRAFT" and p["options"] == [{"name": "Størrelse", "values": ["S", "M"]}]
    assert [(v["sku"], v["price"]) for v in p["variants"]["nodes"]] == [("SET-S", "499.00"), ("SET-M", "529.50")]
    assert p["variants"]["nodes"][0]["selectedOptions"] == [{"name": "Størrelse", "value": "S"}]
    m_id = p["variants"]["nodes"][1]["id"]
    d = data(shop, PRODUCT_SET, {"id": {"id": p["id"]}, "input": {
        "title": "Settgenser 2", "productOptions": [{"name": "Størrelse", "values": [{"name": "M"}]}],
        "variants": [{"optionValues": [{"optionName": "Størrelse", "name": "M"}], "price": "600.00"}]}})["productSet"]
    assert d["userErrors"] == [] and [v["id"] for v in d["product"]["variants"]["nodes"]] == [m_id]
    rest = shop.api("GET", f"products/{num(p['id'])}.json").json()["product"]
    assert rest["title"] == "Settgenser 2" and [(v["sku"], v["price"]) for v in rest["variants"]] == [("SET-M", "600.00")]
    too_long = data(shop, PRODUCT_SET, {"input": {"title": "x" * 256}})["productSet"]
    assert too_long["product"] is None
    assert too_long["userErrors"] == [{"field": ["input", "title"], "code": "INVALID_INPUT",
                                       "message": "Title is too long (maximum is 255 characters)"}]
    gone = data(shop, PRODUCT_SET, {"id": {"id": "gid://shopify/Product/1"}, "input": {"title": "x"}})["productSet"]
    assert gone["userErrors"][0]["code"] == "PRODUCT_DOES_NOT_EXIST"


def test_product_create_update_and_bulk_variant_mutations(shop: Shop) -> None:
    d = data(shop, """mutation { productCreate(product: {title: "Lue", vendor: "Fjellull", productType: "Hodeplagg"}) {
        product { id title vendor variants(first: 5) { nodes { id title } } } userErrors { field message } } }""")
    p = d["productCreate"]["product"]
    assert d["productCreate"]["userErrors"] == [] and [v["title"] for v in p["variants"]["nodes"]] == ["Default Title"]
    d = data(shop, """mutation($p: ID!) { productVariantsBulkCreate(productId: $p, variants: [
          {optionValues: [{optionName: "Title", name: "Rød"}], price: "199.00", inventoryItem: {sku: "LUE-ROD"}},
          {optionValues: [{optionName: "Title", name: "Blå"}], price: "199.00", inventoryItem: {sku: "LUE-BLA"}}]) {
        productVariants { id sku } product { variants(first: 5) { nodes { sku } } } userErrors { field message code } } }""",
             {"p": p["id"]})["productVariantsBulkCreate"]
    assert d["userErrors"] == [] and [v["sku"] for v in d["productVariants"]] == ["LUE-ROD", "LUE-BLA"]
    assert [v["sku"] for v in d["product"]["variants"]["nodes"]] == ["LUE-ROD", "LUE-BLA"]  # default variant removed
    red = d["productVariants"][0]["id"]
    d = data(shop, """mutation($p: ID!, $v: ID!) { productVariantsBulkUpdate(productId: $p, variants: [{id: $v, price: "149.00"}]) {
        productVariants { id price } userErrors { field message code } } }""", {"p": p["id"], "v": red})
    assert d["productVariantsBulkUpdate"]["productVariants"] == [{"id": red, "price": "149.00"}]
    bad = data(shop, """mutation($p: ID!) { productVariantsBulkUpdate(productId: $p, variants: [{id: "gid://shopify/ProductVariant/1", price: "1"}]) {
        userErrors { field message code } } }""", {"p": p["id"]})["productVariantsBulkUpdate"]["userErrors"]
    assert bad[0]["code"] == "PRODUCT_VARIANT_DOES_NOT_EXIST"
    neg = data(shop, """mutation($p: ID!, $v: ID!) { productVariantsBulkUpdate(productId: $p, variants: [{id: $v, price: "-1"}]) {
        userErrors { field message code } } }""", {"p": p["id"], "v": red})["productVariantsBulkUpdate"]["userErrors"]
    assert neg and neg[0]["message"] == "Price must be greater than or equal to 0"
    upd = data(shop, """mutation($id: ID!) { productUpdate(product: {id: $id, title: "Lue 2", tags: ["a"]}) {
        product { title tags } userErrors { field message } } }""", {"id": p["id"]})["productUpdate"]
    assert upd == {"product": {"title": "Lue 2", "tags": ["a"]}, "userErrors": []}
    assert shop.api("GET", f"products/{num(p['id'])}.json").json()["product"]["variants"][0]["price"] == "149.00"


SET_QTY = """mutation($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { reason changes { name delta quantityAfterChange item { id } location { id } } }
    userErrors { field message code } } }"""


def test_inventory_set_quantities_compare_and_swap_and_idempotency(shop: Shop) -> None:
    item = shop.app.levels.ids[0]
    level = shop.app.levels.rows[item]
    have = level["available"]
    q = {"inventoryItemId": f"gid://shopify/InventoryItem/{item}",
         "locationId": f"gid://shopify/Location/{level['location_id']}", "quantity": have + 7}
    no_key = gql(shop, SET_QTY.replace("@idempotent(key: $key)", "").replace(", $key: String!", ""),
                 {"input": {"name": "available", "reason": "correction", "quantities": [{**q, "changeFromQuantity": have}]}},
                 expect_errors=True)
    assert no_key["errors"][0]["path"] == ["inventorySetQuantities"]
    stale = data(shop, SET_QTY, {"key": str(uuid.uuid4()), "input": {
        "name": "available", "reason": "correction", "quantities": [{**q, "changeFromQuantity": have - 1}]}})
    assert stale["inventorySetQuantities"]["userErrors"] == [{
        "field": ["input", "quantities", "0", "changeFromQuantity"], "code": "CHANGE_FROM_QUANTITY_STALE",
        "message": "The changeFromQuantity value does not match persisted value."}]
    required = data(shop, SET_QTY, {"key": str(uuid.uuid4()), "input": {
        "name": "available", "reason": "correction", "quantities": [q]}})["inventorySetQuantities"]["userErrors"]
    assert required[0]["code"] == "COMPARE_QUANTITY_REQUIRED"
    bad = data(shop, SET_QTY, {"key": str(uuid.uuid4()), "input": {
        "name": "incoming", "reason": "because", "quantities": [{**q, "changeFromQuantity": None}]}})
    assert {e["code"] for e in bad["inventorySetQuantities"]["userErrors"]} == {"INVALID_NAME", "INVALID_REASON"}
    key = str(uuid.uuid4())
    variables = {"key": key, "input": {"name": "available", "reason": "correction",
                                       "quantities": [{**q, "changeFromQuantity": have}]}}
    ok = data(shop, SET_QTY, variables)["inventorySetQuantities"]
    assert ok["userErrors"] == [] and ok["inventoryAdjustmentGroup"]["changes"][0]["delta"] == 7
    again = data(shop, SET_QTY, variables)["inventorySetQuantities"]  # a retry: applied once
    assert again == ok and shop.app.levels.rows[item]["available"] == have + 7
    rest = shop.api("GET", "inventory_levels.json", params={"inventory_item_ids": item}).json()["inventory_levels"]
    assert rest[0]["available"] == have + 7
    other = data(shop, SET_QTY, {**variables, "input": {**variables["input"], "quantities": [
        {**q, "quantity": 1, "changeFromQuantity": None}]}})["inventorySetQuantities"]["userErrors"]
    assert other[0]["code"] == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"


ORDER_CREATE = """mutation($order: OrderCreateOrderInput!) { orderCreate(order: $order) {
  order { id name email sourceIdentifier note tags customer { id email } totalPriceSet { shopMoney { amount } }
          lineItems(first: 5) { nodes { sku quantity variant { id } } } }
  userErrors { field message code } } }"""


def test_order_create_with_customer_and_source_identifier(shop: Shop) -> None:
    prod = shop.app.products.rows[shop.app.products.ids[0]]
    variant = prod["variants"][0]
    cid = shop.app.customers.ids[0]
    d = data(shop, ORDER_CREATE, {"order": {
        "email": "kjøper@example.no", "sourceIdentifier": "webshop-123", "note": "Levér 🚪", "tags": ["talk-assets"],
        "customer": {"toAssociate": {"id": f"gid://shopify/Customer/{cid}"}},
        "lineItems": [{"variantId": variant["admin_graphql_api_id"], "quantity": 2,
                       "priceSet": {"shopMoney": {"amount": "100.00", "currencyCode": "NOK"}}}]}})["orderCreate"]
    assert d["userErrors"] == []
    o = d["order"]
    assert o["sourceIdentifier"] == "webshop-123" and o["customer"]["id"] == f"gid://shopify/Customer/{cid}"
    assert o["totalPriceSet"]["shopMoney"]["amount"] == "200.00" and o["tags"] == ["talk-assets"]
    assert o["lineItems"]["nodes"] == [{"sku": variant["sku"], "quantity": 2, "variant": {"id": variant["admin_graphql_api_id"]}}]
    rest = shop.api("GET", f"orders/{num(o['id'])}.json").json()["order"]
    assert rest["source_identifier"] == "webshop-123" and rest["customer"]["id"] == cid
    bad = data(shop, ORDER_CREATE, {"order": {"lineItems": [{"variantId": "gid://shopify/ProductVariant/1", "quantity": 1}]}})
    assert bad["orderCreate"]["order"] is None
    assert bad["orderCreate"]["userErrors"][0]["field"] == ["order", "lineItems"]
    assert bad["orderCreate"]["userErrors"][0]["code"] == "INVALID"


def test_webhook_subscriptions_are_stored(shop: Shop) -> None:
    create = """mutation($t: WebhookSubscriptionTopic!, $u: String!) { webhookSubscriptionCreate(topic: $t, webhookSubscription: {uri: $u}) {
        webhookSubscription { id topic uri format } userErrors { field message } } }"""
    d = data(shop, create, {"t": "CUSTOMERS_UPDATE", "u": "https://hooks.example.no/shopify"})["webhookSubscriptionCreate"]
    assert d["userErrors"] == [] and d["webhookSubscription"]["format"] == "JSON"
    local = data(shop, create, {"t": "ORDERS_CREATE", "u": "http://127.0.0.1:9/hook"})["webhookSubscriptionCreate"]
    assert local["userErrors"] == []
    dup = data(shop, create, {"t": "CUSTOMERS_UPDATE", "u": "https://hooks.example.no/shopify"})["webhookSubscriptionCreate"]
    assert dup["webhookSubscription"] is None and "already been taken" in dup["userErrors"][0]["message"]
    plain = data(shop, create, {"t": "CUSTOMERS_UPDATE", "u": "http://hooks.example.no/x"})["webhookSubscriptionCreate"]
    assert plain["userErrors"] and plain["webhookSubscription"] is None
    listed = data(shop, "{ webhookSubscriptions(first: 10) { nodes { id topic uri } } }")["webhookSubscriptions"]["nodes"]
    assert [(w["topic"], w["uri"]) for w in listed] == [("CUSTOMERS_UPDATE", "https://hooks.example.no/shopify"),
                                                        ("ORDERS_CREATE", "http://127.0.0.1:9/hook")]
    assert [w["uri"] for w in shop.app.graphql_api().webhooks.values()] == [w["uri"] for w in listed]
    gone = data(shop, "mutation($id: ID!) { webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { message } } }",
                {"id": listed[0]["id"]})["webhookSubscriptionDelete"]
    assert gone == {"deletedWebhookSubscriptionId": listed[0]["id"], "userErrors": []}
    topics = data(shop, "{ webhookSubscriptions(first: 10, topics: [CUSTOMERS_UPDATE]) { nodes { id } } }")
    assert topics["webhookSubscriptions"]["nodes"] == []


# -- access scopes -----------------------------------------------------------------------------
def test_missing_scope_is_access_denied(shop: Shop) -> None:
    granted = ["read_products", "read_orders", "read_locations"]
    shop.control("PUT", "graphql/scopes", {"scopes": granted})
    body = gql(shop, "{ customers(first: 1) { nodes { id } } currentAppInstallation { accessScopes { handle } } }",
               expect_errors=True)
    err = body["errors"][0]
    assert err["extensions"]["code"] == "ACCESS_DENIED" and err["path"] == ["customers"]
    assert err["extensions"]["requiredAccess"] == "`read_customers` access scope."
    assert body["data"] is None  # `customers` is non-null, so the null bubbles up
    scopes = data(shop, "{ currentAppInstallation { accessScopes { handle } } }")
    assert sorted(s["handle"] for s in scopes["currentAppInstallation"]["accessScopes"]) == sorted(granted)
    cid = shop.app.customers.ids[0]
    node = gql(shop, "query($id: ID!) { node(id: $id) { id } }", {"id": f"gid://shopify/Customer/{cid}"}, expect_errors=True)
    assert node["errors"][0]["extensions"]["code"] == "ACCESS_DENIED" and node["data"] == {"node": None}
    app = shop.app
    recent = [oid for oid in app.orders.ids if app.created["orders"][oid] >= app.now() - timedelta(days=60)]
    made = shop.api("POST", "orders.json", json={"order": {
        "customer": {"id": app.customers.ids[0]}, "line_items": [{"title": "Gave", "price": "10.00", "quantity": 1}]}})
    with_customer = made.json()["order"]["id"]
    recent.append(with_customer)
    nested = gql(shop, "query($id: ID!) { order(id: $id) { id customer { id } } }",
                 {"id": f"gid://shopify/Order/{with_customer}"}, expect_errors=True)
    assert nested["errors"][0]["path"] == ["order", "customer"]
    assert nested["data"]["order"] == {"id": f"gid://shopify/Order/{with_customer}", "customer": None}
    write = gql(shop, CREATE, {"i": {"email": "x@example.no"}}, expect_errors=True)
    assert write["errors"][0]["extensions"]["requiredAccess"] == "`write_customers` access scope."
    assert shop.app.email_index.get("x@example.no") is None
    # Without read_all_orders only the last 60 days of orders show (Shopify's orders permission).
    orders = data(shop, "{ orders(first: 250, sortKey: ID) { nodes { id } } }")["orders"]["nodes"]
    assert [num(o["id"]) for o in orders] == recent and len(recent) < len(app.orders)
    shop.control("PUT", "graphql/scopes", {"scopes": None})
    assert len(data(shop, "{ customers(first: 1) { nodes { id } } }")["customers"]["nodes"]) == 1
