"""Confirmed PowerOffice GO sales orders are locked: "Confirmed - the order is confirmed. Used to
confirm and lock the order from edit. Can be unlocked by changing state to draft again" (OrderStatus,
PowerOffice's v2 schema). The sandbox refuses an edit of one; the sync treats a locked order as one-way
(out of PowerOffice), says so in the mapped asset and never attempts (or retries) the write."""

from __future__ import annotations

import json

from talk_assets.sync.assets import mapped_key
from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets.sync.merge import table
from talk_assets_tests.conftest import Worlds
from talk_assets_tests.reliability.support import Harness

from .conftest import Sandbox

PATCH = {"Content-Type": "application/json-patch+json"}
ORDER = VIEWS_BY_KEY["poweroffice.salesorders"]


def _patch(sb: Sandbox, h: dict[str, str], oid: str, ops: list[dict]) -> object:
    return sb.http.patch(f"{sb.url}/v2/SalesOrders/{oid}", headers={**h, **PATCH}, data=json.dumps(ops))


def test_sandbox_refuses_an_edit_of_a_confirmed_order_until_it_is_draft_again(sb: Sandbox) -> None:
    h = sb.headers()
    order = next(o for o in sb.get("SalesOrders", headers=h).json() if o["SalesOrderStatus"] == "Draft")
    oid = order["Id"]
    confirm = _patch(sb, h, oid, [{"op": "replace", "path": "/SalesOrderStatus", "value": "Confirmed"}])
    assert confirm.status_code == 200 and confirm.json()["SalesOrderStatus"] == "Confirmed"
    edit = _patch(sb, h, oid, [{"op": "replace", "path": "/PurchaseOrderReference", "value": "PO-LOCKED"}])
    assert edit.status_code == 400, edit.text
    body = edit.json()
    assert set(body) <= {"type", "title", "status", "detail", "instance"} and "Confirmed" in body["detail"]
    # an edit that also unlocks is still an edit of a locked order
    both = _patch(sb, h, oid, [{"op": "replace", "path": "/SalesOrderStatus", "value": "Draft"},
                               {"op": "replace", "path": "/PurchaseOrderReference", "value": "PO-LOCKED"}])
    assert both.status_code == 400
    assert sb.get(f"SalesOrders/{oid}", headers=h).json()["PurchaseOrderReference"] == order["PurchaseOrderReference"]
    unlock = _patch(sb, h, oid, [{"op": "replace", "path": "/SalesOrderStatus", "value": "Draft"}])
    assert unlock.status_code == 200 and unlock.json()["SalesOrderStatus"] == "Draft"
    again = _patch(sb, h, oid, [{"op": "replace", "path": "/PurchaseOrderReference", "value": "PO-OPEN"}])
    assert again.status_code == 200 and again.json()["PurchaseOrderReference"] == "PO-OPEN"


def test_a_locked_order_flows_one_way_and_is_never_written(rel: Harness, worlds: Worlds) -> None:
    worlds.converge(rel)  # synced until quiet (a copy of that world once built)
    oid, shop_id = rel.sql(
        "SELECT p.record_id, s.record_id FROM links p JOIN links s ON s.gid = p.gid AND s.view = 'shopify.order' "
        "WHERE p.view = 'poweroffice.salesorders' ORDER BY p.record_id LIMIT 1")[0]
    po = rel.client("poweroffice")
    po.update_record("salesorders", oid, {"SalesOrderStatus": "Confirmed"})
    # an edit made in Shopify after the confirmation would, on a draft order, reach PowerOffice
    rel.client("shopify").update_record("order", shop_id, {"po_number": "Låst 🔒 ordre"})
    for _ in range(3):
        rel.reset_stats()
        rel.cycle()
        assert not [k for k in rel.stats()["poweroffice"]["requests"] if k.startswith("PATCH")]
    assert po.get_record("salesorders", oid)["PurchaseOrderReference"] != "Låst 🔒 ordre"
    assert not rel.sql("SELECT * FROM dead_letters WHERE view = ? AND resolved_at IS NULL", [ORDER.vkey])
    gid = rel.gid_of(ORDER, oid)
    action, changed = rel.sql(f"SELECT action, changed_fields FROM {table('mapped', ORDER.vkey)} WHERE gid = ?", [gid])[0]
    assert action == "locked" and changed == ["PurchaseOrderReference"]
    event = rel.instance.get_latest_materialization_event(mapped_key(ORDER))
    meta = event.asset_materialization.metadata
    assert meta["locked"].value == 1 and "Confirmed" in meta["locked_reason"].value
    # unlocked again (Draft), the edit goes through
    po.update_record("salesorders", oid, {"SalesOrderStatus": "Draft"})
    rel.cycle()
    rel.cycle()
    assert po.get_record("salesorders", oid)["PurchaseOrderReference"] == "Låst 🔒 ordre"
