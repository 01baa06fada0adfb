"""Provenance against the five sandboxes over HTTP (issue 14): a value the sync wrote is credited to the
edit it carries (system, record, time), never to the write; and latest-wins compares edits, so an edit
made in a third system while the sync is writing an older value elsewhere wins everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets_tests.conftest import Worlds
from talk_assets_tests.reliability.support import REPO, Harness

# the module's world is synced in the first test's time; on a shared machine that alone can take minutes
pytestmark = pytest.mark.timeout(900)

V = VIEWS_BY_KEY
WS, CRM, PO, SHOP = V["customwebshop.customer"], V["customcrm.customer"], V["poweroffice.customers_person"], \
    V["shopify.customer"]


@pytest.fixture(scope="module")
def h(rel: Harness, worlds: Worlds) -> Harness:
    worlds.converge(rel)  # synced until quiet (once per test process; a copy of it here after)
    return rel


def uid() -> str:
    return uuid.uuid4().hex[:8]


def person_in_four_systems(h: Harness) -> dict[str, str]:
    """A PowerOffice person and a webshop customer sharing an e-mail: the sync creates it in Shopify (from
    PowerOffice) and in the CRM (from the webshop). Returns each system's record id."""
    email = f"prov.{uid()}@example.no"
    po = h.client("poweroffice").create_record("customers", {
        "IsPerson": True, "FirstName": "Prov", "LastName": "Enance", "Name": "Prov Enance", "EmailAddress": email})
    ws = h.client("customwebshop").create_record("customers", {"email": email, "first_name": "Prov",
                                                               "last_name": "Enance"})
    h.until_quiet()
    ids = {"po": str(po["Id"]), "ws": str(ws["id"]), "crm": h.counterpart(WS, ws["id"], CRM),
           "shop": h.counterpart(PO, po["Id"], SHOP)}
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


# -- `talk-assets explain` and `dlq list`, as a user runs them ---------------------------------------------
def cli(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "talk_assets.cli", *args], env=h.env(), cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def explain_json(h: Harness, key: str) -> list[dict[str, Any]]:
    out = cli(h, "explain", key, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_explain_a_customer_by_email_names_the_winner_the_edit_and_what_it_beat(h: Harness) -> None:
    ids = person_in_four_systems(h)
    email = h.client("customwebshop").get_record("customers", ids["ws"])["email"]
    h.client("poweroffice").update_record("customers", ids["po"], {"PhoneNumber": "+4794445566"})
    time.sleep(1.1)  # the webshop's edit is the later one by a clear margin
    h.client("customwebshop").update_record("customers", ids["ws"], {"phone": "+4795556677"})
    h.cycle(allow_errors=False)  # merged (PowerOffice's value beaten), then written everywhere
    [doc] = explain_json(h, email.upper())  # an e-mail is found in any case
    assert doc["global_type"] == "customer"
    assert {(lk["system"], lk["record_id"]) for lk in doc["links"]} >= {
        ("customwebshop", ids["ws"]), ("customcrm", ids["crm"]), ("poweroffice", ids["po"]), ("shopify", ids["shop"])}
    phone = next(p for p in doc["properties"] if p["property"] == "phone")
    assert (phone["value"], phone["system"], phone["record_id"]) == ("+4795556677", "customwebshop", ids["ws"])
    beaten = [(b["value"], b["system"], b["why"]) for b in phone["beaten"]]
    assert ("+4794445566", "poweroffice", "older edit") in beaten, beaten
    assert doc["pending_writes"] == [], "what the push wrote is not pending any more"
    assert doc["history"] and all(r["from_version"] >= 1 for r in doc["history"])
    # the same by system:record-id, in text for a terminal
    out = cli(h, "explain", f"poweroffice:{ids['po']}")
    assert out.returncode == 0, out.stderr
    assert "from customwebshop " + ids["ws"] in out.stdout and "beat +4794445566 from poweroffice" in out.stdout
    assert "history across link versions:" in out.stdout


def test_a_held_write_of_a_value_we_once_wrote_there_is_still_pending(h: Harness) -> None:
    """We wrote a phone to the webshop; the webshop's own later edit won everywhere; then the CRM puts the first
    phone back while the webshop is down. What the webshop needs is the payload we wrote to it before (the
    same hash as its link's last write): a write still to make, so `explain` lists it and the next cycle
    makes it (counted by its time: the mapping that wants it again is newer than our write)."""
    crm, ws = h.client("customcrm"), h.client("customwebshop")
    crm_id, ws_id = h.sql("SELECT a.record_id, b.record_id FROM links a JOIN links b USING (gid) "
                          "WHERE a.view = 'customcrm.customer' AND b.view = 'customwebshop.customer' "
                          "ORDER BY a.record_id DESC LIMIT 1")[0]
    crm.update_record("customers", crm_id, {"phone": "+4793331111"})
    h.until_quiet()
    assert ws.get_record("customers", ws_id)["phone"] == "+4793331111"
    time.sleep(1.1)  # each edit later than the one before by a clear margin
    ws.update_record("customers", ws_id, {"phone": "+4793332222"})
    h.until_quiet()
    assert crm.get_record("customers", crm_id)["phone"] == "+4793332222"
    time.sleep(1.1)
    crm.update_record("customers", crm_id, {"phone": "+4793331111"})
    h.faults(("customwebshop",), error_rate=1.0, error_statuses=[503], seed=5)
    try:
        held = h.cycle(allow_errors=True)
    finally:
        h.faults()
    assert held.pushed["customwebshop.customer"].updated == 0, held.pushed["customwebshop.customer"].as_metadata()
    # the case this is about: the payload to write is the one written there before
    assert h.sql("SELECT l.last_written_hash = m.payload_hash FROM links l JOIN mapped_customwebshop_customer m "
                 "ON m.nsid = l.nsid WHERE l.view = 'customwebshop.customer' AND l.record_id = ?",
                 [ws_id]) == [(True,)]
    [doc] = explain_json(h, f"customcrm:{crm_id}")
    pending = [(w["view"], c["field"], c["new"]) for w in doc["pending_writes"] for c in w["changes"]]
    assert ("customwebshop.customer", "phone", "+4793331111") in pending, doc["pending_writes"]
    h.until_quiet()
    assert ws.get_record("customers", ws_id)["phone"] == "+4793331111"


def test_explain_a_product_by_sku_and_an_order_by_system_and_record_id(h: Harness) -> None:
    sku, gid = h.sql("SELECT sku, gid FROM merged_product WHERE sku IS NOT NULL AND record_count > 1 "
                     "ORDER BY gid LIMIT 1")[0]
    [doc] = explain_json(h, sku.lower())
    assert (doc["global_type"], doc["gid"]) == ("product", gid)
    assert len(doc["links"]) > 1
    assert next(p for p in doc["properties"] if p["property"] == "sku")["value"] == sku
    system, entity, rid, ogid = h.sql("SELECT system, entity, record_id, gid FROM links WHERE global_type = 'order' "
                                      "ORDER BY gid, system LIMIT 1")[0]
    docs = explain_json(h, f"{system}:{rid}")  # a record id alone may also be a customer's or a product's
    order = next(d for d in docs if d["global_type"] == "order")
    assert order["gid"] == ogid and (system, rid) in {(lk["system"], lk["record_id"]) for lk in order["links"]}
    assert {p["property"] for p in order["properties"]} >= {"lines", "origin"}
    out = cli(h, "explain", f"{system}:{entity}:{rid}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"order {ogid}\n") and "properties (winner" in out.stdout
    missing = cli(h, "explain", "nobody.at.all@example.invalid")
    assert missing.returncode == 1 and "nothing matches" in missing.stderr


def test_dlq_list_names_system_record_key_reason_and_what_to_do(h: Harness) -> None:
    """A PowerOffice product whose name is longer than Shopify takes (255 characters): Shopify refuses
    it (userErrors, 422) and `dlq list` names the system, the record, the SKU, the reason in one line
    and what to do. (A company sharing a person's mailbox is held before any call: test_demo.py.)"""
    sku = f"DLQ-{uid().upper()}"
    name = "Lang vare " + "ø" * 300
    h.client("poweroffice").create_record("products", {"Code": sku, "Name": name, "UnitPrice": 10.0})
    h.cycle(allow_errors=True)
    out = cli(h, "dlq", "list", "--json")
    assert out.returncode == 0, out.stderr
    mine = [d for d in json.loads(out.stdout) if d["key"] == sku]
    assert mine, out.stdout
    d = next(x for x in mine if x["system"] == "shopify")
    assert d["status"] == 422 and d["reason"].startswith("HTTP 422: "), d
    assert d["from"].startswith("poweroffice:")
    text = cli(h, "dlq", "list")
    assert text.returncode == 0
    assert sku in text.stdout and "what to do:" in text.stdout and "422.0" not in text.stdout
    assert all(len(line) < 400 for line in text.stdout.splitlines())


def test_an_edit_in_a_third_system_during_a_push_beats_the_echo_of_the_older_value(h: Harness) -> None:
    """Last in the module: it moves the CRM's clock an hour on and back, and a clock that goes back hides the
    CRM's next records from the incremental collect (a real clock does not go back).

    Edit in A (webshop) at t1; the sync pushes it to B (CRM), whose clock runs an hour ahead, so B's
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
