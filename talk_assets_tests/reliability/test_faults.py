"""Deterministic single faults (the chaos run's findings, one at a time): a transient server error
on a write must be retried on a later cycle, not parked as if the record were invalid."""

from __future__ import annotations

import uuid

import pytest

from talk_assets_tests.conftest import Worlds
from talk_assets_tests.reliability.support import Harness


@pytest.fixture(scope="module")
def synced(rel: Harness, worlds: Worlds) -> Harness:
    """The small world synced until quiet: clean cycles, the last writing nothing (a copy once built)."""
    worlds.converge(rel)
    return rel


def _linked(rel: Harness, view: str, record_id: str, target: str) -> bool:
    return bool(rel.sql("SELECT 1 FROM links s JOIN links t ON t.gid = s.gid AND t.view = ? "
                        "WHERE s.view = ? AND s.record_id = ?", [target, view, record_id]))


def test_a_create_that_met_a_5xx_is_retried_when_the_target_recovers(synced: Harness) -> None:
    t = uuid.uuid4().hex[:8]
    person = synced.client("poweroffice").create_record("customers", {
        "IsPerson": True, "FirstName": "Feil", "LastName": f"Server{t}", "Name": f"Feil Server{t}",
        "EmailAddress": f"feil.{t}@example.no"})
    synced.faults(("shopify",), error_rate=1.0, error_statuses=[503], seed=1)
    try:
        report = synced.cycle()
    finally:
        synced.faults()
    assert report.errors  # Shopify's collect failed too, and said so
    synced.cycle()
    synced.cycle()
    open_5xx = synced.sql("SELECT view, status FROM dead_letters WHERE resolved_at IS NULL AND status >= 500")
    assert _linked(synced, "poweroffice.customers_person", str(person["Id"]), "shopify.customer"), open_5xx
    assert not open_5xx


def test_the_echo_of_a_stock_write_does_not_outrank_a_later_edit(synced: Harness) -> None:
    gid, crm_id, ws_id = synced.sql(
        "SELECT c.gid, c.record_id, w.record_id FROM links c JOIN links w ON w.gid = c.gid AND w.view = "
        "'customwebshop.product' JOIN links q ON q.gid = c.gid AND q.view = 'squarespace.inventory' "
        "WHERE c.view = 'customcrm.product' ORDER BY c.gid LIMIT 1")[0]
    synced.client("customcrm").update_record("products", crm_id, {"stock_quantity": 111})
    synced.cycle()  # 111 reaches the webshop and Squarespace
    synced.client("customwebshop").update_record("products", ws_id, {"stock": 222})  # the later edit
    synced.cycle()  # collects the webshop's 222 and Squarespace's 111 (our own write, seen now)
    synced.cycle()
    got = {v: synced.sql(f"SELECT stock FROM norm_{v.replace('.', '_')} n JOIN links l ON l.nsid = n.nsid "
                         "WHERE l.gid = ? AND l.view = ?", [gid, v])
           for v in ("customcrm.product", "customwebshop.product", "squarespace.inventory")}
    assert all(rows == [("222",)] for rows in got.values()), got
