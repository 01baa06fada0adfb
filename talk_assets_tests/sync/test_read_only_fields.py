"""The generic read-only mechanism: a system declares the fields its API does not take (from its own
schema), the declaration never writes them, and the custom APIs' views follow their OpenAPI documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from talk_assets.sync.conversions import DEC
from talk_assets.sync.declaration import VIEWS
from talk_assets.sync.mapping import payload_fields, update_fields
from talk_assets.sync.model import Prop, View, writability
from talk_assets.systems import customcrm, customwebshop

SCHEMAS = {
    "Thing": {"type": "object", "properties": {
        "id": {"type": "integer", "readOnly": True}, "name": {"type": "string"},
        "total": {"type": "number", "readOnly": True}, "code": {"type": "string", "readOnly": True},
        "address": {"$ref": "#/components/schemas/Addr"}}},
    "ThingPost": {"type": "object", "properties": {"name": {"type": "string"}, "code": {"type": "string"},
                                                   "address": {"$ref": "#/components/schemas/Addr"}}},
    "Addr": {"type": "object", "properties": {"city": {"type": "string"}, "id": {"type": "integer", "readOnly": True}}},
}


def test_writability_reads_read_only_and_create_only_from_the_schema() -> None:
    ro, co = writability(SCHEMAS, ["name", "total", "code", "address.city", "address.id"], "Thing", "ThingPost",
                         source="test")
    assert [f for f, _ in ro] == ["total", "address.id"] and [f for f, _ in co] == ["code"]
    assert all("readOnly in Thing (test)" in why for _, why in ro + co)
    with pytest.raises(ValueError, match="not a property of Thing"):
        writability(SCHEMAS, ["nmae"], "Thing", source="test")


def test_a_view_never_writes_its_read_only_fields_and_writes_create_only_ones_once() -> None:
    props = (Prop("sku", "sku", "string"), Prop("total", "price_ex_vat", "decimal", DEC),
             Prop("code", "gtin", "string"))
    view = View("x", "things", "Thing", "product", props, read_only=(("total", "computed"),),
                create_only=(("code", "set once"),))
    total = next(p for p in view.props if p.field == "total")
    assert total.write is None and total.not_written == "computed"
    assert next(p for p in view.props if p.field == "code").on_update is False
    assert next(p for p in view.props if p.field == "sku").write is not None


@pytest.mark.parametrize("system", [customcrm, customwebshop], ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_no_field_written_to_a_custom_api_is_read_only_in_its_openapi(system: object) -> None:
    key = system.__name__.rsplit(".", 1)[1]
    doc = json.loads((Path(system.__file__).parent / "openapi.json").read_text())
    schemas = doc["components"]["schemas"]
    models = {"customers": "Customer", "products": "Product", "orders": "Order", "users": "User"}
    views = [v for v in VIEWS if v.system == key]
    assert views
    for v in views:
        props = schemas[models[v.entity]]["properties"]
        for p in v.props:
            top = p.field.split(".")[0]
            assert top in props, f"{v.vkey}.{p.field}"
            if props[top].get("readOnly"):
                assert p.write is None and p.not_written, f"{v.vkey}.{p.field} is readOnly but written"
        written = {f for f, _, _ in payload_fields(v)} | update_fields(v)
        assert not {f for f in written if props[f.split(".")[0]].get("readOnly")}
