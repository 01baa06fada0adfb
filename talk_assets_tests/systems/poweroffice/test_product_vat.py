"""A PowerOffice GO product's VAT rate (issue 12): ProductDto names none; a product's sales are posted to
its standard sales account (its own, else its product group's), and the account's VAT code has the rate
(GeneralLedgerAccounts, VatCodes: `openapi-vat.yaml`, PowerOffice's v2 Swagger). The sandbox serves that
chain as the schema says, and the client adds the rate to each product it reads."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from talk_assets.systems import poweroffice
from talk_assets.systems.poweroffice.client import VAT_RATE_FIELD, Client

from .conftest import Sandbox
from .test_sandbox import check, dto, problem

VAT_SPEC = Path(poweroffice.__file__).with_name("openapi-vat.yaml")
SPEC = Path(poweroffice.__file__).with_name("openapi.yaml")
PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture(scope="module")
def specs() -> tuple[dict[str, Any], dict[str, Any]]:
    return yaml.safe_load(SPEC.read_text()), yaml.safe_load(VAT_SPEC.read_text())


def _account(sb: Sandbox, rate: float) -> dict[str, Any]:
    """A sales account whose VAT code has `rate`, found through the API as a user would."""
    codes = {c["Id"]: c for c in sb.get("VatCodes").json()}
    return next(a for a in sb.get("GeneralLedgerAccounts", params={"accountNos": "3000-3999"}).json()
                if codes[a["VatCodeId"]]["Rate"] == rate)


def test_the_vat_chain_is_served_as_powerOffices_schema_says(sb: Sandbox, specs: Any) -> None:
    main, vat = specs
    codes = sb.get("VatCodes").json()
    accounts = sb.get("GeneralLedgerAccounts").json()
    groups = sb.get("ProductGroups").json()
    assert check(vat, {"type": "array", "items": dto("VatCodeDto")}, codes) == []
    assert check(vat, {"type": "array", "items": dto("GeneralLedgerAccountDto")}, accounts) == []
    assert check(vat, {"type": "array", "items": dto("ProductGroupDto")}, groups) == []
    assert check(vat, dto("GeneralLedgerAccountDto"), sb.get(f"GeneralLedgerAccounts/{accounts[0]['Id']}").json()) == []
    assert check(vat, dto("ProductGroupDto"), sb.get(f"ProductGroups/{groups[0]['Id']}").json()) == []
    assert check(main, {"type": "array", "items": dto("ProductDto")}, sb.get("Products").json()) == []
    # the standard SAF-T output codes with their rates, each sales account locked to one of them
    assert {c["Code"]: c["Rate"] for c in codes}.items() >= {"3": 0.25, "31": 0.15, "33": 0.12, "5": 0.0}.items()
    by_id = {c["Id"]: c for c in codes}
    assert all(by_id[a["VatCodeId"]]["Code"] == a["VatCode"] for a in accounts)
    # the documented filters: account number ranges
    assert [a["AccountNo"] for a in sb.get("GeneralLedgerAccounts", params={"accountNos": "3000, 3100-"}).json()] == [
        3000, 3100, 3200]
    assert sb.get("GeneralLedgerAccounts/1").status_code == 404
    assert sb.get("GeneralLedgerAccounts", params={"agricultureDepartments": "farming"}).status_code == 204
    assert [g["Code"] for g in sb.get("ProductGroups", params={"codes": "MAT", "type": "product"}).json()] == ["MAT"]
    assert sb.get("ProductGroups", params={"names": "Næringsmidler"}).json()[0]["Code"] == "MAT"


def test_a_products_sales_account_decides_its_order_lines_vat(sb: Sandbox) -> None:
    """SalesOrderLineDto.VatCode: "inherited from the sales account used for the product set on the line"."""
    h = sb.headers()
    food = _account(sb, 0.15)
    prod = sb.http.post(f"{sb.url}/v2/Products", headers=h, json={
        "Code": "MAT-1", "Name": "Brunost", "UnitPrice": 100.0, "StandardSalesAccountId": food["Id"]}).json()
    assert (prod["StandardSalesAccountId"], prod["StandardSalesAccount"]) == (food["Id"], food["AccountNo"])
    customer = sb.get("Customers", headers=h).json()[0]
    order = sb.http.post(f"{sb.url}/v2/SalesOrders/Complete", headers=h, json={
        "CustomerId": customer["Id"], "SalesOrderLines": [{"ProductId": prod["Id"], "Quantity": 2}]}).json()
    line = order["SalesOrderLines"][0]
    assert (line["VatCode"], line["VatRate"], line["NetAmount"], line["VatAmount"], line["TotalAmount"]) == (
        "31", 0.15, 200.0, 30.0, 230.0)
    assert order["TotalAmount"] == 230.0


def test_the_sandbox_refuses_an_unknown_account_and_a_patch_of_the_read_only_account_number(sb: Sandbox) -> None:
    h = sb.headers()
    r = sb.http.post(f"{sb.url}/v2/Products", headers=h, json={"Code": "X-1", "Name": "X", "StandardSalesAccountId": 1})
    assert r.status_code == 400 and problem(r, "StandardSalesAccountId")
    r = sb.http.post(f"{sb.url}/v2/Products", headers=h, json={"Code": "X-1", "Name": "X", "StandardSalesAccount": 3100})
    assert r.status_code == 200 and r.json()["StandardSalesAccount"] == 3100, r.text  # create-only, by number
    pid = r.json()["Id"]
    r = sb.http.patch(f"{sb.url}/v2/Products/{pid}", headers={**h, **PATCH},
                      data=json.dumps([{"op": "replace", "path": "/StandardSalesAccount", "value": 3000}]))
    assert r.status_code == 400 and problem(r, "StandardSalesAccount")
    r = sb.http.patch(f"{sb.url}/v2/Products/{pid}", headers={**h, **PATCH},
                      data=json.dumps([{"op": "replace", "path": "/StandardSalesAccountId", "value": _account(sb, 0.25)["Id"]}]))
    assert r.status_code == 200 and r.json()["StandardSalesAccount"] == 3000, r.text


def test_the_client_reads_each_products_rate_from_its_own_or_its_groups_sales_account(sb: Sandbox, client: Client) -> None:
    h = sb.headers()
    groups = {g["Code"]: g for g in sb.get("ProductGroups").json()}
    food, free, standard = _account(sb, 0.15), _account(sb, 0.0), _account(sb, 0.25)
    made = {}
    for code, body in {
        "OWN-15": {"StandardSalesAccountId": food["Id"]},  # its own account
        "OWN-0": {"StandardSalesAccountId": free["Id"], "ProductGroupId": groups["MAT"]["Id"]},  # own beats group
        "GRP-15": {"ProductGroupId": groups["MAT"]["Id"]},  # its group's account
        "GRP-NONE": {"ProductGroupId": groups["UTEN"]["Id"]},  # neither: the client's general settings
        "DEFAULT": {},  # the default group
    }.items():
        r = sb.http.post(f"{sb.url}/v2/Products", headers=h, json={"Code": code, "Name": f"Vare {code} 🧀", **body})
        assert r.status_code == 200, r.text
        made[code] = r.json()["Id"]
    rates = {r["Code"]: r[VAT_RATE_FIELD] for r in client.iter_records("products") if r["Code"] in made}
    assert rates == {"OWN-15": 0.15, "OWN-0": 0.0, "GRP-15": 0.15, "GRP-NONE": None,
                     "DEFAULT": next(c["Rate"] for c in sb.get("VatCodes").json()
                                     if c["Id"] == next(a for a in sb.get("GeneralLedgerAccounts").json()
                                                        if a["Id"] == groups["STD"]["StandardSalesAccountId"])["VatCodeId"])}
    assert rates["DEFAULT"] == 0.25 and standard["AccountNo"] == 3000
    assert client.get_record("products", str(made["OWN-15"]))[VAT_RATE_FIELD] == 0.15
    # every seeded product has a rate (its own account or its group's), and a read of no changes reads no accounts
    assert all(r[VAT_RATE_FIELD] == 0.25 for r in client.iter_records("products") if r["Code"] not in made)
    sb.control("POST", "stats/reset")
    assert list(client.iter_records("products", since=sb.app.now())) == []
    assert set(sb.stats()["requests"]) <= {"GET Products", "POST OAuth/Token"}, sb.stats()
    assert list(client.iter_records("products", since=sb.app.now() - timedelta(hours=1)))  # the ones made above
    assert {"GET GeneralLedgerAccounts", "GET VatCodes", "GET ProductGroups"} <= set(sb.stats()["requests"])
