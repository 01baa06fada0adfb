"""Bad input from the APIs: malformed JSON, records without an id or with a broken change time,
invalid e-mails, negative prices, wrongly typed, huge and non-ASCII values, quotes and SQL in
names. Each must end as a clear error naming system, record and field (collect's rejects or a dead
letter), and nothing else may stop: the other records still sync."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from talk_assets.sandbox.store import Table
from talk_assets.sync.declaration import SOURCES_BY_KEY, VIEWS_BY_KEY
from talk_assets.systems.customapi.types import format_ts
from talk_assets_tests.conftest import Worlds
from talk_assets_tests.reliability.support import Harness

V = VIEWS_BY_KEY


@pytest.fixture(scope="module")
def synced(rel: Harness, worlds: Worlds) -> Harness:
    worlds.converge(rel)  # synced until quiet, without errors (once per test run; a copy of it here after)
    return rel


def uid() -> str:
    return uuid.uuid4().hex[:8]


def tables(app: Any) -> dict[str, Table]:
    """A sandbox app's tables (the custom APIs keep them in a dict, the others as attributes)."""
    found = getattr(app, "tables", None)
    return found if isinstance(found, dict) else {k: v for k, v in vars(app).items() if isinstance(v, Table)}


def crm_member(rel: Harness, view: str, record_id: Any, target: str = "customcrm.customer") -> str | None:
    rows = rel.sql("SELECT t.record_id FROM links s JOIN links t ON t.gid = s.gid AND t.view = ? "
                   "WHERE s.view = ? AND s.record_id = ?", [target, view, str(record_id)])
    return rows[0][0] if rows else None


def dead_letter(rel: Harness, view: str, marker: str) -> tuple | None:
    rows = rel.sql("SELECT status, error, gid FROM dead_letters WHERE view = ? AND resolved_at IS NULL "
                   "AND payload::VARCHAR LIKE ?", [view, f"%{marker}%"])
    return rows[0] if rows else None


# -- one broken record per API: the record is rejected by name, its neighbours are collected ------------
# system -> (collect source, table, id to use, the change-time field)
# Shopify is read through GraphQL, whose `updatedAt` is a `DateTime!` scalar (2026-07 schema): Shopify
# cannot answer a customer with a broken change time, so there is no such record to reject.
BROKEN_TIME = {
    "poweroffice": ("poweroffice.customers", "customers", 4_999_901, "LastChangedDateTimeOffset"),
    "squarespace": ("squarespace.products", "products", "ffffffffffffffffffff0001", "modifiedOn"),
    "customcrm": ("customcrm.customers", "customers", 99_001, "updated_at"),
    "customwebshop": ("customwebshop.customers", "customers", 99_001, "updated_at"),
}


@pytest.mark.parametrize("system", sorted(BROKEN_TIME))
def test_a_record_with_a_broken_change_time_is_rejected_by_name(synced: Harness, system: str) -> None:
    source_key, table_name, rid, ts_field = BROKEN_TIME[system]
    app = synced.box.servers[system].app
    table = tables(app)[table_name]
    template = copy.deepcopy(table.rows[table.ids[0]])
    bad = {**template, table.id_field: rid, ts_field: "sist tirsdag"}
    for key in ("email", "EmailAddress"):
        if key in bad:
            bad[key] = f"tid.{uid()}@example.no"
    with app.lock:  # `put` keeps the table's indexes (the sandboxes' list orders read them)
        table.put(bad, app.now())
    try:
        report = synced.cycle(full=True)
    finally:
        with app.lock:
            table.delete(rid)
    assert not [e for e in report.errors if e.startswith(source_key)], report.errors
    res = report.collected[source_key]
    msgs = [str(b) for b in res.bad]
    assert msgs == [f"{system} {SOURCES_BY_KEY[source_key].entity} record {rid}: field '{ts_field}' "
                    "is not a timestamp: 'sist tirsdag'"], msgs
    assert res.read - len(res.bad) == len(table) >= 1  # every other record was read and stored


def test_a_record_without_an_id_is_rejected_and_the_rest_collected(synced: Harness) -> None:
    app = synced.box.servers["customwebshop"].app
    table = app.tables["customers"]
    ghost = {k: v for k, v in copy.deepcopy(table.rows[table.ids[0]]).items() if k != "id"}
    ghost["email"] = f"utenid.{uid()}@example.no"
    ghost["updated_at"] = format_ts(datetime.now(UTC))
    rid = table.ids[-1] + 1000  # stored under a key, served without one (the last row: no page cursor needs it)
    with app.lock:
        table.put(ghost, app.now(), rid=rid)
    try:
        report = synced.cycle()
    finally:
        with app.lock:
            table.delete(rid)
    bad = [str(b) for b in report.collected["customwebshop.customers"].bad]
    assert len(bad) == 1 and bad[0].startswith("customwebshop customers record #") and "field 'id' is missing" in bad[0]
    assert not report.errors, report.errors


def test_malformed_json_from_one_api_fails_that_api_only(synced: Harness) -> None:
    t = uid()
    po = synced.client("poweroffice")
    person = po.create_record("customers", {"IsPerson": True, "FirstName": "Heil", "LastName": f"Json{t}",
                                            "Name": f"Heil Json{t}", "EmailAddress": f"json.{t}@example.no"})
    synced.faults(("customcrm",), malformed_rate=1.0, seed=5)
    try:
        report = synced.cycle()
    finally:
        synced.faults()
    crm_errors = [e for e in report.errors if e.startswith("customcrm.")]
    assert crm_errors and len(crm_errors) == len(report.errors), report.errors
    for e in crm_errors:
        assert "customcrm GET /" in e and "not valid JSON" in e, e
    # everyone else synced: the new PowerOffice person reached Shopify in the same cycle
    assert crm_member(synced, "poweroffice.customers_person", person["Id"], "shopify.customer")


# -- bad values that the source accepted: rejected by the target, parked, named ---------------------------
def _inject(rel: Harness, system: str, table_name: str, record: dict[str, Any]) -> int:
    """Put a record straight into a sandbox table (the API would have validated it away)."""
    app = rel.box.servers[system].app
    table = app.tables[table_name]
    template = copy.deepcopy(table.rows[table.ids[0]])
    with app.lock:
        rid = table.new_id()
        now = app.now()
        rec = {**template, **record, "id": rid, "created_at": format_ts(now), "updated_at": format_ts(now), "version": 1}
        table.put(rec, now)
    return rid


@pytest.fixture(scope="module")
def bad_values(synced: Harness) -> dict[str, Any]:
    t = uid()
    out: dict[str, Any] = {"t": t}
    ws = synced.client("customwebshop")
    out["bad_email"] = _inject(synced, "customwebshop", "customers", {
        "email": f"ikke-en-epost-{t}", "first_name": "Ugyldig", "last_name": f"Epost{t}", "company": None})
    out["negative"] = _inject(synced, "customwebshop", "products", {
        "sku": f"NEG-{t}", "title": f"Negativ {t}", "price": -12500, "gtin": None})
    out["wrong_type"] = _inject(synced, "customwebshop", "products", {
        "sku": f"TYPE-{t}", "title": f"Feil type {t}", "price": "tolv kroner", "stock": "mange", "gtin": None})
    out["huge_name"] = "Å" * 100_000
    out["huge"] = _inject(synced, "customwebshop", "customers", {
        "email": f"stor.{t}@example.no", "first_name": "Stor", "last_name": out["huge_name"], "company": None})
    out["unicode_name"] = ("Åse Ødegård-Ñúñez", f"Çelik日本語😀{t}")
    out["unicode"] = ws.create_record("customers", {"email": f"unicode.{t}@example.no",
                                                    "first_name": out["unicode_name"][0],
                                                    "last_name": out["unicode_name"][1]})["id"]
    out["sql_name"] = ("O'Brien \"Bobby\"", f"Tables{t}'); DROP TABLE links; --")
    out["sql"] = ws.create_record("customers", {"email": f"o.brien+{t}@example.no", "first_name": out["sql_name"][0],
                                                "last_name": out["sql_name"][1],
                                                "billing_address": {"street": "'; DELETE FROM raw_current; --",
                                                                    "city": "Bø i \"Telemark\""}})["id"]
    out["good"] = ws.create_record("customers", {"email": f"grei.{t}@example.no", "first_name": "Grei",
                                                 "last_name": f"Kunde{t}"})["id"]
    out["reports"] = [synced.cycle(), synced.cycle()]
    return out


def test_bad_values_do_not_stop_the_cycle_and_good_records_sync(synced: Harness, bad_values: dict) -> None:
    for report in bad_values["reports"]:
        assert not report.errors, report.errors
    assert crm_member(synced, "customwebshop.customer", bad_values["good"])
    assert synced.sql("SELECT count(*) FROM links")[0][0] > 0  # the link table survived the names below


def test_an_invalid_email_is_dead_lettered_naming_system_record_and_field(synced: Harness, bad_values: dict) -> None:
    dl = dead_letter(synced, "customcrm.customer", f"ikke-en-epost-{bad_values['t']}")
    assert dl, synced.sql("SELECT view, status, error FROM dead_letters")
    status, error, gid = dl
    assert status == 422 and error.startswith("customcrm POST /") and "/customers: HTTP 422" in error and "(field 'email')" in error, error
    assert synced.sql("SELECT record_id FROM links WHERE gid = ? AND view = 'customwebshop.customer'",
                      [gid]) == [(str(bad_values["bad_email"]),)]


def test_a_negative_price_is_dead_lettered_naming_the_field(synced: Harness, bad_values: dict) -> None:
    dl = dead_letter(synced, "customcrm.product", f"NEG-{bad_values['t']}")
    assert dl and dl[0] == 422 and "(field 'unit_price')" in dl[1] and "negative" in dl[1], dl


def test_a_wrongly_typed_field_is_reported_by_name(synced: Harness, bad_values: dict) -> None:
    rid = str(bad_values["wrong_type"])
    expected = {f"customwebshop products record {rid}: field 'price' is not a number: 'tolv kroner'",
                f"customwebshop products record {rid}: field 'stock' is not a number: 'mange'"}
    first = bad_values["reports"][0]
    assert expected <= {str(b) for b in first.collected["customwebshop.products"].bad}, first.rejected
    assert expected <= set(first.rejected)  # what the CLI prints under its table
    # the record was not stored, so nothing downstream read it as a product without a price
    assert synced.sql("SELECT count(*) FROM raw_current WHERE system = 'customwebshop' AND entity = 'products' "
                      "AND record_id = ?", [rid]) == [(0,)]
    assert not synced.sql("SELECT error FROM dead_letters WHERE payload::VARCHAR LIKE ?", [f"%TYPE-{bad_values['t']}%"])


def test_non_ascii_names_sync_verbatim(synced: Harness, bad_values: dict) -> None:
    crm_id = crm_member(synced, "customwebshop.customer", bad_values["unicode"])
    assert crm_id
    got = synced.client("customcrm").get_record("customers", crm_id)
    assert got["name"] == " ".join(bad_values["unicode_name"])


def test_quotes_and_sql_in_names_sync_verbatim(synced: Harness, bad_values: dict) -> None:
    crm_id = crm_member(synced, "customwebshop.customer", bad_values["sql"])
    assert crm_id, synced.sql("SELECT view, status, error FROM dead_letters WHERE resolved_at IS NULL")
    got = synced.client("customcrm").get_record("customers", crm_id)
    assert got["name"] == " ".join(bad_values["sql_name"])
    assert got["street_address1"] == "'; DELETE FROM raw_current; --" and got["city"] == 'Bø i "Telemark"'
    assert got["email"] == f"o.brien+{bad_values['t']}@example.no"
    assert synced.sql("SELECT count(*) FROM raw_current")[0][0] > 0


def test_a_huge_value_syncs_verbatim_or_is_rejected_by_name(synced: Harness, bad_values: dict) -> None:
    crm_id = crm_member(synced, "customwebshop.customer", bad_values["huge"])
    if crm_id:
        got = synced.client("customcrm").get_record("customers", crm_id)
        assert got["name"] == "Stor " + bad_values["huge_name"]
    else:
        dl = dead_letter(synced, "customcrm.customer", f"stor.{bad_values['t']}")
        assert dl and dl[0] in (400, 413, 422) and "field" in dl[1], dl


def test_open_dead_letters_are_all_deliberate_rejections(synced: Harness, bad_values: dict) -> None:
    rows = synced.sql("SELECT view, status, error FROM dead_letters WHERE resolved_at IS NULL")
    assert rows and all(status in (400, 422) or (status is None and "required field" in error)
                        for _, status, error in rows), rows
    json.dumps(rows)  # plain data: nothing in a dead letter needs a custom encoder
