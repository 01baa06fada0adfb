"""The PowerOffice sandbox at the HTTP boundary: auth, shapes, paging, filters, writes, limits."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from talk_assets.sandbox.world import build_world
from talk_assets.systems import poweroffice
from talk_assets.systems.poweroffice.sandbox import App

from .conftest import APP_KEY, CLIENT_KEY, SUB_KEY, Sandbox

SPEC_PATH = Path(poweroffice.__file__).with_name("openapi.yaml")  # PowerOffice's own schema, vendored
SHARED_SPEC = Path("/work/shared/reference/poweroffice-go-v2.openapi.yaml")
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}  # ProblemDetails' properties, nothing else
PATCH = {"Content-Type": "application/json-patch+json"}


# -- a small OpenAPI 3.0 schema checker (jsonschema is not in the venv) -------------------------
@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text())


def check(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
    """Violations of `schema` by `value`: types, nullable, enums, formats, required, unknown properties."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "allOf" in schema:
        return [e for s in schema["allOf"] for e in check(spec, s, value, where)]
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null not allowed"]
    errs: list[str] = []
    t = schema.get("type")
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}
    if t and (not isinstance(value, types[t]) or (t in ("integer", "number") and isinstance(value, bool))):
        return [f"{where}: expected {t}, got {type(value).__name__} {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{where}: {value!r} not in enum")
    fmt = schema.get("format")
    if t == "string" and fmt == "date-time":
        try:
            assert datetime.fromisoformat(value).tzinfo is not None
        except (ValueError, AssertionError):
            errs.append(f"{where}: not a date-time with offset: {value!r}")
    if t == "string" and fmt == "date":
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            errs.append(f"{where}: not a date: {value!r}")
    if t == "string" and "maxLength" in schema and len(value) > schema["maxLength"]:
        errs.append(f"{where}: longer than {schema['maxLength']}")
    if t == "array":
        for i, item in enumerate(value):
            errs += check(spec, schema.get("items", {}), item, f"{where}[{i}]")
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                errs.append(f"{where}: missing required {req}")
        for k, v in value.items():
            if k in props:
                errs += check(spec, props[k], v, f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                errs.append(f"{where}: unknown property {k}")
    return errs


def problem(resp: Any, field: str) -> bool:
    """A ProblemDetails with only the schema's properties (no `errors` map) whose detail names `field`."""
    body = resp.json()
    assert set(body) <= PROBLEM_FIELDS, body
    assert field in body["detail"], body
    return True


def dto(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_payloads_validate_against_the_openapi_dtos(sb: Sandbox, spec: dict[str, Any]) -> None:
    h = sb.headers()
    customers = sb.get("Customers", headers=h).json()
    products = sb.get("Products", headers=h).json()
    orders = sb.get("SalesOrders", headers=h).json()
    assert customers and products and orders
    assert check(spec, {"type": "array", "items": dto("CustomerDto")}, customers) == []
    assert check(spec, {"type": "array", "items": dto("ProductDto")}, products) == []
    assert check(spec, {"type": "array", "items": dto("SalesOrderDto")}, orders) == []
    assert check(spec, dto("CustomerDto"), sb.get(f"Customers/{customers[0]['Id']}", headers=h).json()) == []
    assert check(spec, dto("ProductDto"), sb.get(f"Products/{products[0]['Id']}", headers=h).json()) == []
    oid = orders[0]["Id"]
    assert check(spec, dto("SalesOrderDto"), sb.get(f"SalesOrders/{oid}", headers=h).json()) == []
    lines = sb.get(f"SalesOrders/{oid}/Lines", headers=h).json()
    assert check(spec, {"type": "array", "items": dto("SalesOrderLineDto")}, lines) == []
    assert check(spec, dto("SalesOrderCompleteDto"), sb.get(f"SalesOrders/{oid}/Complete", headers=h).json()) == []
    err = sb.get("Customers/1", headers=h)
    assert err.status_code == 404 and check(spec, dto("ProblemDetails"), err.json()) == []
    assert set(err.json()) <= PROBLEM_FIELDS

    # the checker itself catches what it should
    assert check(spec, dto("ProductDto"), {"UnitPrice": "10", "Extra": 1}) != []
    assert check(spec, dto("SalesOrderDto"), {"SalesOrderStatus": "Open"}) != []


@pytest.mark.skipif(not SHARED_SPEC.exists(), reason="the shared reference copy is not on this machine")
def test_the_vendored_schema_is_powerOffices_own() -> None:
    assert SPEC_PATH.read_bytes() == SHARED_SPEC.read_bytes()


# -- auth ---------------------------------------------------------------------------------------
def _token(sb: Sandbox, app: str = APP_KEY, client: str = CLIENT_KEY, sub: str | None = SUB_KEY,
           grant: str = "client_credentials") -> Any:
    basic = base64.b64encode(f"{app}:{client}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}"}
    if sub is not None:
        headers["Ocp-Apim-Subscription-Key"] = sub
    return sb.http.post(f"{sb.url}/OAuth/Token", data={"grant_type": grant}, headers=headers)


def test_token_endpoint(sb: Sandbox) -> None:
    ok = _token(sb)
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1200 and len(body["access_token"]) > 20
    bad = _token(sb, client="wrong-client-key")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert _token(sb, sub=None).status_code == 401
    assert _token(sb, grant="password").status_code == 400


def test_every_v2_call_needs_token_and_subscription_key(sb: Sandbox) -> None:
    token = sb.token()
    no_token = sb.get("Customers", headers={"Ocp-Apim-Subscription-Key": SUB_KEY})
    assert no_token.status_code == 401 and no_token.json()["status"] == 401
    assert "Bearer" in no_token.headers["WWW-Authenticate"]
    bad_token = sb.get("Customers", headers={"Authorization": "Bearer nope", "Ocp-Apim-Subscription-Key": SUB_KEY})
    assert bad_token.status_code == 401
    no_key = sb.get("Customers", headers={"Authorization": f"Bearer {token}"})
    assert no_key.status_code == 401 and "subscription key" in no_key.json()["message"]
    wrong_key = sb.get("Customers", headers={"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": "x"})
    assert wrong_key.status_code == 401
    assert sb.get("Customers", headers={"Authorization": f"Bearer {token}",
                                        "Ocp-Apim-Subscription-Key": SUB_KEY}).status_code == 200


def test_tokens_expire(sb: Sandbox) -> None:
    sb.control("PUT", "token_ttl", {"seconds": 1})
    h = sb.headers()
    assert sb.get("Products", headers=h).status_code == 200
    time.sleep(1.1)
    expired = sb.get("Products", headers=h)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    # and the sandbox clock ends them too (a 20-minute token after 21 minutes)
    sb.control("PUT", "token_ttl", {"seconds": 1200})
    h = sb.headers()
    sb.control("POST", "clock", {"advance_s": 1260})
    assert sb.get("Products", headers=h).status_code == 401


# -- seed ---------------------------------------------------------------------------------------
def test_seed_comes_from_the_shared_world(sb: Sandbox) -> None:
    w = build_world(7, 40)
    customers = sb.get("Customers").json()
    persons = [c for c in customers if c["IsPerson"]]
    orgs = [c for c in customers if not c["IsPerson"]]
    want_persons = [p for p in w.persons if w.member("poweroffice", "person", p.key, 0.4)]
    want_orgs = [o for o in w.organisations if w.member("poweroffice", "organisation", o.key, 0.8)]
    assert len(persons) == len(want_persons) and len(orgs) == len(want_orgs)
    assert [c["Number"] for c in customers] == list(range(10001, 10001 + len(customers)))
    assert all(c["Name"] == f"{c['FirstName']} {c['LastName']}" for c in persons)
    world_emails = {p.email.lower() for p in w.persons} | {o.email.lower() for o in w.organisations}
    emails = [c["EmailAddress"] for c in customers if c["EmailAddress"]]
    assert emails and all(e.lower() in world_emails for e in emails)
    assert {o["OrganizationNumber"] for o in orgs} - {None} <= {o.org_number for o in w.organisations}
    products = sb.get("Products").json()
    skus = {v.sku for f, v in w.variants if w.member("poweroffice", "family", f.key, 0.85)}
    assert {p["Code"] for p in products} == skus
    orders = sb.get("SalesOrders").json()
    ids = {c["Id"]: c["Number"] for c in customers}
    assert orders and all(ids[o["CustomerId"]] == o["CustomerNo"] and o["CurrencyCode"] == "NOK" for o in orders)
    o = orders[0]
    lines = sb.get(f"SalesOrders/{o['Id']}/Lines").json()
    assert round(sum(x["NetAmount"] for x in lines), 2) == o["NetAmount"]
    assert o["TotalAmount"] == pytest.approx(o["NetAmount"] * 1.25, abs=0.05)
    assert App(seed=7, size=40).customers.rows == sb.app.customers.rows  # deterministic


# -- paging and filters -------------------------------------------------------------------------
def test_paging_by_page_number(sb: Sandbox) -> None:
    h = sb.headers()
    everything = sb.get("Customers", headers=h).json()
    pages, n = [], 1
    while True:
        r = sb.get("Customers", params={"PageNumber": n, "PageSize": 7}, headers=h)
        if r.status_code == 204:
            assert r.content == b""
            break
        pages.append(r.json())
        n += 1
    assert len(pages) >= 4 and all(len(p) == 7 for p in pages[:-1])
    assert [c["Id"] for p in pages for c in p] == [c["Id"] for c in everything]
    # ASP.NET binds query parameters case-insensitively
    assert sb.get("Customers", params={"pagenumber": 2, "pagesize": 7}, headers=h).json() == pages[1]
    too_big = sb.get("Customers", params={"PageSize": 20001}, headers=h)
    assert too_big.status_code == 400 and problem(too_big, "PageSize")
    assert sb.get("Customers", params={"PageNumber": 0}, headers=h).status_code == 400


def test_incremental_filter(sb: Sandbox) -> None:
    h = sb.headers()
    customers = sb.get("Customers", headers=h).json()
    newest = max(c["LastChangedDateTimeOffset"] for c in customers)
    assert sb.get("Customers", params={"lastChangedDateTimeOffsetGreaterThan": newest}, headers=h).status_code == 204
    target = customers[3]
    r = sb.http.patch(f"{sb.url}/v2/Customers/{target['Id']}", headers={**h, **PATCH},
                      data=json.dumps([{"op": "replace", "path": "/PhoneNumber", "value": "+47 22 33 44 55"}]))
    assert r.status_code == 200 and r.json()["LastChangedDateTimeOffset"] > newest
    changed = sb.get("Customers", params={"lastChangedDateTimeOffsetGreaterThan": newest}, headers=h).json()
    assert [c["Id"] for c in changed] == [target["Id"]]
    # the documented example format, with '+' sent unencoded (it arrives as a space)
    raw = newest.replace("T", " ")
    r2 = sb.http.get(f"{sb.url}/v2/Customers?lastChangedDateTimeOffsetGreaterThan={raw}", headers=h)
    assert [c["Id"] for c in r2.json()] == [target["Id"]]
    bad = sb.get("Customers", params={"lastChangedDateTimeOffsetGreaterThan": "yesterday"}, headers=h)
    assert bad.status_code == 400 and problem(bad, "lastChangedDateTimeOffsetGreaterThan")


@pytest.mark.parametrize("path", ["Customers", "Products", "SalesOrders"])
def test_order_by_change_time_answers_as_a_sort_of_every_record(sb: Sandbox, path: str) -> None:
    """`OrderBy=LastChangedDateTimeOffset` (the sync's probe asks for the newest change) is answered from
    the sandbox's change index (issue #15: a sort of every record on each probe was seconds a cycle at
    1M records): after edits made in one instant (ties) the same rows in the same order as a stable
    sort of the id-ordered records, ascending and descending, with the change filter, a filter and paging."""
    h = sb.headers()
    table = {"Customers": sb.app.customers, "Products": sb.app.products, "SalesOrders": sb.app.orders}[path]
    edited = table.ids[2::5][:4]
    with sb.app.lock:  # one instant for all four: ties in change time
        now = sb.app.now()
        for rid in edited:
            table.put({**table.rows[rid], "LastChangedDateTimeOffset": now}, now)
    rows = [table.rows[rid] for rid in table.ids]
    since = sorted(r["LastChangedDateTimeOffset"] for r in rows)[len(rows) // 2]
    for direction in ("", " asc", " desc", " DESC"):
        want = sorted(rows, key=lambda r: r["LastChangedDateTimeOffset"], reverse=direction.strip().lower() == "desc")
        for params, kept in (({}, want), ({"lastChangedDateTimeOffsetGreaterThan": since.isoformat()},
                                           [r for r in want if r["LastChangedDateTimeOffset"] > since])):
            for size, page in ((1, 1), (3, 2), (1000, 1)):
                r = sb.get(path, params={**params, "OrderBy": f"LastChangedDateTimeOffset{direction}", "PageSize": size,
                                         "PageNumber": page, "Fields": "Id"}, headers=h)
                expect = [x["Id"] for x in kept[(page - 1) * size: page * size]]
                assert ([x["Id"] for x in r.json()] if r.status_code == 200 else []) == expect, (direction, params, size)
    if path == "Customers":  # a filter with the order: customer numbers
        nos = sorted(table.rows[rid]["Number"] for rid in edited)
        r = sb.get(path, params={"customerNos": ",".join(map(str, nos)), "OrderBy": "lastchangeddatetimeoffset desc"},
                   headers=h)
        assert [x["Id"] for x in r.json()] == sorted(edited)  # one instant: ties in id order

def test_other_filters_order_and_fields(sb: Sandbox) -> None:
    h = sb.headers()
    nos = sb.get("Customers", params={"customerNos": "10002-10004, 10010, 10030-"}, headers=h).json()
    numbers = [c["Number"] for c in nos]
    assert numbers[:4] == [10002, 10003, 10004, 10010] and all(n >= 10030 for n in numbers[4:])
    assert sb.get("Customers", params={"customerNos": "abc"}, headers=h).status_code == 400
    products = sb.get("Products", headers=h).json()
    codes = [products[1]["Code"], products[5]["Code"]]
    assert [p["Code"] for p in sb.get("Products", params={"codes": ",".join(codes)}, headers=h).json()] == codes
    drafts = sb.get("SalesOrders", params={"orderStatus": "Draft"}, headers=h).json()
    assert drafts and {o["SalesOrderStatus"] for o in drafts} == {"Draft"}
    newest = sb.get("Products", params={"OrderBy": "LastChangedDateTimeOffset desc", "PageSize": 1,
                                        "Fields": "Id,LastChangedDateTimeOffset"}, headers=h).json()
    assert list(newest[0]) == ["Id", "LastChangedDateTimeOffset"]
    assert newest[0]["LastChangedDateTimeOffset"] == max(p["LastChangedDateTimeOffset"] for p in products)


# -- writes -------------------------------------------------------------------------------------
def test_patch_customer_with_json_patch(sb: Sandbox) -> None:
    h = sb.headers()
    c = sb.get("Customers", headers=h).json()[0]
    url = f"{sb.url}/v2/Customers/{c['Id']}"
    ops = [{"op": "replace", "path": "/name", "value": "Nytt Navn AS"},  # case-insensitive, as in Go
           {"op": "replace", "path": "/MailAddress/City", "value": "Bodø"}]
    r = sb.http.patch(url, headers={**h, **PATCH}, data=json.dumps(ops))
    assert r.status_code == 200
    body = r.json()
    assert body["Name"] == "Nytt Navn AS" and body["MailAddress"]["City"] == "Bodø"
    assert body["MailAddress"]["Id"] == c["MailAddress"]["Id"] and body["Number"] == c["Number"]
    assert sb.get(f"Customers/{c['Id']}", headers=h).json()["Name"] == "Nytt Navn AS"
    wrong_type = sb.http.patch(url, headers={**h, "Content-Type": "application/json"}, data=json.dumps(ops))
    assert wrong_type.status_code == 415
    bad_email = sb.http.patch(url, headers={**h, **PATCH},
                              data=json.dumps([{"op": "replace", "path": "/EmailAddress", "value": "not-an-email"}]))
    assert bad_email.status_code == 400 and problem(bad_email, "EmailAddress")
    read_only = sb.http.patch(url, headers={**h, **PATCH},
                              data=json.dumps([{"op": "replace", "path": "/Id", "value": 1}]))
    assert read_only.status_code == 400 and problem(read_only, "Id")
    missing = sb.http.patch(f"{sb.url}/v2/Customers/999", headers={**h, **PATCH}, data=json.dumps(ops))
    assert missing.status_code == 404 and missing.json()["detail"] == "Customer with id = 999 not found."


def test_a_customer_number_and_an_import_reference_are_unique_and_freed_when_changed(sb: Sandbox) -> None:
    """Number and ExternalImportReference belong to one customer: a create or patch taking another's is a
    400 naming the field and the holder; a value patched away is free again (the sandbox answers these
    from an index, as the real database does, issue #15: a scan of every customer on each write)."""
    h = sb.headers()
    a, b = sb.get("Customers", params={"PageSize": 2}, headers=h).json()

    def patch(cid: int, path: str, value: Any) -> Any:
        return sb.http.patch(f"{sb.url}/v2/Customers/{cid}", headers={**h, **PATCH},
                             data=json.dumps([{"op": "replace", "path": path, "value": value}]))

    taken = sb.http.post(f"{sb.url}/v2/Customers", headers=h, json={"Name": "Ødegård-van der Berg", "Number": a["Number"]})
    assert taken.status_code == 400 and problem(taken, "Number") and f"Id = {a['Id']}" in taken.json()["detail"]
    ref = "crm:customers:42 🌲"
    assert patch(a["Id"], "/ExternalImportReference", ref).status_code == 200
    assert patch(a["Id"], "/ExternalImportReference", ref).status_code == 200  # its own value is no conflict
    dup = patch(b["Id"], "/ExternalImportReference", ref)
    assert dup.status_code == 400 and problem(dup, "ExternalImportReference") and f"Id = {a['Id']}" in dup.json()["detail"]
    moved = patch(a["Id"], "/Number", a["Number"] + 900000)
    assert moved.status_code == 200 and patch(a["Id"], "/ExternalImportReference", None).status_code == 200
    assert patch(b["Id"], "/ExternalImportReference", ref).status_code == 200  # freed by a
    made = sb.http.post(f"{sb.url}/v2/Customers", headers=h, json={"Name": "Åse", "Number": a["Number"]})
    assert made.status_code == 201, made.text  # a's old number is free
    again = sb.http.post(f"{sb.url}/v2/Customers", headers=h, json={"Name": "Bo"})
    assert again.status_code == 201 and again.json()["Number"] == a["Number"] + 900001  # the next after the highest
    order = sb.http.post(f"{sb.url}/v2/SalesOrders/Complete", headers=h, json={"CustomerNo": a["Number"] + 900000})
    assert order.status_code in (200, 201), order.text
    assert order.json()["CustomerId"] == a["Id"]  # found by its new number

def test_create_customer(sb: Sandbox) -> None:
    h = sb.headers()
    existing = sb.get("Customers", headers=h).json()
    r = sb.http.post(f"{sb.url}/v2/Customers", headers=h, json={
        "IsPerson": True, "FirstName": "Kari", "LastName": "Nordmann", "EmailAddress": "kari@example.no",
        "MailAddress": {"AddressLine1": "Storgata 1", "ZipCode": "0150", "City": "Oslo"}})
    assert r.status_code == 201
    body = r.json()
    assert body["Name"] == "Kari Nordmann" and body["Number"] == max(c["Number"] for c in existing) + 1
    assert body["MailAddress"]["CountryCode"] == "NO" and isinstance(body["Id"], int)
    no_name = sb.http.post(f"{sb.url}/v2/Customers", headers=h, json={"EmailAddress": "a@b.no"})
    assert no_name.status_code == 400 and problem(no_name, "Name")
    unknown = sb.http.post(f"{sb.url}/v2/Customers", headers=h, json={"Name": "X", "Email": "a@b.no"})
    assert unknown.status_code == 400 and problem(unknown, "Email")
    dup = sb.http.post(f"{sb.url}/v2/Customers", headers=h, json={"Name": "X", "Number": existing[0]["Number"]})
    assert dup.status_code == 400 and problem(dup, "Number")


def test_products_validation(sb: Sandbox) -> None:
    h = sb.headers()
    code = sb.get("Products", headers=h).json()[0]["Code"]
    ok = sb.http.post(f"{sb.url}/v2/Products", headers=h,
                      json={"Name": "Test", "Code": "TEST-1", "UnitPrice": 80, "ProductType": "Service"})
    assert ok.status_code == 200 and ok.json()["UnitPrice"] == 80.0 and ok.json()["ProductType"] == "Service"
    for body, field in (({"Name": "Dup", "Code": code}, "Code"), ({"Name": "Neg", "UnitPrice": -1}, "UnitPrice"),
                        ({"Code": "NONAME"}, "Name"), ({"Name": "T", "ProductType": "Thing"}, "ProductType"),
                        ({"Name": "T", "UnitPrice": "ten"}, "UnitPrice")):
        r = sb.http.post(f"{sb.url}/v2/Products", headers=h, json=body)
        assert r.status_code == 400 and problem(r, field), (body, r.text)
    pid = ok.json()["Id"]
    neg = sb.http.patch(f"{sb.url}/v2/Products/{pid}", headers={**h, **PATCH},
                        data=json.dumps([{"op": "replace", "path": "/UnitPrice", "value": -5}]))
    assert neg.status_code == 400 and problem(neg, "UnitPrice")


def test_sales_order_complete(sb: Sandbox, spec: dict[str, Any]) -> None:
    h = sb.headers()
    cust = sb.get("Customers", headers=h).json()[2]
    prods = sb.get("Products", headers=h).json()[:2]
    body = {"CustomerNo": cust["Number"], "PurchaseOrderReference": "PO-1", "SalesOrderDate": "2026-11-02",
            "SalesOrderLines": [{"ProductId": prods[0]["Id"], "Quantity": 2},
                                {"ProductCode": prods[1]["Code"], "Quantity": 1, "ProductUnitPrice": 100.0}]}
    r = sb.http.post(f"{sb.url}/v2/SalesOrders/Complete", headers=h, json=body)
    assert r.status_code == 201, r.text
    order = r.json()
    assert check(spec, dto("SalesOrderCompleteDto"), order) == []
    net = round(2 * prods[0]["UnitPrice"] + 100.0, 2)
    assert order["CustomerId"] == cust["Id"] and order["NetAmount"] == net
    assert order["TotalAmount"] == pytest.approx(net * 1.25, abs=0.02) and order["LineCount"] == 2
    lines = sb.get(f"SalesOrders/{order['Id']}/Lines", headers=h).json()
    assert [x["ProductId"] for x in lines] == [prods[0]["Id"], prods[1]["Id"]]
    assert all(x["VatRate"] == 0.25 for x in lines)
    unknown = sb.http.post(f"{sb.url}/v2/SalesOrders/Complete", headers=h, json={"CustomerId": 1})
    assert unknown.status_code == 404 and problem(unknown, "Customer with id = 1")
    bad_line = sb.http.post(f"{sb.url}/v2/SalesOrders/Complete", headers=h, json={
        "CustomerId": cust["Id"], "SalesOrderLines": [{"ProductCode": prods[0]["Code"], "ProductUnitPrice": -1}]})
    assert bad_line.status_code == 400 and problem(bad_line, "SalesOrderLines[0].ProductUnitPrice")
    assert sb.get("SalesOrders/00000000-0000-4000-8000-000000000000/Lines", headers=h).status_code == 404


# -- rate limit and faults ----------------------------------------------------------------------
def test_rate_limit_10_per_second(sb: Sandbox) -> None:
    h = sb.headers()
    sb.control("PUT", "faults", {"rate_limit_enabled": True, "rate_limit_speed": 1.0})
    statuses = [sb.get("Products", params={"PageSize": 1}, headers=h) for _ in range(14)]
    limited = [r for r in statuses if r.status_code == 429]
    assert len([r for r in statuses if r.status_code == 200]) == 10 and limited
    assert 0 < float(limited[0].headers["Retry-After"]) <= 1.0
    assert limited[0].json()["statusCode"] == 429
    # with time running 20x faster the window is 50 ms
    sb.control("PUT", "faults", {"rate_limit_enabled": True, "rate_limit_speed": 20.0})
    time.sleep(0.06)
    assert sb.get("Products", params={"PageSize": 1}, headers=h).status_code == 200


def test_faults_answer_in_the_api_shape(sb: Sandbox) -> None:
    h = sb.headers()
    sb.control("PUT", "faults", {"error_rate": 1.0, "error_statuses": [503], "rate_limit_enabled": False})
    r = sb.get("Customers", headers=h)
    assert r.status_code == 503 and r.json()["status"] == 503
    sb.control("PUT", "faults", {"storm_429": 2, "storm_retry_after": 0.5, "rate_limit_enabled": False})
    assert [sb.get("Customers", headers=h).status_code for _ in range(3)] == [429, 429, 200]
    assert sb.stats()["statuses"]["429"] == 2
