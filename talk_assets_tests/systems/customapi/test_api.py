"""The custom APIs at the HTTP boundary: listing, records, writes, locking, errors, auth."""

from __future__ import annotations

import re

import pytest
import requests

from talk_assets_tests.systems.customapi.conftest import PRICE, System

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def error(resp, status: int, code: str, field: str | None = None) -> dict:
    """Assert the API's error shape and return its detail."""
    assert resp.status_code == status, resp.text
    detail = resp.json()["error"]
    assert detail["code"] == code
    assert isinstance(detail["message"], str) and detail["message"]
    if field is not None:
        assert detail["field"] == field
    return detail


# -- auth -----------------------------------------------------------------------------------
def test_auth_missing_wrong_and_right(system: System) -> None:
    r = system.call("GET", "/customers", headers={system.spec.auth_header: ""})
    error(r, 401, "unauthorized")
    wrong = "Bearer not-the-key" if system.spec.auth == "bearer" else "not-the-key"
    r = system.call("GET", "/customers", headers={system.spec.auth_header: wrong})
    assert "not-the-key" not in r.text
    error(r, 401, "unauthorized")
    assert system.call("GET", "/customers").status_code == 200


def test_each_system_uses_its_own_auth_header(servers: dict[str, System]) -> None:
    crm, shop = servers["customcrm"], servers["customwebshop"]
    r = shop.call("GET", "/customers", headers={"X-Api-Key": "", "Authorization": f"Bearer {shop.spec.api_key()}"})
    assert r.status_code == 401
    r = crm.call("GET", "/customers", headers={"Authorization": "", "X-Api-Key": crm.spec.api_key()})
    assert r.status_code == 401
    assert crm.call("GET", "/customers").status_code == 200
    assert shop.call("GET", "/customers").status_code == 200


# -- listing --------------------------------------------------------------------------------
@pytest.mark.parametrize("entity", ["customers", "products", "orders"])
def test_cursor_pagination_covers_every_record_once(system: System, entity: str) -> None:
    total = system.call("GET", f"/{entity}/_summary").json()["count"]
    limit = max(1, total // 4)
    ids: list[int] = []
    pages = 0
    r = system.call("GET", f"/{entity}", params={"limit": limit})
    while True:
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"data", "next_cursor"}
        assert len(body["data"]) <= limit
        ids += [rec["id"] for rec in body["data"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        r = system.call("GET", f"/{entity}", params={"cursor": body["next_cursor"], "limit": limit})
    assert total >= 4 and pages >= 4
    assert ids == sorted(set(ids))
    assert len(ids) == total


def test_default_page_is_100_and_limit_bounds(system: System) -> None:
    body = system.call("GET", "/customers").json()
    assert len(body["data"]) == min(100, system.call("GET", "/customers/_summary").json()["count"])
    for bad in ("0", "501", "x"):
        error(system.call("GET", "/customers", params={"limit": bad}), 400, "validation_error", "limit")
    error(system.call("GET", "/customers", params={"cursor": "!!nonsense"}), 400, "validation_error", "cursor")
    error(system.call("GET", "/customers", params={"updated_since": "yesterday"}), 400, "validation_error",
          "updated_since")


def test_updated_since_is_inclusive_and_carried_by_the_cursor(system: System) -> None:
    records = system.call("GET", "/customers", params={"limit": 500}).json()["data"]
    stamps = sorted(rec["updated_at"] for rec in records)
    since = stamps[len(stamps) // 2]
    expected = sorted(rec["id"] for rec in records if rec["updated_at"] >= since)
    got: list[int] = []
    r = system.call("GET", "/customers", params={"updated_since": since, "limit": 3})
    while True:
        body = r.json()
        got += [rec["id"] for rec in body["data"]]
        if not body["next_cursor"]:
            break
        r = system.call("GET", "/customers", params={"cursor": body["next_cursor"], "limit": 3})
    assert got == expected
    assert any(rec["updated_at"] == since for rec in records if rec["id"] in got)  # inclusive
    # an offset form and a zone-less form mean the same instant
    plus = since.replace("Z", "+00:00")
    assert [x["id"] for x in system.call("GET", "/customers", params={"updated_since": plus, "limit": 500})
            .json()["data"]] == expected


def test_a_write_shows_up_in_the_incremental_listing(system: System) -> None:
    system.control("POST", "clock", {"advance_s": 60})
    before = system.call("GET", "/_summary".join(["/customers", ""])).json()["max_updated_at"]
    rec = system.call("GET", "/customers", params={"limit": 1}).json()["data"][0]
    r = system.call("PATCH", f"/customers/{rec['id']}", json={"phone": "+47 99999999"})
    assert r.status_code == 200
    changed = r.json()["updated_at"]
    assert changed > before
    data = system.call("GET", "/customers", params={"updated_since": changed}).json()["data"]
    assert [x["id"] for x in data] == [rec["id"]]


# -- single records --------------------------------------------------------------------------
def test_get_has_etag_and_404_is_json(system: System) -> None:
    rec = system.call("GET", "/products", params={"limit": 1}).json()["data"][0]
    r = system.call("GET", f"/products/{rec['id']}")
    assert r.status_code == 200 and r.json() == rec
    assert r.headers["ETag"] == f'"{rec["version"]}"' == '"1"'
    assert TS.match(rec["created_at"]) and TS.match(rec["updated_at"])
    error(system.call("GET", "/products/999999"), 404, "not_found")
    error(system.call("GET", "/products/abc"), 404, "not_found")
    error(system.call("GET", "/nothing"), 404, "not_found")


def test_create_returns_201_location_etag(system: System) -> None:
    system.control("POST", "clock", {"advance_s": 30})
    r = system.call("POST", "/customers", json=system.sample("customers"))
    assert r.status_code == 201, r.text
    rec = r.json()
    assert r.headers["Location"] == f"{system.spec.root}/customers/{rec['id']}"
    assert r.headers["ETag"] == '"1"' and rec["version"] == 1
    assert TS.match(rec["updated_at"]) and rec["created_at"] == rec["updated_at"]
    assert rec["updated_at"] > "2026-11-01"
    got = system.call("GET", f"/customers/{rec['id']}")
    assert got.json() == rec
    for k, v in system.sample("customers").items():
        assert rec[k] == v if not isinstance(v, dict) else {**rec[k], **v} == rec[k]


def test_idempotency_key_creates_once(system: System) -> None:
    before = system.call("GET", "/products/_summary").json()["count"]
    key = {"Idempotency-Key": "create-test-1"}
    first = system.call("POST", "/products", json=system.sample("products"), headers=key)
    again = system.call("POST", "/products", json=system.sample("products"), headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert system.call("GET", "/products/_summary").json()["count"] == before + 1
    other = system.sample("products") | {"sku": "OTHER-1"}
    error(system.call("POST", "/products", json=other, headers=key), 422, "validation_error", "Idempotency-Key")
    # without a key the same body is a new create, which the unique SKU refuses
    error(system.call("POST", "/products", json=system.sample("products")), 409, "conflict", "sku")


def test_put_replaces_the_whole_record_and_bumps_version(system: System) -> None:
    rec = system.call("POST", "/customers", json=system.sample("customers")).json()
    system.control("POST", "clock", {"advance_s": 5})
    body = system.sample("customers")
    body.pop("country" if system.key == "customcrm" else "billing_address")
    body |= {"id": 424242, "version": 99, "updated_at": "2000-01-01T00:00:00.000Z"}  # server-kept: ignored
    r = system.call("PUT", f"/customers/{rec['id']}", json=body)
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["id"] == rec["id"] and new["version"] == 2 and r.headers["ETag"] == '"2"'
    assert new["updated_at"] > rec["updated_at"] and new["created_at"] == rec["created_at"]
    dropped = "country" if system.key == "customcrm" else "billing_address"
    assert rec[dropped] is not None and new[dropped] is None


def test_patch_is_a_json_merge_patch(system: System) -> None:
    rec = system.call("POST", "/customers", json=system.sample("customers")).json()
    if system.key == "customcrm":
        r = system.call("PATCH", f"/customers/{rec['id']}", json={"city": "Bergen", "country": None})
        new = r.json()
        assert new["city"] == "Bergen" and new["country"] is None and new["name"] == rec["name"]
    else:
        r = system.call("PATCH", f"/customers/{rec['id']}",
                        json={"billing_address": {"city": "Bergen", "street": None}})
        new = r.json()
        assert new["billing_address"] == {"street": None, "street2": None, "postal_code": None,
                                          "city": "Bergen", "country_code": "NO"}
        assert new["first_name"] == "Nina"
    assert r.status_code == 200 and new["version"] == 2
    assert system.call("GET", f"/customers/{rec['id']}").headers["ETag"] == '"2"'


def test_if_match_optimistic_locking(system: System) -> None:
    rec = system.call("GET", "/customers", params={"limit": 1}).json()["data"][0]
    path = f"/customers/{rec['id']}"
    ok = system.call("PATCH", path, json={"phone": "12345678"}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["ETag"] == '"2"'
    stale = system.call("PATCH", path, json={"phone": "87654321"}, headers={"If-Match": '"1"'})
    error(stale, 412, "precondition_failed")
    assert stale.headers["ETag"] == '"2"'
    assert system.call("GET", path).json()["phone"] == "12345678"
    error(system.call("PUT", path, json=rec, headers={"If-Match": '"1"'}), 412, "precondition_failed")
    assert system.call("PATCH", path, json={"phone": "1"}, headers={"If-Match": 'W/"2"'}).status_code == 200
    assert system.call("PATCH", path, json={"phone": "2"}, headers={"If-Match": "*"}).status_code == 200


def test_delete(system: System) -> None:
    rec = system.call("POST", "/products", json=system.sample("products")).json()
    path = f"/products/{rec['id']}"
    error(system.call("DELETE", path, headers={"If-Match": '"7"'}), 412, "precondition_failed")
    r = system.call("DELETE", path, headers={"If-Match": '"1"'})
    assert r.status_code == 204 and r.content == b""
    error(system.call("GET", path), 404, "not_found")
    error(system.call("DELETE", path), 404, "not_found")
    # its SKU is free again
    assert system.call("POST", "/products", json=system.sample("products")).status_code == 201


# -- validation ---------------------------------------------------------------------------------
def test_validation_errors_name_the_field(system: System) -> None:
    bad_email = system.sample("customers") | {"email": "not-an-email"}
    d = error(system.call("POST", "/customers", json=bad_email), 422, "validation_error", "email")
    assert "e-mail" in d["message"]
    price_field, negative = PRICE[system.key]
    error(system.call("POST", "/products", json=system.sample("products") | {price_field: negative}),
          422, "validation_error", price_field)
    missing = system.sample("products")
    missing.pop(price_field)
    error(system.call("POST", "/products", json=missing), 422, "validation_error", price_field)
    error(system.call("POST", "/products", json=system.sample("products") | {"colour": "red"}),
          422, "validation_error", "colour")
    error(system.call("POST", "/products", json=system.sample("products") | {"stock_quantity" if
          system.key == "customcrm" else "stock": "5"}), 422, "validation_error")  # strict types
    error(system.call("POST", "/products", data="{nope", headers={"Content-Type": "application/json"}),
          400, "validation_error")
    error(system.call("POST", "/products", json=[1, 2]), 400, "validation_error")


def test_duplicates_conflict(system: System) -> None:
    existing = system.call("GET", "/customers", params={"limit": 500}).json()["data"]
    email = next(c["email"] for c in existing if c["email"])
    body = system.sample("customers") | {"email": email.upper()}  # case-insensitive
    error(system.call("POST", "/customers", json=body), 409, "conflict", "email")
    sku = system.call("GET", "/products", params={"limit": 1}).json()["data"][0]["sku"]
    error(system.call("POST", "/products", json=system.sample("products") | {"sku": sku}), 409, "conflict", "sku")
    other = next(c for c in existing if c["email"] and c["email"] != email)
    error(system.call("PATCH", f"/customers/{other['id']}", json={"email": email}), 409, "conflict", "email")
    # patching a record with its own e-mail is no conflict
    assert system.call("PATCH", f"/customers/{other['id']}", json={"email": other["email"]}).status_code == 200


def test_orders_lines_are_validated_and_totals_computed(system: System) -> None:
    customer = system.call("GET", "/customers", params={"limit": 1}).json()["data"][0]
    if system.key == "customcrm":
        body = {"customer_id": customer["id"], "user_id": 1, "total_ex_vat": "1.00",
                "lines": [{"sku": "A", "quantity": 2, "unit_price": "100.00", "vat_rate": "0.25"},
                          {"sku": "B", "quantity": 1, "unit_price": "10.50"}]}
        lines = "lines"
    else:
        body = {"customer_id": customer["id"], "email": customer["email"], "total": 1,
                "items": [{"sku": "A", "quantity": 2, "unit_price": 12500}, {"sku": "B", "quantity": 1,
                                                                                  "unit_price": 990}]}
        lines = "items"
    r = system.call("POST", "/orders", json=body)
    assert r.status_code == 201, r.text
    order = r.json()
    if system.key == "customcrm":
        assert (order["total_ex_vat"], order["total_incl_vat"]) == ("210.50", "263.13")
        assert order["order_number"] == str(1000 + order["id"]) and order["status"] == "open"
    else:
        assert order["total"] == 25990 and order["number"] == f"WS-{1000 + order['id']}"
    bad = dict(body)
    bad[lines] = [dict(body[lines][0], quantity=0)]
    error(system.call("POST", "/orders", json=bad), 422, "validation_error", f"{lines}.0.quantity")
    error(system.call("POST", "/orders", json=body | {"customer_id": 999999}), 422, "validation_error",
          "customer_id")
    error(system.call("POST", "/orders", json=body | {"status": "lost"}), 422, "validation_error", "status")
    error(system.call("POST", "/orders", json=body | {("order_number" if system.key == "customcrm" else "number"):
          order["order_number" if system.key == "customcrm" else "number"]}), 409, "conflict")


def test_summary_tracks_changes(system: System) -> None:
    s0 = system.call("GET", "/products/_summary").json()
    records = system.call("GET", "/products", params={"limit": 500}).json()["data"]
    assert s0 == {"count": len(records), "max_updated_at": max(r["updated_at"] for r in records)}
    system.control("POST", "clock", {"advance_s": 10})
    rec = system.call("POST", "/products", json=system.sample("products")).json()
    s1 = system.call("GET", "/products/_summary").json()
    assert s1 == {"count": s0["count"] + 1, "max_updated_at": rec["updated_at"]}
    system.call("DELETE", f"/products/{rec['id']}")
    assert system.call("GET", "/products/_summary").json()["count"] == s0["count"]


def test_method_not_allowed(system: System) -> None:
    error(system.call("DELETE", "/customers"), 405, "method_not_allowed")


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "CONNECT", "PROPFIND"])
def test_a_method_the_spec_does_not_list_is_405_json_with_allow(system: System, method: str) -> None:
    r = system.call(method, "/customers")
    error(r, 405, "method_not_allowed")
    assert r.headers["Content-Type"].startswith("application/json")
    assert set(r.headers["Allow"].split(", ")) == {"GET", "POST"}
    r = system.call(method, "/customers/1")
    error(r, 405, "method_not_allowed")
    assert set(r.headers["Allow"].split(", ")) == {"GET", "PUT", "PATCH", "DELETE"}


@pytest.mark.parametrize("value", ["", " ", "yesterday", "2026-11-23"])
def test_updated_since_must_be_a_date_time(system: System, value: str) -> None:
    error(system.call("GET", "/customers", params={"updated_since": value}), 400, "validation_error",
          "updated_since")


def test_limit_must_be_an_integer_even_when_empty(system: System) -> None:
    error(system.call("GET", "/customers", params={"limit": ""}), 400, "validation_error", "limit")


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_a_write_without_a_body_or_with_malformed_json_is_a_documented_400(system: System, method: str) -> None:
    doc = requests.get(system.url + "/openapi.json", timeout=10).json()
    op = doc["paths"][f"{system.spec.root}/customers/{{id}}"][method.lower()]
    assert "400" in op["responses"]
    error(system.call(method, "/customers/1"), 400, "validation_error")
    error(system.call(method, "/customers/1", data=b"{not json", headers={"Content-Type": "application/json"}),
          400, "validation_error")
    assert "400" in doc["paths"][f"{system.spec.root}/customers"]["post"]["responses"]
    error(system.call("POST", "/customers"), 400, "validation_error")


def test_summary_is_its_own_resource_not_a_record_id(system: System) -> None:
    r = system.call("PUT", "/customers/_summary", json={})
    error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET"
