"""The clients against the running sandboxes: uniform interface, typed methods, faults, rate limit."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest
import requests

from talk_assets.core.http import ApiError, RetryPolicy
from talk_assets.systems.customapi.types import ApiRecord
from talk_assets.systems.customcrm import client as crm_client
from talk_assets.systems.customcrm.models import Customer, Order, OrderLine, Product
from talk_assets.systems.customwebshop import client as shop_client
from talk_assets.systems.customwebshop.models import Address
from talk_assets.systems.customwebshop.models import Customer as ShopCustomer
from talk_assets_tests.systems.customapi.conftest import System


def _seed_where(*pattern: bool, picks_status: bool = False) -> int:
    """A fault seed whose first requests' rolls fall below 0.5 (True) or not (False) in this order.

    The sandbox rolls once per request, and an injected 5xx also draws its status from the same rng.
    """
    statuses = [500, 502, 503]
    for seed in range(10_000):
        rng = random.Random(seed)
        hits = []
        for _ in pattern:
            hit = rng.random() < 0.5
            if hit and picks_status:
                rng.choice(statuses)
            hits.append(hit)
        if tuple(hits) == pattern:
            return seed
    raise AssertionError("no seed")


def test_entities_and_iter_records_all_pages(system: System) -> None:
    client = system.client()
    expected = {"customcrm": ("customers", "contacts", "products", "orders", "quotes", "users"),
                "customwebshop": ("customers", "products", "orders")}[system.key]
    assert client.entities == expected
    for entity in expected:
        raw = system.call("GET", f"/{entity}", params={"limit": 500}).json()["data"]
        calls = client.calls
        got = list(client.iter_records(entity, page_size=5))
        assert got == raw
        assert client.calls - calls == max(1, -(-len(raw) // 5))  # every page, no extra call


def test_iter_records_since(system: System) -> None:
    client = system.client()
    records = list(client.iter_records("customers"))
    since_text = sorted(r["updated_at"] for r in records)[-5]
    since = datetime.fromisoformat(since_text.replace("Z", "+00:00"))
    got = list(client.iter_records("customers", since=since, page_size=2))
    assert [r["id"] for r in got] == sorted(r["id"] for r in records if r["updated_at"] >= since_text)
    assert len(got) >= 5


def test_get_create_update_delete_roundtrip(system: System) -> None:
    client = system.client()
    assert client.get_record("customers", 999999) is None
    with pytest.raises(ApiError) as exc:
        client.get("customers", 999999)
    assert exc.value.status == 404 and "not_found" in exc.value.message
    created = client.create_record("customers", system.sample("customers"))
    rec, version = client.get("customers", created["id"])
    assert rec == created and version == "1"
    field = "name" if system.key == "customcrm" else "first_name"
    updated = client.update_record("customers", rec["id"], {field: "Endret"}, expected_version=version)
    assert updated[field] == "Endret" and updated["version"] == 2
    with pytest.raises(ApiError) as exc:
        client.update_record("customers", rec["id"], {field: "Igjen"}, expected_version="1")
    assert exc.value.status == 412 and not exc.value.transient
    assert client.get_record("customers", rec["id"])[field] == "Endret"
    replaced = client.replace_record("customers", rec["id"], system.sample("customers"), expected_version='"2"')
    assert replaced["version"] == 3 and replaced[field] == system.sample("customers").get(field)
    assert client.delete_record("customers", rec["id"], expected_version=3) is True
    assert client.delete_record("customers", rec["id"]) is False


def test_validation_error_is_parsed_into_message_and_field(system: System) -> None:
    client = system.client()
    with pytest.raises(ApiError) as exc:
        client.create_record("customers", system.sample("customers") | {"email": "nope"})
    err = exc.value
    assert err.status == 422 and err.field == "email"
    assert err.message.startswith("validation_error: email")
    assert f"{system.key} POST {system.spec.root}/customers: HTTP 422" in str(err)


def test_probe_changes_exactly_when_data_changes(system: System) -> None:
    client = system.client()
    p0 = client.probe("products")
    list(client.iter_records("products"))
    assert client.probe("products") == p0
    system.control("POST", "clock", {"advance_s": 3})
    first = next(client.iter_records("products", page_size=1))
    client.update_record("products", first["id"], {"description": "ny tekst"})
    p1 = client.probe("products")
    assert p1 != p0
    summary = client.summary("products")
    assert p1 == f"{summary.count}|{summary.max_updated_at.isoformat(timespec='milliseconds')[:23]}Z"
    client.create_record("products", system.sample("products"))
    assert client.probe("products") != p1


def test_from_env_and_secrets_never_leak(system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    module = crm_client if system.key == "customcrm" else shop_client
    monkeypatch.setenv(system.spec.info.url_env, system.url)
    client = module.from_env()
    assert isinstance(client, module.Client)
    assert client.get_record("customers", 999999) is None
    monkeypatch.setenv(system.spec.info.settings["api_key"].env, "wrong-secret-key-123")
    bad = module.Client.from_env()
    with pytest.raises(ApiError) as exc:
        list(bad.iter_records("customers"))
    assert exc.value.status == 401 and "unauthorized" in exc.value.message
    assert "wrong-secret-key-123" not in str(exc.value) and "wrong-secret-key-123" not in str(exc.value.body)


def test_crm_typed_methods(crm: System) -> None:
    client = crm.client()
    assert isinstance(client, crm_client.Client)
    customers = list(client.iter_customers())
    assert customers and all(isinstance(c, Customer) for c in customers)
    assert {c.customer_type for c in customers} == {"company", "person"}
    orders = list(client.iter_orders())
    order, version = client.get_order(orders[0].id or 0)
    assert isinstance(order, Order) and version == "1" and isinstance(order.lines[0], OrderLine)
    assert isinstance(order.updated_at, datetime) and order.updated_at.tzinfo is not None
    product = client.create_product(Product(sku="TYPED-1", name="Typet", unit_price="49.90", stock_quantity=3))
    assert isinstance(product, Product) and product.id and product.vat_rate == "0.25" and product.version == 1
    changed = client.update_product(product.id, {"stock_quantity": 2}, expected_version=1)
    assert changed.stock_quantity == 2 and changed.version == 2
    assert all(isinstance(u, ApiRecord) for u in client.iter_users())
    created = client.create_order(Order(customer_id=customers[0].id or 0,
                                        lines=[OrderLine(sku="TYPED-1", quantity=3, unit_price="49.90")]))
    assert created.total_ex_vat == "149.70" and created.total_incl_vat == "187.13"


def test_webshop_typed_methods(shop: System) -> None:
    client = shop.client()
    assert isinstance(client, shop_client.Client)
    created = client.create_customer(ShopCustomer(email="typed@example.no", billing_address=Address(city="Oslo")))
    assert created.billing_address is not None and created.billing_address.city == "Oslo"
    got, version = client.get_customer(created.id or 0)
    assert got == created and version == "1"
    products = list(client.iter_products())
    assert all(isinstance(p.price, int) and p.tax_rate == 25.0 for p in products)
    orders = list(client.iter_orders())
    assert orders and all(o.total == sum(i.quantity * i.unit_price for i in o.items) for o in orders)


# -- faults and rate limiting ----------------------------------------------------------------
def test_5xx_faults_are_retried_for_reads(system: System) -> None:
    system.control("PUT", "faults", {"error_rate": 1.0})
    r = system.call("GET", "/customers")
    assert r.status_code in (500, 502, 503) and r.json()["error"]["code"] == "server_error"
    system.control("PUT", "faults", {"error_rate": 0.5, "seed": _seed_where(True, True, False, picks_status=True)})
    system.control("POST", "stats/reset")
    client = system.client()
    assert client.get_record("customers", 999999) is None
    stats = system.control("GET", "stats")["statuses"]
    assert sum(v for k, v in stats.items() if k.startswith("5")) == 2 and stats["404"] == 1


def test_5xx_on_a_create_without_key_is_not_retried(system: System) -> None:
    system.control("PUT", "faults", {"error_rate": 1.0})
    client = system.client()
    with pytest.raises(ApiError) as exc:
        client.create_record("products", system.sample("products"))
    assert exc.value.transient and client.calls == 1


def test_429_storm(system: System) -> None:
    system.control("PUT", "faults", {"storm_429": 3, "storm_retry_after": 0.05})
    r = system.call("GET", "/customers")
    assert r.status_code == 429 and r.headers["Retry-After"] == "0.05"
    assert r.json()["error"]["code"] == "rate_limited"
    client = system.client()
    assert len(list(client.iter_records("customers"))) > 0
    assert client.calls >= 3  # two more 429s, then the pages


def test_dropped_connections(system: System) -> None:
    system.control("PUT", "faults", {"drop_rate": 1.0})
    with pytest.raises(requests.ConnectionError):
        system.call("GET", "/customers")
    client = system.client(retry=RetryPolicy(max_retries=1, backoff=0.01))
    with pytest.raises(ApiError) as exc:
        client.get_record("customers", 1)
    assert exc.value.status is None and exc.value.transient
    system.control("PUT", "faults", {"drop_rate": 0.5, "seed": _seed_where(True, False)})
    assert system.client().get_record("customers", 999999) is None


def test_lost_create_response_is_safe_with_an_idempotency_key(system: System) -> None:
    before = system.call("GET", "/products/_summary").json()["count"]
    # first POST is processed but its answer lost; the retry with the same key gets the first result
    system.control("PUT", "faults", {"lost_response_rate": 0.5, "seed": _seed_where(True, False)})
    client = system.client()
    rec = client.create_record("products", system.sample("products"), idempotency_key="sync-op-42")
    system.control("PUT", "faults", {})
    assert system.call("GET", "/products/_summary").json()["count"] == before + 1
    assert client.get_record("products", rec["id"]) == rec
    assert client.calls == 3


def test_rate_limit_window(system: System) -> None:
    # speed 0.25: the 1 s window lasts 4 s, so even a slow machine sends 60 requests inside it
    system.control("PUT", "faults", {"rate_limit_enabled": True, "rate_limit_speed": 0.25})
    session = requests.Session()
    session.headers.update(system.headers)
    responses = [session.get(system.root + "/users" if system.key == "customcrm" else system.root + "/orders")
                 for _ in range(60)]
    ok = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert len(ok) == 50 and len(limited) == 10
    assert ok[0].headers["X-RateLimit-Limit"] == "50" and ok[0].headers["X-RateLimit-Remaining"] == "49"
    assert 0 < float(limited[0].headers["Retry-After"]) <= 4.0
    assert limited[0].json()["error"]["code"] == "rate_limited"


def test_client_rides_out_the_rate_limit(system: System) -> None:
    system.control("PUT", "faults", {"rate_limit_enabled": True, "rate_limit_speed": 0.25})
    system.control("POST", "stats/reset")
    client = system.client()  # no pacing: the client must honour 429 + Retry-After
    t0 = time.monotonic()
    for _ in range(55):
        assert client.get_record("customers", 999999) is None
    assert time.monotonic() - t0 < 15
    statuses = system.control("GET", "stats")["statuses"]
    assert statuses["404"] == 55 and statuses.get("429", 0) >= 1, statuses


def test_default_client_paces_under_the_limit(system: System) -> None:
    system.control("PUT", "faults", {"rate_limit_enabled": True, "rate_limit_speed": 1.0})
    system.control("POST", "stats/reset")
    client = system.client_cls(system.url, system.spec.api_key())  # default pacer: 48 requests/s
    for _ in range(55):
        client.get_record("customers", 999999)
    assert "429" not in system.control("GET", "stats")["statuses"]


def test_updated_at_follows_the_sandbox_clock(system: System) -> None:
    system.control("POST", "clock", {"advance_s": 86400 * 30})
    rec = system.client().create_record("products", system.sample("products"))
    stamp = datetime.fromisoformat(rec["updated_at"].replace("Z", "+00:00"))
    assert (stamp - datetime.now(UTC)).days >= 29
