"""What the sync writes to PowerOffice GO is what PowerOffice's own schema lets an integration write:
no field marked `readOnly` is ever written (NetAmount, TotalAmount), a field only the create DTO has
is written on create only, and the sandbox refuses what the schema marks read-only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from talk_assets.sync.declaration import DATAFLOWS, VIEWS
from talk_assets.sync.docs import render_flow
from talk_assets.systems import poweroffice
from talk_assets.systems.poweroffice import sandbox as po_sandbox
from talk_assets.systems.poweroffice.schema import CLIENT_FIELDS

from .conftest import Sandbox

SCHEMAS: dict[str, Any] = yaml.safe_load(
    Path(poweroffice.__file__).with_name("openapi.yaml").read_text())["components"]["schemas"]
# the DTO each entity is read as (and patched through) and the DTO it is created with
DTOS = {"customers": ("CustomerDto", "CustomerPostDto"), "products": ("ProductDto", "ProductPostDto"),
        "salesorders": ("SalesOrderCompleteDto", "SalesOrderCompletePostDto")}
PATCH = {"Content-Type": "application/json-patch+json"}


def prop(dto: str, path: list[str]) -> dict[str, Any] | None:
    """The property schema at `path` in `dto` (following $ref), readOnly if any step is; None if absent."""
    schema, ro = SCHEMAS[dto], False
    for part in path:
        p = (schema.get("properties") or {}).get(part)
        if p is None:
            return None
        ro = ro or bool(p.get("readOnly"))
        while "$ref" in p or len(p.get("allOf") or ()) == 1:
            p = SCHEMAS[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p["allOf"][0]
        schema = p
    return {**schema, "readOnly": ro}


def po_views() -> list:
    views = [v for v in VIEWS if v.system == "poweroffice"]
    assert len(views) == 4
    return views


@pytest.mark.parametrize("view", po_views(), ids=lambda v: v.vkey)
def test_no_field_written_to_poweroffice_is_read_only_in_its_schema(view: Any) -> None:
    dto, post = DTOS[view.entity]
    for p in view.props:
        if p.field in CLIENT_FIELDS:  # added by the client (not PowerOffice's), never written
            assert p.field not in SCHEMAS[dto]["properties"] and p.write is None and p.not_written, p.field
            continue
        path = ["SalesOrderLines" if p.field == "Lines" else p.field.split(".")[0], *p.field.split(".")[1:]]
        held = prop(dto, path)
        assert held is not None, f"{view.vkey}.{p.field} is not in {dto}"
        if p.write is None:
            continue
        created = prop(post, path)
        if held["readOnly"]:  # only what the create DTO has may be sent, and only on create
            assert created is not None and not created["readOnly"] and not p.on_update, (
                f"{view.vkey}.{p.field} is readOnly in {dto} but written on update")
        assert created is not None or p.on_update, f"{view.vkey}.{p.field} cannot be created"
    if view.entity == "salesorders":
        written = {p.field for p in view.props if p.write is not None}
        assert "TotalAmount" not in written and "NetAmount" not in written
        lines = next(p for p in view.props if p.field == "Lines")
        # the line fields the lines' write sends are in the line create DTO and not read-only there
        for f in ("ProductCode", "Quantity", "ProductUnitPrice"):
            assert f in lines.write or f in json.dumps(lines.conversion.sql())
            line = prop("SalesOrderLinePostDto", [f])
            assert line is not None and not line["readOnly"], f


def test_read_only_fields_say_why_and_the_documents_do_not_call_them_synchronized() -> None:
    order = next(v for v in po_views() if v.entity == "salesorders")
    why = dict(order.read_only)
    assert set(why) == {"NetAmount", "TotalAmount"} and all("readOnly" in w for w in why.values())
    assert next(p for p in order.props if p.field == "TotalAmount").not_written == why["TotalAmount"]
    flow = next(f for f in DATAFLOWS if f.source.vkey == "poweroffice.salesorders")
    text = "\n".join(render_flow(flow))
    assert "TotalAmount" in text.split("not synchronized")[1] and why["TotalAmount"] in text


def test_the_sandboxes_writable_properties_are_the_schemas() -> None:
    """The sandbox takes on create only what the Post DTO has, and patches only what the DTO does not
    mark readOnly."""
    for writable, dto, post in ((po_sandbox.CUSTOMER_WRITABLE, "CustomerDto", "CustomerPostDto"),
                                (po_sandbox.PRODUCT_WRITABLE, "ProductDto", "ProductPostDto"),
                                (po_sandbox.ORDER_WRITABLE, "SalesOrderDto", "SalesOrderCompletePostDto"),
                                (po_sandbox.LINE_WRITABLE, "SalesOrderLineDto", "SalesOrderLinePostDto")):
        for f in writable:
            assert f in SCHEMAS[post]["properties"], (post, f)
            if dto != "SalesOrderLineDto":  # lines are created with the order, never patched here
                assert not SCHEMAS[dto]["properties"][f].get("readOnly"), (dto, f)
    for f in po_sandbox.PRODUCT_CREATE_ONLY:  # taken on create only: in the Post DTO, readOnly in the Dto
        assert f in SCHEMAS["ProductPostDto"]["properties"] and SCHEMAS["ProductDto"]["properties"][f].get("readOnly"), f


def test_sandbox_refuses_a_patch_of_a_read_only_order_total(sb: Sandbox) -> None:
    """The documentation does not say whether Go ignores or refuses a readOnly property in a patch; the
    sandbox refuses it (400 ProblemDetails), so a write the real API would drop is never thought done."""
    h = sb.headers()
    order = next(o for o in sb.get("SalesOrders", headers=h).json() if o["SalesOrderStatus"] == "Draft")
    for field in ("TotalAmount", "NetAmount"):
        r = sb.http.patch(f"{sb.url}/v2/SalesOrders/{order['Id']}", headers={**h, **PATCH},
                          data=json.dumps([{"op": "replace", "path": f"/{field}", "value": 1.0}]))
        assert r.status_code == 400 and field in r.json()["detail"], r.text
        assert set(r.json()) <= {"type", "title", "status", "detail", "instance"}
    assert sb.get(f"SalesOrders/{order['Id']}", headers=h).json()["TotalAmount"] == order["TotalAmount"]
