"""The PowerOffice client against the running sandbox: tokens, paging, typed and uniform methods,
errors, retries and pacing."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from talk_assets.core.http import ApiError, Pacer
from talk_assets.systems.poweroffice.client import Client, patch_document
from talk_assets.systems.poweroffice.models import Customer, Product, SalesOrderComplete

from .conftest import APP_KEY, SUB_KEY, Sandbox, make_client


def test_from_env_uses_config(sb: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALK_POWEROFFICE_URL", sb.url)
    c = Client.from_env(pacer=Pacer(min_interval=0.0))
    assert c.base_url == f"{sb.url}/v2"
    assert c.get_customer(next(c.customers()).Id) is not None
    monkeypatch.setenv("TALK_POWEROFFICE_CLIENT_KEY", "a-wrong-client-key-123")
    bad = Client.from_env(pacer=Pacer(min_interval=0.0))
    with pytest.raises(ApiError) as exc:
        bad.get_customer(1)
    assert exc.value.status == 401 and "OAuth/Token" in str(exc.value) and "invalid_client" in str(exc.value)
    for secret in ("a-wrong-client-key-123", APP_KEY, SUB_KEY):
        assert secret not in str(exc.value)


def test_token_cached_refreshed_before_expiry_and_on_401(sb: Sandbox, client: Client) -> None:
    list(client.products())
    client.get_product(1)
    assert client.token_fetches == 1  # cached across calls
    sb.control("POST", "clock", {"advance_s": 1300})  # the server ends the token; the client can't know
    assert next(client.products()).Code
    assert client.token_fetches == 2 and sb.stats()["statuses"]["401"] == 1
    sb.control("PUT", "token_ttl", {"seconds": 1})
    fresh = make_client(sb)
    fresh.get_product(1)
    time.sleep(1.0)
    fresh.get_product(1)
    assert fresh.token_fetches == 2 and sb.stats()["statuses"]["401"] == 1  # renewed before expiry: no 401


def test_typed_reads_and_paging(sb: Sandbox, client: Client) -> None:
    every = list(client.customers())
    paged = list(client.customers(page_size=6))
    assert [c.Id for c in paged] == [c.Id for c in every] and len(every) > 18
    assert all(isinstance(c, Customer) for c in every)
    calls = sb.stats()["requests"]["GET Customers"]
    assert calls == 1 + (len(every) // 6 + 1)
    assert client.get_customer(1) is None
    some = list(client.customers(customer_nos="10001-10003"))
    assert [c.Number for c in some] == [10001, 10002, 10003]
    product = next(client.products())
    assert isinstance(product, Product) and [p.Id for p in client.products(codes=[product.Code])] == [product.Id]
    order = next(client.sales_orders())
    lines = client.sales_order_lines(order.Id)
    assert len(lines) == order.LineCount and sum(x.NetAmount for x in lines) == pytest.approx(order.NetAmount)
    complete = client.get_sales_order_complete(order.Id)
    assert isinstance(complete, SalesOrderComplete) and len(complete.SalesOrderLines or []) == order.LineCount


def test_since_filter(sb: Sandbox, client: Client) -> None:
    products = list(client.products())
    newest = max(p.LastChangedDateTimeOffset for p in products)
    assert list(client.products(since=newest)) == []
    client.update_product(products[2].Id, {"UnitPrice": 123.5})
    changed = list(client.products(since=newest))
    assert [(p.Id, p.UnitPrice) for p in changed] == [(products[2].Id, 123.5)]


def test_patch_document_and_updates(client: Client) -> None:
    assert patch_document({"Name": "x", "MailAddress": {"City": "Oslo", "ZipCode": None}}) == [
        {"op": "replace", "path": "/Name", "value": "x"},
        {"op": "replace", "path": "/MailAddress/City", "value": "Oslo"},
        {"op": "replace", "path": "/MailAddress/ZipCode", "value": None},
    ]
    c = next(client.customers())
    updated = client.update_customer(c.Id, {"EmailAddress": "ny@example.no", "MailAddress": {"City": "Molde"}})
    assert updated.EmailAddress == "ny@example.no" and updated.MailAddress.City == "Molde"
    assert updated.MailAddress.AddressLine1 == c.MailAddress.AddressLine1
    assert updated.LastChangedDateTimeOffset > c.LastChangedDateTimeOffset
    with pytest.raises(ApiError) as exc:
        client.update_customer(c.Id, {"EmailAddress": "broken"})
    # ProblemDetails names no field (the schema has no `errors` map): the detail says which
    assert exc.value.status == 400 and "EmailAddress" in exc.value.message and "broken" in exc.value.message
    with pytest.raises(ApiError) as exc:
        client.create_product({"Name": "Dup", "Code": next(client.products()).Code})
    assert "Code" in exc.value.message and not exc.value.transient


def test_create_order_complete(client: Client) -> None:
    cust = next(client.customers())
    prod = next(client.products())
    order = client.create_sales_order_complete({
        "CustomerId": cust.Id, "PurchaseOrderReference": "PO-9",
        "SalesOrderLines": [{"ProductId": prod.Id, "Quantity": 3}]})
    assert order.Id and order.CustomerNo == cust.Number and order.NetAmount == pytest.approx(3 * prod.UnitPrice)
    assert client.get_sales_order(order.Id).PurchaseOrderReference == "PO-9"


def test_uniform_interface(sb: Sandbox, client: Client) -> None:
    assert client.entities == ("customers", "products", "salesorders")
    orders = list(client.iter_records("salesorders", page_size=5))
    assert len(orders) == len(sb.app.orders) and all(len(o["Lines"]) == o["LineCount"] for o in orders)
    one = client.get_record("salesorders", orders[0]["Id"])
    assert one["Lines"] == orders[0]["Lines"] and "SalesOrderLines" not in one
    assert client.get_record("customers", "999") is None and client.get_record("customers", "abc") is None
    assert client.get_record("salesorders", "00000000-0000-4000-8000-000000000000") is None
    with pytest.raises(ValueError):
        list(client.iter_records("invoices"))

    cust = client.create_record("customers", {"Name": "Uniform AS", "OrganizationNumber": "987654321"},
                                idempotency_key="sync-1")
    assert cust["ExternalImportReference"] == "sync-1"
    # the same create again (as after a lost answer) finds the first instead of duplicating it
    again = client.create_record("customers", {"Name": "Uniform AS"}, idempotency_key="sync-1")
    assert again["Id"] == cust["Id"]
    since = datetime.fromisoformat(orders[0]["LastChangedDateTimeOffset"]).replace(year=2000)
    assert len(list(client.iter_records("customers", since=since))) == len(sb.app.customers)

    code = next(x["ProductCode"] for o in orders for x in o["Lines"] if x["ProductCode"])
    order = client.create_record("salesorders", {"CustomerId": cust["Id"], "Lines": [
        {"ProductCode": code, "Quantity": 1}]})
    assert len(order["Lines"]) == 1 and order["Lines"][0]["SalesOrderId"] == order["Id"]

    version = cust["LastChangedDateTimeOffset"]
    updated = client.update_record("customers", str(cust["Id"]), {"Name": "Uniform Two AS"}, expected_version=version)
    assert updated["Name"] == "Uniform Two AS"
    with pytest.raises(ApiError) as exc:  # changed since `version`: refused, not overwritten
        client.update_record("customers", str(cust["Id"]), {"Name": "Stale"}, expected_version=version)
    assert exc.value.status == 409
    assert client.get_record("customers", str(cust["Id"]))["Name"] == "Uniform Two AS"


def test_probe_changes_only_with_data(client: Client) -> None:
    before = {e: client.probe(e) for e in client.entities}
    count, _, newest = before["customers"].partition("|")
    assert int(count) > 10 and newest
    assert {e: client.probe(e) for e in client.entities} == before
    p = next(client.products())
    client.update_product(p.Id, {"Name": "Renamed"})
    after = client.probe("products")
    assert after != before["products"] and after.split("|")[0] == before["products"].split("|")[0]
    client.create_product({"Name": "New thing", "Code": "NEW-1"})
    assert client.probe("products").split("|")[0] == str(int(before["products"].split("|")[0]) + 1)
    assert client.probe("customers") == before["customers"]


def test_retries_5xx_and_429_storm(sb: Sandbox, client: Client) -> None:
    client.access_token()
    sb.control("PUT", "faults", {"error_rate": 0.5, "error_statuses": [502, 503], "seed": 3,
                                 "rate_limit_enabled": False})
    assert len(list(client.customers(page_size=5))) == len(sb.app.customers)
    assert sb.stats()["statuses"].get("502", 0) + sb.stats()["statuses"].get("503", 0) > 0
    sb.control("PUT", "faults", {"storm_429": 3, "storm_retry_after": 0.05, "rate_limit_enabled": False})
    assert client.get_customer(next(iter(sb.app.customers.rows))) is not None
    assert sb.stats()["statuses"]["429"] == 3
    sb.control("PUT", "faults", {"error_rate": 1.0, "error_statuses": [503], "rate_limit_enabled": False})
    with pytest.raises(ApiError) as exc:
        client.get_product(1)
    assert exc.value.status == 503 and exc.value.transient


def test_dropped_connections(sb: Sandbox, client: Client) -> None:
    client.access_token()
    sb.control("PUT", "faults", {"drop_rate": 0.3, "seed": 5, "rate_limit_enabled": False})
    assert len(list(client.products(page_size=4))) == len(sb.app.products)
    sb.control("PUT", "faults", {"drop_rate": 1.0, "rate_limit_enabled": False})
    with pytest.raises(ApiError) as exc:  # a POST that may have been processed is not repeated
        client.create_product({"Name": "Maybe"})
    assert exc.value.status is None and sb.stats()["requests"]["POST Products"] == 1


def test_pacing_keeps_under_the_rate_limit(sb: Sandbox) -> None:
    sb.control("PUT", "faults", {"rate_limit_enabled": True, "rate_limit_speed": 1.0})
    c = make_client(sb, pacer=None)  # the client's own default: 0.105 s between calls
    assert c.pacer.min_interval == 0.105  # just under 10 requests/s, so jitter does not meet the limit
    t = time.monotonic()
    for _ in range(14):
        c.get_product(1)
    assert time.monotonic() - t >= 1.3  # 15 calls with the token request, 0.1 s apart
    assert sb.stats()["statuses"].get("429", 0) == 0 and sb.stats()["statuses"]["404"] == 14


def test_unpaced_client_recovers_from_429(sb: Sandbox) -> None:
    sb.control("PUT", "faults", {"rate_limit_enabled": True, "rate_limit_speed": 1.0})
    c = make_client(sb)  # no pacing: it runs into the limit and must honour Retry-After
    for _ in range(20):
        c.get_product(1)
    assert sb.stats()["statuses"].get("429", 0) > 0
    assert sb.stats()["statuses"]["404"] == 20


def test_lost_create_answer_is_found_not_duplicated(sb: Sandbox, client: Client) -> None:
    client.access_token()
    before = len(sb.app.customers)
    sb.control("PUT", "faults", {"lost_response_rate": 1.0, "rate_limit_enabled": False})
    rec = client.create_record("customers", {"Name": "Lost Answer AS"}, idempotency_key="intent-42")
    assert rec["Name"] == "Lost Answer AS" and rec["ExternalImportReference"] == "intent-42"
    assert len(sb.app.customers) == before + 1 and sb.stats()["requests"]["POST Customers"] == 1
    with pytest.raises(ApiError) as exc:  # without a key nothing can be matched: the error stands
        client.create_record("customers", {"Name": "No Key AS"})
    assert exc.value.status is None


def test_lost_order_create_is_found_by_its_external_import_reference(sb: Sandbox, client: Client) -> None:
    """SalesOrders has no idempotency key and no `externalImportReference` filter: the create whose
    answer was lost is found among the orders this integration created since, by the reference."""
    cust = next(client.customers())
    code = next(client.products()).Code
    client.access_token()
    before = len(sb.app.orders)
    sb.control("PUT", "faults", {"lost_response_rate": 1.0, "rate_limit_enabled": False})
    rec = client.create_record("salesorders", {"CustomerId": cust.Id, "Lines": [{"ProductCode": code, "Quantity": 2}]},
                               idempotency_key="talk:customcrm-orders:17")
    assert rec["ExternalImportReference"] == "talk:customcrm-orders:17" and len(rec["Lines"]) == 1
    assert len(sb.app.orders) == before + 1 and sb.stats()["requests"]["POST SalesOrders/Complete"] == 1


def test_repeated_create_is_found_without_a_field_keyed_error(sb: Sandbox, client: Client) -> None:
    """A customer created again with the same ExternalImportReference is refused (400, ProblemDetails
    without `errors`); the client finds the first by the documented `externalImportReference` filter,
    and a product by its `Code` (the `codes` filter)."""
    first = client.create_record("customers", {"Name": "Gjentatt AS"}, idempotency_key="intent-7")
    again = client.create_record("customers", {"Name": "Gjentatt AS"}, idempotency_key="intent-7")
    assert again["Id"] == first["Id"]
    p1 = client.create_record("products", {"Name": "Gjentatt", "Code": "REPEAT-1"}, idempotency_key="intent-8")
    p2 = client.create_record("products", {"Name": "Gjentatt", "Code": "REPEAT-1"}, idempotency_key="intent-8")
    assert p2["Id"] == p1["Id"]
    with pytest.raises(ApiError):  # a refusal for another reason is not mistaken for our own earlier create
        client.create_record("customers", {"Name": "Feil", "EmailAddress": "broken"}, idempotency_key="intent-9")


def test_a_count_of_more_than_a_page_is_taken_once_per_refresh_period(
        sb: Sandbox, client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The count reads a page of ids per 20,000 records (the API documents no count): ~50 pages a probe
    at 1M. Above one page it is taken once per TALK_PROBE_REFRESH_S; the newest change, one call, is
    taken every time and still shows every edit and create at once."""
    monkeypatch.setattr(client, "count_page_size", 5)
    monkeypatch.setenv("TALK_PROBE_REFRESH_S", "1e9")  # one period (time // 1e9) for the test's length
    token = client.probe("customers")
    count, _, newest = token.partition("|")
    assert count.endswith("~1") and int(count.removesuffix("~1")) > 10, token
    calls = sb.stats()["requests"]["GET Customers"]
    assert client.probe("customers", token) == token
    assert sb.stats()["requests"]["GET Customers"] == calls + 1  # the newest change only
    cust = next(client.customers())
    client.update_customer(cust.Id, {"Name": "Åse van der Berg-Ødegård"})
    moved = client.probe("customers", token)
    assert moved.partition("|")[0] == count and moved.partition("|")[2] != newest  # an edit shows at once
    monkeypatch.setenv("TALK_PROBE_REFRESH_S", "5e8")  # another period: counted again
    recount = client.probe("customers", moved)
    assert recount.partition("|")[0] == f"{count.removesuffix('~1')}~3", recount
    monkeypatch.setattr(client, "count_page_size", 20_000)  # one page: counted every time, written bare
    bare = client.probe("customers")
    calls = sb.stats()["requests"]["GET Customers"]
    assert bare.partition("|")[0] == count.removesuffix("~1") and client.probe("customers", bare) == bare
    assert sb.stats()["requests"]["GET Customers"] == calls + 2  # the newest change and the one page
