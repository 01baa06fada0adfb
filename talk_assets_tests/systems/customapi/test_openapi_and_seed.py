"""The OpenAPI documents (served = generated = committed) and the seed data's shape and overlap."""

from __future__ import annotations

import json

import requests

from talk_assets.sandbox.world import build_world, hash_int
from talk_assets.systems.customapi.openapi import build_openapi, spec_path
from talk_assets.systems.customcrm.sandbox import App as CrmApp
from talk_assets.systems.customwebshop.sandbox import App as ShopApp
from talk_assets_tests.systems.customapi.conftest import System


def test_openapi_is_served_without_auth_and_matches_the_committed_file(system: System) -> None:
    r = requests.get(f"{system.url}/openapi.json", timeout=10)
    assert r.status_code == 200
    doc = r.json()
    generated = build_openapi(system.spec)
    committed = json.loads(spec_path(system.spec).read_text(encoding="utf-8"))
    assert doc == generated == committed, "run: python -m talk_assets.systems.customapi.openapi"
    assert doc["openapi"] == "3.1.0"


def test_openapi_describes_every_entity_and_endpoint(system: System) -> None:
    doc = build_openapi(system.spec)
    root = system.spec.root
    for e in system.spec.entities:
        assert set(doc["paths"][f"{root}/{e.name}"]) == {"get", "post"}
        assert set(doc["paths"][f"{root}/{e.name}/{{id}}"]) == {"parameters", "get", "put", "patch", "delete"}
        assert "200" in doc["paths"][f"{root}/{e.name}/_summary"]["get"]["responses"]
        schema = doc["components"]["schemas"][e.model.__name__]
        assert set(e.model.model_fields) <= set(schema["properties"])
        assert schema["properties"]["version"]["readOnly"] is True
    schemas = doc["components"]["schemas"]
    assert {"ErrorBody", "ErrorDetail", "Summary"} <= set(schemas)
    if system.key == "customcrm":
        assert doc["components"]["securitySchemes"]["apiKey"] == {
            "type": "http", "scheme": "bearer", "description": "The API key as a bearer token."}
        assert schemas["Customer"]["required"] == ["name"]
        assert schemas["Customer"]["properties"]["email"]["anyOf"][0]["format"] == "email"
    else:
        assert doc["components"]["securitySchemes"]["apiKey"]["name"] == "X-Api-Key"
        assert schemas["Product"]["properties"]["price"]["minimum"] == 0


def test_seed_is_deterministic_and_every_record_matches_its_model() -> None:
    for app_cls in (CrmApp, ShopApp):
        a, b = app_cls(seed=3, size=400), app_cls(seed=3, size=400)
        for e in a.spec.entities:
            rows = [a.tables[e.name].rows[i] for i in a.tables[e.name].ids]
            assert rows, f"{a.spec.key} {e.name} is empty"
            assert rows == [b.tables[e.name].rows[i] for i in b.tables[e.name].ids]
            for rec in rows:
                # the stored dict is exactly what the model dumps: no missing or extra keys
                assert e.model.model_validate(rec).model_dump(mode="json") == rec
            assert any(v is None for rec in rows for k, v in rec.items() if k not in e.server_fields) or \
                e.name in ("users", "quotes"), f"{e.name}: no incomplete record"


def test_seed_overlaps_the_world_and_the_other_system() -> None:
    crm, shop = CrmApp(seed=3, size=300), ShopApp(seed=3, size=300)
    world = build_world(3, 300)

    def values(app, entity: str, field: str) -> set[str]:
        return {str(r[field]).lower() for r in app.tables[entity].rows.values() if r.get(field)}

    shared_emails = values(crm, "customers", "email") & values(shop, "customers", "email")
    assert len(shared_emails) >= 20
    assert len(values(crm, "products", "sku") & values(shop, "products", "sku")) >= 50
    crm_customers = crm.tables["customers"].rows
    assert {r["customer_type"] for r in crm_customers.values()} == {"company", "person"}
    for order in crm.tables["orders"].rows.values():
        assert order["customer_id"] in crm_customers and crm.tables["users"].get(order["user_id"])
        for line in order["lines"]:
            assert line["product_id"] is None or crm.tables["products"].get(line["product_id"])["sku"] == line["sku"]
    assert len(crm.tables["users"]) == len(world.staff)
    assert len(crm.tables["contacts"]) == sum(1 for r in crm_customers.values() if r["customer_type"] == "company")
    for order in shop.tables["orders"].rows.values():
        customer = shop.tables["customers"].get(order["customer_id"])
        assert customer is not None and customer["email"] == order["email"] and customer["company"] is None
    assert any(r["company"] for r in shop.tables["customers"].rows.values())
    worlds_skus = set(world.variant_by_sku())
    assert values(shop, "products", "sku") <= {s.lower() for s in worlds_skus}


def test_fast_membership_equals_the_stable_hash_definition() -> None:
    world = build_world(3, 300)
    for kind, share in (("person", 0.3), ("order", 0.4), ("family", 0.95)):
        fast = world.membership("customcrm", kind, share)
        slow = [hash_int(f"3:customcrm:{kind}:{k}") % 10_000 < share * 10_000 for k in range(1, 2000)]
        assert [fast(k) for k in range(1, 2000)] == slow
        assert 0.8 * share < sum(slow) / len(slow) < 1.2 * share
