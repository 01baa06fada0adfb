"""The Shopify sandbox at its HTTP boundary: paths, auth, shapes, pagination, filters, writes, errors."""

from __future__ import annotations

import json
import re
from datetime import datetime
from urllib.parse import quote

from talk_assets.sandbox.world import build_world

from .conftest import TOKEN, Shop

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def next_link(resp) -> str | None:
    return resp.links.get("next", {}).get("url")


# -- auth, versions, error shapes --------------------------------------------------------------
def test_wrong_or_missing_token_is_401_in_shopify_shape(shop: Shop) -> None:
    for headers in ({"X-Shopify-Access-Token": "shpat_wrong"}, {}):
        resp = shop.http.get(f"{shop.url}/admin/api/2026-07/customers.json",
                             headers={**headers, "X-Shopify-Access-Token": headers.get("X-Shopify-Access-Token", "")})
        assert resp.status_code == 401
        assert resp.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


def test_any_version_is_served_and_unknown_ids_are_404(shop: Shop) -> None:
    resp = shop.api("GET", f"{shop.url}/admin/api/2024-10/customers/count.json")
    assert resp.status_code == 200 and resp.json()["count"] == len(shop.app.customers)
    missing = shop.api("GET", "customers/1.json")
    assert missing.status_code == 404 and missing.json() == {"errors": "Not Found"}
    assert re.fullmatch(r"\d+/40", missing.headers["X-Shopify-Shop-Api-Call-Limit"])


def test_missing_wrapper_is_400_naming_the_resource(shop: Shop) -> None:
    resp = shop.api("POST", "customers.json", json={"email": "a@b.no"})
    assert resp.status_code == 400
    assert resp.json() == {"errors": {"customer": "Required parameter missing or invalid"}}


# -- seed data ---------------------------------------------------------------------------------
def test_seeded_customers_overlap_the_world_and_look_like_shopify(shop: Shop) -> None:
    world = build_world(7, 40)
    customers = shop.api("GET", "customers.json", params={"limit": 250}).json()["customers"]
    assert customers and all(isinstance(c["id"], int) and c["id"] > 7_000_000_000 for c in customers)
    assert all(TS_RE.match(c["created_at"]) and TS_RE.match(c["updated_at"]) for c in customers)
    world_emails = {p.email.lower() for p in world.persons} | {o.email.lower() for o in world.organisations}
    assert sum(1 for c in customers if (c["email"] or "").lower() in world_emails) >= len(customers) - 3
    orgs = [c for c in customers if c.get("default_address", {}).get("company")]
    org_names = {o.name for o in world.organisations}
    assert orgs and all(c["default_address"]["company"] in org_names for c in orgs)
    assert any("default_address" not in c and c["addresses"] == [] for c in customers)
    for c in customers:
        if "default_address" in c:
            assert c["addresses"][0] == c["default_address"] and c["default_address"]["default"] is True
        assert c["state"] == "enabled"


def test_seeded_products_orders_and_inventory_are_consistent(shop: Shop) -> None:
    products = shop.api("GET", "products.json", params={"limit": 250}).json()["products"]
    variants = {v["id"]: v for p in products for v in p["variants"]}
    assert products and all(re.fullmatch(r"\d+\.\d\d", v["price"]) for v in variants.values())
    assert all(v["compare_at_price"] is None and v["title"] == v["option1"] for v in variants.values())
    orders = shop.api("GET", "orders.json", params={"status": "any", "limit": 250}).json()["orders"]
    assert orders
    for o in orders:
        assert o["currency"] == "NOK" and re.fullmatch(r"#\d{4,}", o["name"])
        total = sum(float(li["price"]) * li["quantity"] for li in o["line_items"])
        assert float(o["total_price"]) == round(total, 2)
        assert abs(float(o["total_tax"]) - total * 0.2) < 0.011
        for li in o["line_items"]:
            assert li["variant_id"] is None or li["variant_id"] in variants
            if li["variant_id"]:
                assert variants[li["variant_id"]]["sku"] == li["sku"]
    location = shop.api("GET", "locations.json").json()["locations"]
    assert [loc["name"] for loc in location] == ["Lager Oslo"]
    levels = shop.api("GET", "inventory_levels.json", params={"location_ids": location[0]["id"], "limit": 250})
    by_item = {lv["inventory_item_id"]: lv["available"] for lv in levels.json()["inventory_levels"]}
    assert by_item == {v["inventory_item_id"]: v["inventory_quantity"] for v in variants.values()}


# -- pagination --------------------------------------------------------------------------------
def test_link_pagination_walks_every_page_forward_and_back(shop: Shop) -> None:
    first = shop.api("GET", "customers.json", params={"limit": 7})
    assert "previous" not in first.links
    pages = [first.json()["customers"]]
    url = next_link(first)
    last = first
    while url:
        assert "page_info=" in url and "limit=7" in url
        last = shop.api("GET", url)
        pages.append(last.json()["customers"])
        url = next_link(last)
    ids = [c["id"] for page in pages for c in page]
    assert len(pages) >= 4 and len(ids) == len(set(ids)) == len(shop.app.customers)
    assert ids == sorted(ids) and all(len(p) == 7 for p in pages[:-1])
    back = shop.api("GET", last.links["previous"]["url"]).json()["customers"]
    assert [c["id"] for c in back] == [c["id"] for c in pages[-2]]


def test_page_info_refuses_other_params_and_limit_is_capped(shop: Shop) -> None:
    first = shop.api("GET", "orders.json", params={"limit": 2, "status": "any"})
    token = first.links["next"]["url"].split("page_info=")[1]
    bad = shop.api("GET", "orders.json", params={"page_info": token, "status": "any"})
    assert bad.status_code == 400 and "status cannot be passed" in bad.json()["errors"]["status"]
    ok = shop.api("GET", "orders.json", params={"page_info": token, "limit": 2, "fields": "id,name"})
    assert ok.status_code == 200 and all(set(o) == {"id", "name"} for o in ok.json()["orders"])
    too_many = shop.api("GET", "customers.json", params={"limit": 251})
    assert too_many.status_code == 400 and "limit" in too_many.json()["errors"]
    garbage = shop.api("GET", "customers.json", params={"page_info": "not-a-cursor"})
    assert garbage.status_code == 400 and "page_info" in garbage.json()["errors"]


def test_filters_since_id_ids_fields_and_order(shop: Shop) -> None:
    ids = shop.app.customers.ids
    resp = shop.api("GET", "customers.json", params={"since_id": ids[5], "limit": 250}).json()["customers"]
    assert [c["id"] for c in resp] == ids[6:]
    pick = f"{ids[1]},{ids[3]}"
    resp = shop.api("GET", "customers.json", params={"ids": pick, "fields": "id,email"}).json()["customers"]
    assert [c["id"] for c in resp] == [ids[1], ids[3]] and set(resp[0]) == {"id", "email"}
    newest = shop.api("GET", "customers.json",
                      params={"limit": 3, "order": "updated_at desc", "fields": "id,updated_at"}).json()["customers"]
    stamps = [datetime.fromisoformat(c["updated_at"]) for c in newest]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[0] == max(shop.app.customers.changed.values())


def test_updated_at_filters_find_exactly_the_changed_records(shop: Shop) -> None:
    shop.advance(3600)
    cid = shop.app.customers.ids[2]
    before = shop.api("GET", f"customers/{cid}.json").json()["customer"]
    mark = datetime.now().astimezone().isoformat(timespec="seconds")
    shop.advance(5)
    shop.api("GET", "customers/count.json")
    upd = shop.api("PUT", f"customers/{cid}.json", json={"customer": {"id": cid, "note": "changed"}}).json()
    assert upd["customer"]["updated_at"] != before["updated_at"]
    since = shop.api("GET", "customers.json", params={"updated_at_min": upd["customer"]["updated_at"]})
    assert [c["id"] for c in since.json()["customers"]] == [cid]
    count = shop.api("GET", "customers/count.json", params={"updated_at_min": upd["customer"]["updated_at"]})
    assert count.json() == {"count": 1}
    older = shop.api("GET", "customers.json", params={"updated_at_max": before["updated_at"], "limit": 250})
    assert cid not in [c["id"] for c in older.json()["customers"]]
    assert shop.api("GET", "customers.json", params={"created_at_min": mark}).json()["customers"] == []
    bad = shop.api("GET", "customers.json", params={"updated_at_min": "yesterday"})
    assert bad.status_code == 400 and "updated_at_min" in bad.json()["errors"]


# -- customers ---------------------------------------------------------------------------------
def test_customer_create_update_delete_and_validation(shop: Shop) -> None:
    body = {"customer": {"email": "ny.kunde@example.no", "first_name": "Ny", "last_name": "Kunde",
                         "phone": "41234567", "tags": "b2b, vip, b2b",
                         "addresses": [{"address1": "Storgata 1", "city": "Oslo", "zip": "0150",
                                        "country_code": "NO"}]}}
    created = shop.api("POST", "customers.json", json=body)
    assert created.status_code == 201
    c = created.json()["customer"]
    assert c["phone"] == "+4741234567" and c["tags"] == "b2b, vip"
    assert c["default_address"]["country"] == "Norway" and c["created_at"] == c["updated_at"]
    dup = shop.api("POST", "customers.json", json={"customer": {"email": "NY.KUNDE@example.no"}})
    assert dup.status_code == 422 and dup.json() == {"errors": {"email": ["has already been taken"]}}
    bad = shop.api("POST", "customers.json", json={"customer": {"email": "not-an-email", "phone": "12"}})
    assert bad.status_code == 422 and bad.json()["errors"] == {"email": ["is invalid"], "phone": ["is invalid"]}
    shop.advance(10)
    same = shop.api("PUT", f"customers/{c['id']}.json", json={"customer": {"id": c["id"], "first_name": "Ny"}})
    assert same.json()["customer"]["updated_at"] == c["updated_at"]  # a no-op keeps updated_at
    upd = shop.api("PUT", f"customers/{c['id']}.json",
                   json={"customer": {"id": c["id"], "last_name": "Navn", "updated_at": "2000-01-01T00:00:00Z"}})
    assert upd.json()["customer"]["last_name"] == "Navn"
    assert upd.json()["customer"]["updated_at"] > c["updated_at"]  # server-kept, the client's is ignored
    taken = shop.app.customers.rows[shop.app.customers.ids[0]]["email"]
    clash = shop.api("PUT", f"customers/{c['id']}.json", json={"customer": {"email": taken}})
    assert clash.status_code == 422 and clash.json()["errors"]["email"] == ["has already been taken"]
    assert shop.api("DELETE", f"customers/{c['id']}.json").status_code == 200
    assert shop.api("GET", f"customers/{c['id']}.json").status_code == 404
    found = shop.api("GET", "customers/search.json", params={"query": f"email:{taken}"}).json()["customers"]
    assert [f["email"] for f in found] == [taken]


# -- products ----------------------------------------------------------------------------------
def test_product_variants_are_updated_created_and_deleted_like_shopify(shop: Shop) -> None:
    body = {"product": {"title": "Fjellsokk", "vendor": "Fjellull", "product_type": "Klær",
                        "variants": [{"option1": "S", "price": "99", "sku": "SOKK-S"},
                                     {"option1": "M", "price": 99.5, "sku": "SOKK-M"},
                                     {"option1": "L", "price": "109.00", "sku": "SOKK-L"}]}}
    p = shop.api("POST", "products.json", json=body).json()["product"]
    assert [v["price"] for v in p["variants"]] == ["99.00", "99.50", "109.00"]
    assert p["handle"] == "fjellsokk" and p["options"][0]["values"] == ["S", "M", "L"]
    s, m, large = p["variants"]
    shop.advance(10)
    new = {"product": {"id": p["id"], "variants": [
        {"id": s["id"], "price": "89.00"}, {"id": large["id"]}, {"option1": "XL", "price": "119", "sku": "SOKK-XL"}]}}
    upd = shop.api("PUT", f"products/{p['id']}.json", json=new).json()["product"]
    assert [v["sku"] for v in upd["variants"]] == ["SOKK-S", "SOKK-L", "SOKK-XL"]
    assert upd["variants"][0]["id"] == s["id"] and upd["variants"][0]["price"] == "89.00"
    assert upd["variants"][1] == {**large, "position": 2}  # untouched variant keeps its updated_at
    assert upd["updated_at"] > p["updated_at"]
    items = ",".join(str(v["inventory_item_id"]) for v in (m, upd["variants"][2]))
    levels = shop.api("GET", "inventory_levels.json", params={"inventory_item_ids": items}).json()
    assert [lv["inventory_item_id"] for lv in levels["inventory_levels"]] == [upd["variants"][2]["inventory_item_id"]]
    assert shop.api("GET", "products/count.json").json()["count"] == len(shop.app.products)


def test_product_validation_errors_name_the_field(shop: Shop) -> None:
    blank = shop.api("POST", "products.json", json={"product": {"title": " "}})
    assert blank.status_code == 422 and blank.json() == {"errors": {"title": ["can't be blank"]}}
    neg = shop.api("POST", "products.json", json={"product": {"title": "X", "variants": [{"price": "-1"}]}})
    assert neg.status_code == 422 and neg.json()["errors"] == {"price": ["must be greater than or equal to 0"]}
    p = shop.app.products.rows[shop.app.products.ids[0]]
    v = p["variants"][0]
    stock = shop.api("PUT", f"products/{p['id']}.json",
                     json={"product": {"variants": [{"id": v["id"], "inventory_quantity": v["inventory_quantity"] + 5}]}})
    assert stock.status_code == 400 and "Inventory Levels API" in stock.json()["errors"]["inventory_quantity"]


# -- orders ------------------------------------------------------------------------------------
def test_order_status_filter_defaults_to_open(shop: Shop) -> None:
    orders = shop.app.orders.rows.values()
    n_open = sum(1 for o in orders if o["closed_at"] is None and o["cancelled_at"] is None)
    assert len(shop.api("GET", "orders.json").json()["orders"]) == n_open
    assert shop.api("GET", "orders/count.json").json()["count"] == n_open
    assert shop.api("GET", "orders/count.json", params={"status": "any"}).json()["count"] == len(shop.app.orders)
    closed = shop.api("GET", "orders.json", params={"status": "closed"}).json()["orders"]
    assert all(o["closed_at"] for o in closed)
    cancelled = shop.api("GET", "orders.json", params={"status": "cancelled"}).json()["orders"]
    assert all(o["cancelled_at"] for o in cancelled)


def test_order_create_update_close_and_errors(shop: Shop) -> None:
    product = shop.app.products.rows[shop.app.products.ids[0]]
    variant = product["variants"][0]
    customer = shop.app.customers.rows[shop.app.customers.ids[0]]
    body = {"order": {"line_items": [{"variant_id": variant["id"], "quantity": 2},
                                     {"title": "Frakt", "price": "99.00", "quantity": 1}],
                      "customer": {"id": customer["id"]}, "po_number": "PO-1", "user_id": shop.app.users.ids[0]}}
    created = shop.api("POST", "orders.json", json=body)
    assert created.status_code == 201
    o = created.json()["order"]
    total = float(variant["price"]) * 2 + 99
    assert o["total_price"] == f"{total:.2f}" and o["total_tax"] == f"{total * 0.2:.2f}"
    assert o["customer"]["id"] == customer["id"] and o["email"] == customer["email"]
    assert o["line_items"][0]["sku"] == variant["sku"] and o["line_items"][1]["variant_id"] is None
    assert o["name"] == f"#{max(x['order_number'] for x in shop.app.orders.rows.values())}"
    shop.advance(10)
    upd = shop.api("PUT", f"orders/{o['id']}.json", json={"order": {"id": o["id"], "note": "Ring først"}})
    assert upd.json()["order"]["note"] == "Ring først" and upd.json()["order"]["updated_at"] > o["updated_at"]
    closed = shop.api("POST", f"orders/{o['id']}/close.json").json()["order"]
    assert closed["closed_at"] and o["id"] not in [x["id"] for x in shop.api("GET", "orders.json").json()["orders"]]
    unknown = shop.api("POST", "orders.json", json={"order": {"line_items": [{"variant_id": 1, "quantity": 1}]}})
    assert unknown.status_code == 422 and "line_items" in unknown.json()["errors"]
    empty = shop.api("POST", "orders.json", json={"order": {"line_items": []}})
    assert empty.json() == {"errors": {"line_items": ["can't be blank"]}}
    by_email = shop.api("POST", "orders.json", json={"order": {
        "line_items": [{"variant_id": variant["id"], "quantity": 1}],
        "customer": {"email": "helt.ny@example.no", "first_name": "Helt"}}}).json()["order"]
    made = shop.api("GET", f"customers/{by_email['customer']['id']}.json").json()["customer"]
    assert made["email"] == "helt.ny@example.no"


# -- inventory ---------------------------------------------------------------------------------
def test_inventory_set_updates_variant_and_product(shop: Shop) -> None:
    product = shop.app.products.rows[shop.app.products.ids[1]]
    variant = product["variants"][0]
    shop.advance(10)
    body = {"location_id": 70_000_000_001, "inventory_item_id": variant["inventory_item_id"], "available": 3}
    level = shop.api("POST", "inventory_levels/set.json", json=body).json()["inventory_level"]
    assert level["available"] == 3 and TS_RE.match(level["updated_at"])
    after = shop.api("GET", f"products/{product['id']}.json").json()["product"]
    assert after["variants"][0]["inventory_quantity"] == 3 and after["updated_at"] > product["updated_at"]
    since = shop.api("GET", "inventory_levels.json",
                     params={"location_ids": 70_000_000_001, "updated_at_min": level["updated_at"]}).json()
    assert [lv["inventory_item_id"] for lv in since["inventory_levels"]] == [variant["inventory_item_id"]]
    bad = shop.api("POST", "inventory_levels/set.json", json={**body, "inventory_item_id": 5})
    assert bad.status_code == 422 and "inventory_item_id" in bad.json()["errors"]
    unfiltered = shop.api("GET", "inventory_levels.json")
    assert unfiltered.status_code == 422


# -- rate limit and control API ----------------------------------------------------------------
def test_leaky_bucket_answers_429_with_retry_after(shop: Shop) -> None:
    shop.faults(rate_limit_speed=1)
    statuses = [shop.api("GET", "customers/count.json") for _ in range(45)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, "41+ quick calls must overflow a bucket of 40"
    assert float(limited[0].headers["Retry-After"]) > 0
    assert limited[0].headers["X-Shopify-Shop-Api-Call-Limit"] == "40/40"
    assert limited[0].json()["errors"].startswith("Exceeded 2 calls per second")
    assert shop.control("GET", "stats")["statuses"]["429"] == len(limited)


def test_reset_restores_the_seed(shop: Shop) -> None:
    cid = shop.app.customers.ids[0]
    shop.api("DELETE", f"customers/{cid}.json")
    assert shop.api("GET", f"customers/{cid}.json").status_code == 404
    shop.control("POST", "reset")
    assert shop.api("GET", f"customers/{cid}.json").status_code == 200
    info = shop.control("GET", "info")
    assert "credentials" not in info and TOKEN not in json.dumps(info)
    assert shop.control("GET", "stats")["requests"] == {"GET customers/{id}.json": 1}


def test_url_encoded_offsets_in_time_filters(shop: Shop) -> None:
    stamp = shop.app.customers.rows[shop.app.customers.ids[0]]["updated_at"]
    raw = f"{shop.url}/admin/api/2026-07/customers/count.json?updated_at_min={quote(stamp)}"
    unencoded = f"{shop.url}/admin/api/2026-07/customers/count.json?updated_at_min={stamp}"
    assert shop.api("GET", raw).json() == shop.api("GET", unencoded).json()


LONG = "Å" * 10_000  # hostile: 10,000 characters, not ASCII
TOO_LONG = ["is too long (maximum is 255 characters)"]


def test_product_fields_over_shopifys_limits_are_422_naming_the_field(shop: Shop) -> None:
    """Title, handle, each tag, variant SKU and barcode: 255 characters (see FIELD_LIMITS)."""
    for field in ("title", "handle"):
        r = shop.api("POST", "products.json", json={"product": {"title": "Ok", field: LONG}})
        assert r.status_code == 422 and r.json() == {"errors": {field: TOO_LONG}}, r.text
    r = shop.api("POST", "products.json", json={"product": {"title": "Ok", "tags": f"kort, {LONG}"}})
    assert r.status_code == 422 and r.json() == {"errors": {"tags": TOO_LONG}}
    for field in ("sku", "barcode"):
        r = shop.api("POST", "products.json", json={"product": {"title": "Ok", "variants": [{field: LONG}]}})
        assert r.status_code == 422 and r.json() == {"errors": {field: TOO_LONG}}, r.text
    p = shop.app.products.rows[shop.app.products.ids[0]]
    r = shop.api("PUT", f"products/{p['id']}.json", json={"product": {"title": "T" * 256}})
    assert r.status_code == 422 and r.json() == {"errors": {"title": TOO_LONG}}
    assert shop.app.products.rows[p["id"]]["title"] == p["title"]  # nothing written
    at_limit = shop.api("PUT", f"products/{p['id']}.json", json={"product": {"title": "😀" * 255}})
    assert at_limit.status_code == 200 and at_limit.json()["product"]["title"] == "😀" * 255


def test_a_graphql_query_is_counted_as_a_read_and_a_mutation_as_a_write(shop: Shop) -> None:
    """Every GraphQL call is a POST; the sandbox's `writes` counts only the documents that mutate, so
    a benchmark's or a test's "no writes" means no data changed."""
    shop.control("POST", "stats/reset")
    for doc in ("{ shop { name } }", "query Q { customers(first: 1) { nodes { id } } }",
                "# a mutation in a comment\nquery { shop { name } }"):
        assert shop.api("POST", "graphql.json", json={"query": doc}).status_code == 200
    stats = shop.control("GET", "stats")
    assert (stats["reads"], stats["writes"]) == (3, 0), stats
    gid = shop.api("POST", "graphql.json", json={"query": "{ customers(first: 1) { nodes { id } } }"}).json()[
        "data"]["customers"]["nodes"][0]["id"]
    done = shop.api("POST", "graphql.json", json={
        "query": "mutation U($input: CustomerInput!) { customerUpdate(input: $input) { userErrors { field message } } }",
        "variables": {"input": {"id": gid, "note": "skrevet"}}}).json()
    assert done["data"]["customerUpdate"]["userErrors"] == [], done
    stats = shop.control("GET", "stats")
    assert (stats["reads"], stats["writes"]) == (4, 1) and stats["data_writes"] == {"POST graphql.json": 1}, stats
    # a bulk export is started by a mutation, and reads
    bulk = shop.api("POST", "graphql.json", json={"query": 'mutation { bulkOperationRunQuery(query: """{ customers '
                                                           '{ edges { node { id } } } }""") { userErrors { message } } }'})
    assert bulk.json()["data"]["bulkOperationRunQuery"]["userErrors"] == [], bulk.json()
    stats = shop.control("GET", "stats")
    assert (stats["reads"], stats["writes"]) == (5, 1), stats
