"""The Shopify client against the running sandbox, over GraphQL only: paged and bulk reads, writes,
userErrors, cost pacing and THROTTLED retries, access scopes, faults."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from talk_assets.core.http import ApiError, RetryPolicy
from talk_assets.systems.shopify import client as client_mod
from talk_assets.systems.shopify.client import Client, MissingScopes

from .conftest import TOKEN, Shop

GRAPHQL_ONLY = {"POST graphql.json", "GET bulk-results"}


def rest_calls(shop: Shop) -> dict[str, int]:
    """Calls to Shopify that are not GraphQL (REST endpoints), from the sandbox's own count."""
    return {k: n for k, n in shop.control("GET", "stats")["requests"].items() if k not in GRAPHQL_ONLY}


@pytest.fixture(autouse=True)
def _fresh_scope_cache() -> None:
    """Each test's sandbox starts with all scopes: forget what an earlier test's check found."""
    client_mod._SCOPE_CACHE.clear()


def by_id(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: r["id"])


def test_from_env_reads_url_and_token(monkeypatch: pytest.MonkeyPatch, shop: Shop) -> None:
    monkeypatch.setenv("TALK_SHOPIFY_URL", shop.url)
    c = Client.from_env()
    assert c.base_url == f"{shop.url}/admin/api/2026-07"
    assert len(list(c.iter_records("customer", page_size=10))) == len(shop.app.customers)


@pytest.mark.parametrize("entity", ["customer", "product", "order"])
def test_bulk_and_paged_reads_agree_and_use_no_rest(shop: Shop, client: Client, entity: str) -> None:
    """A full read is a bulk operation (JSONL rebuilt by `__parentId`); the paged read of the same data
    gives the same records; neither calls a REST endpoint."""
    paged = list(client.iter_records(entity, page_size=4))
    bulk = list(client.iter_records(entity))
    table = {"customer": shop.app.customers, "product": shop.app.products, "order": shop.app.orders}[entity]
    assert len(bulk) == len(table) and by_id(bulk) == by_id(paged)
    if entity == "product":
        assert sum(len(p["variants"]) for p in bulk) == sum(len(p["variants"]) for p in table.rows.values())
    stats = shop.control("GET", "stats")["requests"]
    assert stats.get("GET bulk-results") == 1 and not rest_calls(shop)


def test_a_full_read_does_not_hold_the_bulk_file(shop: Shop, client: Client) -> None:
    """Records come out while the JSONL is still being read (a generator over `iter_lines`)."""
    records = client.iter_records("customer")
    first = next(records)
    assert first["id"] and first["email"] is not None
    assert len([first, *records]) == len(shop.app.customers)


def test_a_failed_bulk_operation_is_an_error(shop: Shop, client: Client) -> None:
    shop.control("PUT", "graphql/bulk", {"next": "fail"})
    with pytest.raises(ApiError) as err:
        list(client.iter_records("customer"))
    assert "failed" in str(err.value) and err.value.status is not None and err.value.status >= 500


def test_pages_fit_the_cost_budget(shop: Shop, client: Client) -> None:
    """Without a page size the client sizes pages from the cost rules: 250 customers would request
    1002 points, over the single-query maximum; with a 150-point bucket the pages shrink further."""
    shop.control("PUT", "graphql/cost", {"bucket_size": 150, "restore_rate": 50})
    client.ensure_scopes()  # learn the bucket from an answer
    got = list(client.read_changes("customer", None))
    assert by_id(got) == by_id(list(client.iter_records("customer", page_size=5)))
    posts = shop.control("GET", "stats")["requests"]["POST graphql.json"]
    assert posts > 2 and client.throttled == 0


def test_iter_records_since_returns_only_changes(shop: Shop, client: Client) -> None:
    shop.advance(3600)
    order = next(iter(client.iter_records("order", page_size=5)))
    since = datetime.fromisoformat(shop.control("GET", "clock")["now"])
    assert list(client.iter_records("order", since=since)) == []
    # the edit is made in the shop (REST here: the sandbox's GraphQL has no orderUpdate yet)
    shop.api("PUT", f"orders/{order['id']}.json", json={"order": {"id": order["id"], "note": "endret"}}).raise_for_status()
    changed = list(client.iter_records("order", since=since))
    assert [o["id"] for o in changed] == [order["id"]] and changed[0]["note"] == "endret"
    with pytest.raises(ValueError):
        list(client.iter_records("order", since=datetime(2026, 1, 1)))
    assert rest_calls(shop) == {"PUT orders/{id}.json": 1}  # the test's own edit; the client made none


def test_get_create_update_records(shop: Shop, client: Client) -> None:
    assert client.get_record("customer", "1") is None
    made = client.create_record("customer", {"email": "u@example.no", "first_name": "U"})
    assert client.get_record("customer", str(made["id"]))["email"] == "u@example.no"
    shop.advance(5)
    upd = client.update_record("customer", str(made["id"]), {"last_name": "V"},
                               expected_version=made["updated_at"])
    assert upd["last_name"] == "V"
    with pytest.raises(ApiError) as stale:
        client.update_record("customer", str(made["id"]), {"last_name": "W"}, expected_version=made["updated_at"])
    assert stale.value.status == 409
    with pytest.raises(ApiError) as dup:
        client.create_record("customer", {"email": "U@example.no"})
    assert dup.value.status == 422 and dup.value.field == "email"
    assert "has already been taken" in str(dup.value)
    assert not rest_calls(shop)


def test_customer_default_address_is_created_and_updated(shop: Shop, client: Client) -> None:
    made = client.create_record("customer", {
        "email": "adr@example.no", "first_name": "Åse", "last_name": "Ødegård",
        "default_address": {"company": "Fjord AS", "address1": "Kaia 1", "zip": "5003", "city": "Bergen",
                            "country_code": "NO"}})
    assert made["default_address"]["company"] == "Fjord AS" and made["default_address"]["city"] == "Bergen"
    client.update_record("customer", str(made["id"]), {"default_address": {"city": "Ålesund", "zip": "6002"}})
    now = client.get_record("customer", str(made["id"]))
    assert now["default_address"]["city"] == "Ålesund" and now["default_address"]["address1"] == "Kaia 1"
    assert len(now["addresses"]) == 1


def test_product_title_variant_fields_and_stock_are_writable_after_create(shop: Shop, client: Client) -> None:
    loc = client.locations()[0]
    made = client.create_record("product", {"title": "Kopp", "variants": [
        {"option1": "Hvit", "price": "149.00", "sku": "KOPP-H", "barcode": "7000000000017", "inventory_quantity": 5}]})
    variant = made["variants"][0]
    assert (made["title"], variant["price"], variant["sku"], variant["inventory_quantity"]) == ("Kopp", "149.00", "KOPP-H", 5)
    client.update_record("product", str(made["id"]), {"title": "Kaffekopp"})
    client.update_variants(str(made["id"]), [{"id": variant["admin_graphql_api_id"], "price": "159.00",
                                              "inventoryItem": {"sku": "KOPP-HVIT"}}])
    client.set_inventory(loc.id, variant["inventory_item_id"], 9)
    now = client.get_record("product", str(made["id"]))
    assert now["title"] == "Kaffekopp"
    assert (now["variants"][0]["price"], now["variants"][0]["sku"], now["variants"][0]["inventory_quantity"]) == (
        "159.00", "KOPP-HVIT", 9)
    assert not rest_calls(shop)


def test_a_stale_compare_quantity_is_a_conflict_and_changes_nothing(shop: Shop, client: Client) -> None:
    level = next(iter(client.iter_records("inventory_level", page_size=5)))
    with pytest.raises(ApiError) as err:
        client.set_inventory(level["location_id"], level["inventory_item_id"], 3, expected=level["available"] + 1)
    assert err.value.status == 409 and "inventorySetQuantities" in err.value.endpoint
    assert client.get_record("inventory_level", client.record_id("inventory_level", level))["available"] == level["available"]
    client.set_inventory(level["location_id"], level["inventory_item_id"], 3, expected=level["available"])
    assert client.get_record("inventory_level", client.record_id("inventory_level", level))["available"] == 3


def test_order_create_keeps_its_origin(shop: Shop, client: Client) -> None:
    customer = next(iter(client.iter_records("customer", page_size=3)))
    order = client.create_record("order", {
        "email": "kjoper@example.no", "currency": "NOK", "source_identifier": "talk:ns-1/ord-7",
        "customer": {"id": customer["id"]}, "po_number": "PO-1",
        "line_items": [{"sku": "X-1", "title": "Ting 🎁", "quantity": 2, "price": "100.00"}]})
    got = client.get_record("order", str(order["id"]))
    assert got["source_identifier"] == "talk:ns-1/ord-7" and got["customer"]["id"] == customer["id"]
    assert [(li["sku"], li["quantity"], li["price"]) for li in got["line_items"]] == [("X-1", 2, "100.00")]
    assert not rest_calls(shop)


def test_user_errors_are_api_errors_naming_the_field(shop: Shop, client: Client) -> None:
    """What a dead letter records: the status, the field and Shopify's message."""
    with pytest.raises(ApiError) as err:
        client.create_record("product", {"title": "X" * 10_000, "variants": [{"price": "1.00"}]})
    assert err.value.status == 422 and err.value.field == "title"
    assert "too long" in str(err.value) and "productSet" in err.value.endpoint
    assert err.value.body["userErrors"][0]["field"][-1] == "title"


def test_probe_changes_exactly_when_data_changes(shop: Shop, client: Client) -> None:
    before = {e: client.probe(e) for e in client.entities}
    assert before == {e: client.probe(e) for e in client.entities}
    shop.advance(60)
    client.create_record("customer", {"email": "probe@example.no"})
    after = {e: client.probe(e) for e in client.entities}
    assert after["customer"] != before["customer"]
    assert after["order"] == before["order"] and after["product"] == before["product"]
    assert not rest_calls(shop)


# -- cost, throttling, scopes ----------------------------------------------------------------------
def test_throttled_is_retried_after_the_time_the_bucket_needs(shop: Shop) -> None:
    """Two clients share one token's bucket, each unaware of the other's spending: the server answers
    THROTTLED, and each retries after the wait its bucket reading says, losing nothing."""
    shop.faults(rate_limit_speed=1)
    shop.control("PUT", "graphql/cost", {"bucket_size": 100, "restore_rate": 200})
    clients = [Client(shop.url, TOKEN) for _ in range(3)]
    results: list[int] = []

    def read(c: Client) -> None:
        for _ in range(4):
            results.append(len(list(c.iter_records("customer", page_size=20))))

    threads = [threading.Thread(target=read, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [len(shop.app.customers)] * 12
    assert sum(c.throttled for c in clients) >= 1


def test_the_pacer_waits_for_the_bucket_instead_of_being_throttled(shop: Shop) -> None:
    shop.faults(rate_limit_speed=1)
    shop.control("PUT", "graphql/cost", {"bucket_size": 100, "restore_rate": 400})
    c = Client(shop.url, TOKEN)
    for _ in range(10):
        assert len(list(c.iter_records("customer", page_size=20))) == len(shop.app.customers)
    assert c.throttled == 0 and c.cost_pacer.waited > 0
    assert c.cost_pacer.maximum == 100 and c.cost_pacer.restore_rate == 400


def test_missing_scopes_stop_with_one_error_listing_them(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.control("PUT", "graphql/scopes", {"scopes": ["read_customers", "write_customers", "read_products",
                                                      "read_orders"]})
    c = Client(shop.url, TOKEN)
    with pytest.raises(MissingScopes) as err:
        list(c.iter_records("customer", page_size=5))
    text = str(err.value)
    for scope in ("read_all_orders", "read_inventory", "read_locations", "write_products", "write_inventory",
                  "write_orders"):
        assert scope in text
    assert "read_customers" not in text.split("need:")[1] and "TALK_SHOPIFY_ACCESS_TOKEN" in text
    assert err.value.status == 403
    # no data was asked for: only the scope query
    assert shop.control("GET", "stats")["requests"] == {"POST graphql.json": 1}
    # turning the writes to products and orders off removes their write scopes from what is needed
    monkeypatch.setenv("TALK_SHARE_SHOPIFY_PRODUCT", "false")
    monkeypatch.setenv("TALK_SHARE_SHOPIFY_ORDER", "false")
    shop.control("PUT", "graphql/scopes", {"scopes": ["read_customers", "write_customers", "read_products",
                                                      "read_inventory", "read_locations", "read_orders",
                                                      "read_all_orders"]})
    assert len(list(Client(shop.url, TOKEN).iter_records("customer", page_size=5))) == len(shop.app.customers)


def test_without_read_users_orders_come_without_their_staff_member(shop: Shop) -> None:
    scopes = ["read_customers", "write_customers", "read_products", "write_products", "read_inventory",
              "write_inventory", "read_locations", "read_orders", "write_orders", "read_all_orders"]
    shop.control("PUT", "graphql/scopes", {"scopes": scopes})
    orders = list(Client(shop.url, TOKEN).iter_records("order", page_size=5))
    assert len(orders) == len(shop.app.orders) and all(o["user_id"] is None for o in orders)
    client_mod._SCOPE_CACHE.clear()
    shop.control("PUT", "graphql/scopes", {"scopes": [*scopes, "read_users"]})
    staffed = list(Client(shop.url, TOKEN).iter_records("order"))
    assert any(o["user_id"] is not None for o in staffed)


# -- faults ----------------------------------------------------------------------------------------
def test_client_survives_5xx_and_dropped_reads(shop: Shop, client: Client) -> None:
    client.ensure_scopes()
    shop.faults(error_rate=0.3, drop_rate=0.2, seed=3)
    assert len(list(client.iter_records("customer", page_size=5))) == len(shop.app.customers)


def test_non_idempotent_create_is_not_repeated_after_a_drop(shop: Shop, client: Client) -> None:
    client.ensure_scopes()
    client.location_gid()
    before = shop.control("GET", "stats")["requests"]["POST graphql.json"]
    shop.faults(drop_rate=1.0)
    n = len(shop.app.products)
    with pytest.raises(ApiError) as err:
        client.create_record("product", {"title": "Aldri", "variants": [{"price": "1.00"}]})
    assert err.value.status is None
    assert shop.control("GET", "stats")["requests"]["POST graphql.json"] == before + 1
    assert len(shop.app.products) <= n + 1  # processed at most once (the answer was lost, not repeated)


def test_persistent_5xx_raises_a_clean_error(shop: Shop) -> None:
    c = Client(shop.url, TOKEN, retry=RetryPolicy(max_retries=2, backoff=0.01))
    c.ensure_scopes()
    shop.faults(error_rate=1.0, error_statuses=[503])
    with pytest.raises(ApiError) as err:
        c.probe("product")
    assert err.value.status == 503 and err.value.transient


def test_errors_never_contain_the_token(shop: Shop) -> None:
    secret = "shpat_wrong_but_secret_1234"
    c = Client(shop.url, secret)
    with pytest.raises(ApiError) as err:
        c.get_record("customer", "1")
    assert err.value.status == 401 and "Invalid API key" in str(err.value)
    assert secret not in str(err.value) and secret not in repr(err.value.body)


def test_a_staff_list_longer_than_a_page_is_digested_once_per_refresh_period(
        shop: Shop, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staff have no count, no change time and no sort by change: the probe digests the whole list. A
    shop with more staff than one page (Plus) would spend its cost bucket on every probe, so above one
    page the digest is taken once per TALK_PROBE_REFRESH_S and, within a period, the last token stands."""
    assert len(shop.app.users) >= 1
    monkeypatch.setattr(client, "staff_page_size", 1)  # the sandbox shop's staff fill at least a page
    monkeypatch.setenv("TALK_PROBE_REFRESH_S", "1e9")  # one period (time // 1e9) for the test's length
    token = client.probe("staff")
    assert token.startswith("staff:") and token.endswith("~1"), token
    calls = shop.control("GET", "stats")["requests"].get("POST graphql.json", 0)
    sid = shop.app.users.ids[-1]
    shop.app.users.rows[sid] = {**shop.app.users.rows[sid], "first_name": "Ærlige Ødegård-van der Berg"}
    assert client.probe("staff", token) == token  # within the period: not read (the edit waits for the next)
    assert shop.control("GET", "stats")["requests"].get("POST graphql.json", 0) == calls
    monkeypatch.setenv("TALK_PROBE_REFRESH_S", "5e8")  # another period
    again = client.probe("staff", token)
    assert again != token and again.endswith("~3"), again
    assert shop.control("GET", "stats")["requests"]["POST graphql.json"] > calls
    # one page of staff: digested every time, whatever the previous token
    monkeypatch.setattr(client, "staff_page_size", 250)
    short = client.probe("staff")
    calls = shop.control("GET", "stats")["requests"]["POST graphql.json"]
    assert "~" not in short and client.probe("staff", short) == short
    assert shop.control("GET", "stats")["requests"]["POST graphql.json"] == calls + 1
