"""Lost or stuck writes (issue 17), continued from test_held_and_dead.py in a module of its own (its
own small world, synced as that module's is) so that `make test` runs the two side by side: writes
that did not happen make `sync --once` fail, creates against a down system are counted, and lost
answers leave no dead letters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from talk_assets_tests.reliability.support import Harness
from talk_assets_tests.reliability.test_held_and_dead import (
    _open_dead_letters,
    _person,
    _settle,
    _sync_once,
    _touchy,
)


@pytest.fixture(scope="module")
def synced(rel: Harness) -> Iterator[Harness]:
    """The first sync as test_held_and_dead.py makes it: unconfirmed, with a hair-trigger breaker."""
    for _ in range(2):
        rel.cycle(settings=_touchy())
    yield rel


def test_writes_that_did_not_happen_make_sync_once_exit_non_zero(synced: Harness) -> None:
    """Reads work, every write's answer is lost: the collect is clean, so only the writes can say so."""
    _settle(synced)
    ws_id = synced.sql("SELECT w.record_id FROM links w JOIN links c ON c.gid = w.gid AND c.view = "
                       "'customcrm.customer' WHERE w.view = 'customwebshop.customer' ORDER BY w.gid LIMIT 1")[0][0]
    synced.client("customwebshop").update_record("customers", ws_id, {"billing_address": {"city": "Stilleby"}})
    synced.faults(("customcrm",), lost_response_rate=1.0, seed=7)
    try:
        out = _sync_once(synced)
    finally:
        synced.faults()
    assert out.returncode != 0, out.stdout + out.stderr
    synced.cycle()
    synced.cycle()
    assert not _open_dead_letters(synced)


def test_creates_against_a_down_system_are_counted_not_skipped(synced: Harness) -> None:
    _settle(synced)
    _person(synced, "Nede")
    synced.faults(("shopify",), error_rate=1.0, error_statuses=[503], seed=3)
    try:
        report = synced.cycle()
    finally:
        synced.faults()
    res = report.pushed["shopify.customer"]
    meta = res.as_metadata()
    assert meta["not_written"] >= 1 and meta["not_confirmed"] + meta["held"] >= 1, meta
    assert "TALK_SHOPIFY_URL" in res.held_reason, res.held_reason
    assert not _open_dead_letters(synced, "shopify")
    synced.cycle()
    synced.cycle()
    assert not _open_dead_letters(synced)
    assert all(p.not_written == 0 for p in synced.cycle().pushed.values())


# -- 2. dead letters for writes that went through ---------------------------------------------------------
def test_lost_answers_leave_no_dead_letters_and_the_writes_are_kept(synced: Harness) -> None:
    _settle(synced)
    crm_ids = [r[0] for r in synced.sql(
        "SELECT c.record_id FROM links w JOIN links c ON c.gid = w.gid AND c.view = 'customcrm.customer' "
        "WHERE w.view = 'customwebshop.customer' ORDER BY w.gid LIMIT 3")]
    ws_ids = [r[0] for r in synced.sql(
        "SELECT w.record_id FROM links w JOIN links c ON c.gid = w.gid AND c.view = 'customcrm.customer' "
        "WHERE w.view = 'customwebshop.customer' ORDER BY w.gid LIMIT 3")]
    city = "Tapt-" + uuid.uuid4().hex[:5]
    for rid in ws_ids:
        synced.client("customwebshop").update_record("customers", rid, {"billing_address": {"city": city}})
    synced.faults(("customcrm",), lost_response_rate=1.0, seed=5)
    try:
        report = synced.cycle()
        assert report.pushed["customcrm.customer"].not_written >= 1, report.pushed["customcrm.customer"].as_metadata()
        assert not _open_dead_letters(synced, "customcrm")
        synced.cycle()  # still losing every answer: each cycle gets one write through and finds it next time
    finally:
        synced.faults()
    for _ in range(3):
        synced.cycle()
    crm = synced.client("customcrm")
    assert [crm.get_record("customers", rid).get("city") for rid in crm_ids] == [city] * 3
    assert not _open_dead_letters(synced)
