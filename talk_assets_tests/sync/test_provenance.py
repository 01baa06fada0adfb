"""Provenance against the five sandboxes over HTTP (issue 14): a value the sync wrote is credited to the
edit it carries (system, record, time), never to the write; and latest-wins compares edits, so an edit
made in a third system while the sync is writing an older value elsewhere wins everywhere."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets_tests.reliability.support import Harness

V = VIEWS_BY_KEY
WS, CRM, PO, SHOP = V["customwebshop.customer"], V["customcrm.customer"], V["poweroffice.customers_person"], \
    V["shopify.customer"]


@pytest.fixture(scope="module")
def h(rel: Harness) -> Harness:
    rel.until_quiet()
    return rel


def uid() -> str:
    return uuid.uuid4().hex[:8]


def member(h: Harness, view_from: Any, rid: Any, view_to: Any) -> str | None:
    rows = h.sql("SELECT t.record_id FROM links s JOIN links t ON t.gid = s.gid AND t.view = ? "
                 "WHERE s.view = ? AND s.record_id = ?", [view_to.vkey, view_from.vkey, str(rid)])
    return rows[0][0] if rows else None


def person_in_four_systems(h: Harness) -> dict[str, str]:
    """A PowerOffice person and a webshop customer sharing an e-mail: the sync creates it in Shopify (from
    PowerOffice) and in the CRM (from the webshop). Returns each system's record id."""
    email = f"prov.{uid()}@example.no"
    po = h.client("poweroffice").create_record("customers", {
        "IsPerson": True, "FirstName": "Prov", "LastName": "Enance", "Name": "Prov Enance", "EmailAddress": email})
    ws = h.client("customwebshop").create_record("customers", {"email": email, "first_name": "Prov",
                                                               "last_name": "Enance"})
    h.until_quiet()
    ids = {"po": str(po["Id"]), "ws": str(ws["id"]), "crm": member(h, WS, ws["id"], CRM),
           "shop": member(h, PO, po["Id"], SHOP)}
    assert all(ids.values()), ids
    return ids


def provenance(h: Harness, gid: str, prop: str) -> tuple[str, str, datetime]:
    value, nsid, at = h.sql(f'SELECT "{prop}", "{prop}__from".nsid, "{prop}__from".at FROM merged_customer '
                            "WHERE gid = ?", [gid])[0]
    return value, nsid, at


def own_time(h: Harness, nsid: str, prop: str) -> datetime:
    """When the record's current value of `prop` appeared by its own clock (its own edit, not an echo)."""
    rows = h.sql(f'SELECT "{prop}__ts" FROM nodes_customer WHERE nsid = ? AND "{prop}__origin" IS NULL', [nsid])
    assert rows, f"{nsid}'s {prop} is an echo"
    return rows[0][0]


def when(record: dict[str, Any], field: str) -> datetime:
    return datetime.fromisoformat(str(record[field]).replace("Z", "+00:00"))


def phones(h: Harness, ids: dict[str, str]) -> dict[str, Any]:
    return {
        "ws": h.client("customwebshop").get_record("customers", ids["ws"])["phone"],
        "crm": h.client("customcrm").get_record("customers", ids["crm"])["phone"],
        "po": h.client("poweroffice").get_record("customers", ids["po"])["PhoneNumber"],
        "shop": (h.client("shopify").get_record("customer", ids["shop"]).get("default_address") or {}).get("phone"),
    }


def test_a_value_the_sync_wrote_is_credited_to_the_edit_it_carries(h: Harness) -> None:
    ids = person_in_four_systems(h)
    gid = h.gid_of(WS, ids["ws"])
    assert gid
    # the Shopify record is the sync's own creation: its e-mail came from PowerOffice or the webshop
    _, email_from, _ = provenance(h, gid, "email")
    assert email_from.split(":")[0] in ("poweroffice-customers", "customwebshop-customers"), email_from
    h.client("customwebshop").update_record("customers", ids["ws"], {"phone": "+4791112233"})
    h.until_quiet()  # the first cycle writes it to three systems, the next collects their echoes
    assert phones(h, ids) == dict.fromkeys(("ws", "crm", "po", "shop"), "+4791112233")
    value, nsid, at = provenance(h, gid, "phone")
    assert value == "+4791112233"
    ws_nsid = f"customwebshop-customers:{ids['ws']}"
    assert nsid == ws_nsid, f"credited to {nsid}, an echo of the webshop's edit"
    assert at == own_time(h, ws_nsid, "phone")
    # every echo carries the origin and its time, not its own write time
    echoes = h.sql("SELECT nsid, phone__origin, phone__ts FROM nodes_customer WHERE nsid IN (?, ?, ?)",
                   [f"customcrm-customers:{ids['crm']}", f"poweroffice-customers:{ids['po']}",
                    f"shopify-customer:{ids['shop']}"])
    assert len(echoes) == 3
    assert {(o, t) for _n, o, t in echoes} == {(ws_nsid, at)}, echoes


def test_an_edit_in_a_third_system_during_a_push_beats_the_echo_of_the_older_value(h: Harness) -> None:
    """Edit in A (webshop) at t1; the sync pushes it to B (CRM), whose clock runs an hour ahead, so B's
    updated_at is t3; meanwhile C (PowerOffice) is edited at t2, t1 < t2 < t3. C's value wins everywhere."""
    ids = person_in_four_systems(h)
    gid = h.gid_of(WS, ids["ws"])
    try:
        h.box.control("customcrm", "POST", "clock", json={"advance_s": 3600})
        t1 = when(h.client("customwebshop").update_record("customers", ids["ws"], {"phone": "+4792223344"}),
                  "updated_at")
        h.cycle(allow_errors=False)  # collects A's edit and writes it to B (t3 = now + 1 h), C and Shopify
        crm = h.client("customcrm").get_record("customers", ids["crm"])
        assert crm is not None and crm["phone"] == "+4792223344"
        t3 = when(crm, "updated_at")
        po = h.client("poweroffice").update_record("customers", ids["po"], {"PhoneNumber": "+4793334455"})
        t2 = when(po, "LastChangedDateTimeOffset")
        assert t1 < t2 < t3
        h.until_quiet()
        assert phones(h, ids) == dict.fromkeys(("ws", "crm", "po", "shop"), "+4793334455")
        value, nsid, at = provenance(h, gid, "phone")
        assert (value, nsid) == ("+4793334455", f"poweroffice-customers:{ids['po']}")
        assert abs((at - t2).total_seconds()) < 1, (at, t2)
    finally:
        h.box.zero_clocks("customcrm")
