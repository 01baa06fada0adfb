"""Echo recognition on hand-made tables (DuckDB in memory, no HTTP): what the push records of a write
(`push_writes`) makes the merge credit a collected echo to its origin, and `provenance_rows` explains it.
The same rules over HTTP with the sandbox clocks: test_provenance.py."""

from __future__ import annotations

from datetime import timedelta

import duckdb

from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets.sync.explain import provenance_rows
from talk_assets.sync.links import update_links
from talk_assets.sync.merge import merge_type
from talk_assets.sync.push import Outcome, Row, record_outcomes
from talk_assets_tests.sync.small_world import T0, put, ts  # noqa: F401 - `con` is the fixture in conftest.py

SHOP = VIEWS_BY_KEY["shopify.customer"]


def merged(con: duckdb.DuckDBPyConnection, gid_of: str) -> dict:
    merge_type(con, "customer")
    rows = con.execute("SELECT * FROM merged_customer").df().to_dict("records")
    return next(r for r in rows if gid_of in list(r["records"]))


def shop(phone: str, at: int) -> dict:
    return {"id": 1, "email": "kari@x.no", "first_name": "Kari", "updated_at": ts(at),
            "default_address": {"phone": phone}}


def write_phone_to_shopify(con: duckdb.DuckDBPyConnection, gid: str) -> None:
    """What push does after Shopify answered an update of the phone: its bookkeeping, nothing sent."""
    row = Row(SHOP, gid, "update", "shopify-customer:1", "1", None, ["default_address.phone"],
              {"default_address.phone": "+4792222222"}, {}, {}, "h1", None)
    record_outcomes(con, SHOP, [Outcome(row, "updated", "1")], T0 + timedelta(hours=2))


def test_an_echo_keeps_its_origin_and_a_later_third_edit_beats_it(con: duckdb.DuckDBPyConnection) -> None:
    put(con, "shopify.customer", shop("91111111", 0))
    put(con, "customwebshop.customers", {"id": 9, "email": "kari@x.no", "phone": "92222222", "updated_at": ts(1)})
    put(con, "customcrm.customers", {"id": 3, "email": "kari@x.no", "name": "Kari", "customer_type": "person",
                                     "updated_at": ts(0)})
    g = merged(con, "shopify-customer:1")
    assert (g["phone"], g["phone__from"]["nsid"]) == ("+4792222222", "customwebshop-customers:9")
    update_links(con, T0 + timedelta(hours=1))
    write_phone_to_shopify(con, g["gid"])
    assert con.execute("SELECT value, origin_nsid, origin_at FROM push_writes WHERE prop = 'phone'").fetchall() == [
        ("+4792222222", "customwebshop-customers:9", T0 + timedelta(hours=1))]
    # Shopify's clock says the echo came at 5:00; the CRM's phone edit at 3:00 is the latest edit
    put(con, "shopify.customer", shop("92222222", 5))
    g = merged(con, "shopify-customer:1")
    assert (g["phone"], g["phone__from"]["nsid"], g["phone__from"]["at"]) == (
        "+4792222222", "customwebshop-customers:9", T0 + timedelta(hours=1)), "the echo is credited to its origin"
    put(con, "customcrm.customers", {"id": 3, "email": "kari@x.no", "name": "Kari", "customer_type": "person",
                                     "phone": "93333333", "updated_at": ts(3)})
    g = merged(con, "shopify-customer:1")
    assert (g["phone"], g["phone__from"]["nsid"], g["phone__from"]["at"]) == (
        "+4793333333", "customcrm-customers:3", T0 + timedelta(hours=3))
    [phone] = [r for r in provenance_rows(con, "customer", [g["gid"]]) if r["property"] == "phone"]
    assert (phone["system"], phone["record_id"]) == ("customcrm", "3")
    # the webshop's value and its echo in Shopify are one candidate: the webshop's edit at 1:00
    assert [(b["value"], b["record"], b["edit_time"], b["why"]) for b in phone["beaten"]] == [
        ("+4792222222", "customwebshop-customers:9", T0 + timedelta(hours=1), "older edit")]


def test_a_value_that_differs_from_what_was_written_is_the_records_own_edit(con: duckdb.DuckDBPyConnection) -> None:
    put(con, "shopify.customer", shop("91111111", 0))
    put(con, "customwebshop.customers", {"id": 9, "email": "kari@x.no", "phone": "92222222", "updated_at": ts(1)})
    g = merged(con, "shopify-customer:1")
    update_links(con, T0 + timedelta(hours=1))
    write_phone_to_shopify(con, g["gid"])
    put(con, "shopify.customer", shop("95555555", 4))  # someone typed another number in Shopify
    g = merged(con, "shopify-customer:1")
    assert (g["phone"], g["phone__from"]["nsid"], g["phone__from"]["at"]) == (
        "+4795555555", "shopify-customer:1", T0 + timedelta(hours=4))
