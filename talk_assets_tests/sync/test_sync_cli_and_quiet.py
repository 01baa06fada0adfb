"""Two-way sync against the five sandboxes over HTTP, continued from test_sync.py (the same synced
world, its own copy): the CLI, blocking checks and what quiet cycles read and rebuild. A module of
its own so that `make test` runs it beside test_sync.py, not after it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import dagster as dg
import pytest

from talk_assets.sync.declaration import (
    GLOBAL_TYPES,
    SOURCES_BY_KEY,
)
from talk_assets.sync.mapping import target_views
from talk_assets_tests.sync.conftest import Sync
from talk_assets_tests.sync.test_sync import SYSTEM_KEYS, V, uid


# -- the CLI ------------------------------------------------------------------------------------------
def test_cli_sync_once_prints_a_summary_and_dry_run_makes_no_writes(sync: Sync) -> None:
    t = uid()
    sync.client("customwebshop").create_record("customers", {"email": f"cli.{t}@example.no", "first_name": "Cli",
                                                              "last_name": f"Test{t}"})
    sync.reset_stats()
    state = sync.data / "talk.duckdb"
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    dry = subprocess.run([sys.executable, "-m", "talk_assets.cli", "sync", "--dry-run", "--quiet",
                          "--data-dir", str(sync.data)], capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert "customcrm: create customers" in dry.stdout and f"cli.{t}@example.no" in dry.stdout
    assert sync.writes() == dict.fromkeys(SYSTEM_KEYS, 0)
    # the dry run collected, merged and mapped a copy: the state file is as it was, byte for byte
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before
    assert sync.sql("SELECT count(*) FROM raw_current WHERE payload->>'$.email' = ?", [f"cli.{t}@example.no"]) == [(0,)]
    real = subprocess.run([sys.executable, "-m", "talk_assets.cli", "sync", "--once", "--quiet", "--confirm",
                           "--data-dir", str(sync.data)], capture_output=True, text=True, timeout=300)
    assert real.returncode == 0, real.stderr
    header = real.stdout.splitlines()[0].split()
    assert header[:3] == ["system", "entity", "collected"] and "conflicts" in header and "failed" in header
    line = next(ln for ln in real.stdout.splitlines() if ln.startswith("customcrm.customer (push)"))
    assert line.split()[header.index("created")] == "1"
    # both cycles are runs of sync_job in the instance the UI uses (<data dir>/dagster_home)
    with dg.DagsterInstance.from_config(str(sync.data / "dagster_home")) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="sync_job"))
        assert len(runs) >= 2 and {r.tags.get("talk/dry_run") for r in runs[:2]} == {"true", None}
    sync.until_quiet()


def test_a_failing_blocking_check_holds_the_pushes_that_depend_on_it(sync: Sync) -> None:
    """Two companies with different organisation numbers share an accountant's mailbox, so the e-mail
    merge joins them: `customers_not_collapsed` fails (ERROR) and Dagster skips the pushes downstream
    of the customer merge in the same run, in the CLI and in the UI's instance; once the data is
    corrected the check passes and the held writes go out."""
    t = uid()
    mailbox = f"regnskap{t}@example.no"
    sync.client("customcrm").create_record("customers", {"name": f"Firma A {t}", "email": mailbox,
                                                         "organization_number": "912345670", "customer_type": "company"})
    po = sync.client("poweroffice").create_record("customers", {"IsPerson": False, "Name": f"Firma B {t}",
                                                                "EmailAddress": mailbox, "OrganizationNumber": "987654325"})
    # and a product edit in the same run, whose pushes do not depend on the customers' check
    rid = sync.sql("SELECT record_id FROM links WHERE view = 'customcrm.product' AND gid IN "
                   "(SELECT gid FROM links WHERE view = 'shopify.sesamproduct') ORDER BY record_id LIMIT 1")[0][0]
    sync.client("customcrm").update_record("products", rid, {"description": f"Uavhengig {t}"})
    sync.reset_stats()
    env = {**os.environ}
    env.pop("DAGSTER_HOME", None)
    run = subprocess.run([sys.executable, "-m", "talk_assets.cli", "sync", "--once", "--quiet",
                          "--data-dir", str(sync.data)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 1, run.stderr
    assert "blocking check failed: merge/customer customers_not_collapsed" in run.stderr, run.stderr
    assert "held: shopify.customer push did not run: blocking check failed upstream" in run.stderr, run.stderr
    assert "held: shopify.order push did not run" in run.stderr  # orders wait for their customers
    customer_writes = {k: n for k, n in sync.box.stats("shopify")["requests"].items()
                       if k.split(" ", 1)[0] in ("POST", "PUT") and "customers" in k}
    assert not customer_writes, customer_writes
    with dg.DagsterInstance.from_config(str(sync.data / "dagster_home")) as instance:
        run_id = instance.get_runs(dg.RunsFilter(job_name="sync_job"), limit=1)[0].run_id
        events = [r.dagster_event for r in instance.all_logs(run_id) if r.dagster_event]
    started = {e.step_key for e in events if e.event_type_value == "STEP_START"}
    assert "shopify__mapped__customer" not in started and "shopify__pushed__customer" not in started, started
    assert "shopify__pushed__sesamproduct" in started  # a push that does not depend on it ran
    failed = [e.event_specific_data for e in events if e.event_type_value == "ASSET_CHECK_EVALUATION"
              and not e.event_specific_data.passed]
    assert [(f.asset_key.to_user_string(), f.check_name, f.severity) for f in failed] == \
        [("merge/customer", "customers_not_collapsed", dg.AssetCheckSeverity.ERROR)]
    # the user finds they are one company after all and corrects its number in PowerOffice: the check
    # passes and the held writes go out (a link once made is kept, so a wrong link is not undone by
    # changing the e-mail; the check holds the push before it spreads)
    sync.client("poweroffice").update_record("customers", str(po["Id"]), {"OrganizationNumber": "912345670"})
    report = sync.cycle()
    assert not report.held and not report.failed_checks and "shopify.customer" in report.pushed
    sync.until_quiet()
    assert sync.sql("SELECT count(*) FROM links WHERE view = 'shopify.customer' AND gid IN "
                    "(SELECT gid FROM links WHERE record_id = ? AND view LIKE 'poweroffice.customers%')",
                    [str(po["Id"])])[0][0] == 1


def test_the_share_thresholds_hold_a_push_only_above_both(monkeypatch: pytest.MonkeyPatch) -> None:
    """`TALK_CHECK_MAX_BAD_SHARE` and `TALK_CHECK_MIN_BAD_ROWS`: both must be exceeded to fail."""
    from talk_assets.sync.checks import _share_result
    assert _share_result("c", 9, 10, "", "bad").passed  # 90 %, but fewer than 10 rows
    assert _share_result("c", 10, 1000, "", "bad").passed  # 10 rows, but 1 %
    assert not _share_result("c", 10, 100, "", "bad").passed
    monkeypatch.setenv("TALK_CHECK_MIN_BAD_ROWS", "2")
    monkeypatch.setenv("TALK_CHECK_MAX_BAD_SHARE", "0")
    assert not _share_result("c", 2, 1000, "", "bad").passed and _share_result("c", 1, 1000, "", "bad").passed


def test_persons_held_for_a_missing_email_do_not_fail_the_check_or_hold_other_pushes(sync: Sync) -> None:
    """Twelve e-mail-less persons (more than TALK_CHECK_MIN_BAD_ROWS) stay held for Shopify for good;
    they are not writes, so `required_fields` passes and an edit of a linked customer still arrives."""
    t = uid()
    po = sync.client("poweroffice")
    for i in range(12):
        po.create_record("customers", {"IsPerson": True, "FirstName": "Uten", "LastName": f"Epost{i}{t}",
                                       "Name": f"Uten Epost{i}{t}"})
    sync.until_quiet()
    held = sync.sql("SELECT count(*) FROM mapped_shopify_customer WHERE action = 'held'")[0][0]
    assert held >= 12, held
    rid = sync.sql("SELECT record_id FROM links WHERE view = 'customcrm.customer' AND gid IN "
                   "(SELECT gid FROM links WHERE view = 'shopify.customer') ORDER BY record_id LIMIT 1")[0][0]
    sync.client("customcrm").update_record("customers", rid, {"phone": f"+47 9{t[:7].zfill(7)}"})
    report = sync.cycle()
    assert not report.failed_checks and not report.held, (report.failed_checks, report.held)
    assert report.pushed.get("shopify.customer") and report.pushed["shopify.customer"].updated >= 1, report.pushed


def test_a_quiet_cycle_reads_nothing_once_the_last_burst_is_older_than_the_lookback(sync: Sync) -> None:
    """The next read starts at the server's time of the last read (minus the lookback), not at the
    newest change seen: the first sync's thousands of writes are not read again every cycle."""
    sync.until_quiet()
    for s in SYSTEM_KEYS:
        sync.box.control(s, "POST", "clock", json={"advance_s": 3600})
    sync.cycle()  # begins an hour after the burst: the last read in the old window
    quiet = sync.cycle()
    timed = [k for k in quiet.collected if SOURCES_BY_KEY[k].changed_field]
    assert len(timed) >= 10 and all(quiet.collected[k].read == 0 for k in timed), \
        {k: c.read for k, c in quiet.collected.items()}
    # ...and an edit made now is read, alone
    rid = sync.sql("SELECT record_id FROM raw_current WHERE system = 'customwebshop' AND entity = 'customers' LIMIT 1")[0][0]
    sync.client("customwebshop").update_record("customers", rid, {"phone": f"9{uid()[:7].zfill(7)}"})
    edited = sync.cycle()
    assert edited.collected["customwebshop.customers"].read == 1
    assert edited.collected["customwebshop.customers"].changed == 1


def test_a_quiet_cycle_rebuilds_no_merge_or_mapping_and_an_edit_rebuilds_only_what_reads_it(sync: Sync) -> None:
    sync.until_quiet()
    built = dict(sync.sql("SELECT name, built_at FROM derived_state"))
    # a merge per global type, a mapping per target view
    assert len(built) == len(GLOBAL_TYPES) + len(target_views()), sorted(built)
    sync.cycle()
    assert dict(sync.sql("SELECT name, built_at FROM derived_state")) == built
    rid = sync.sql("SELECT record_id FROM raw_current WHERE system = 'customwebshop' AND entity = 'products' LIMIT 1")[0][0]
    sync.client("customwebshop").update_record("products", rid, {"description": f"Ny tekst {uid()}"})
    sync.cycle()
    after = dict(sync.sql("SELECT name, built_at FROM derived_state"))
    rebuilt = {n for n in built if after[n] != built[n]}
    assert "merge:product" in rebuilt and "map:customcrm.product" in rebuilt, rebuilt
    assert not rebuilt & {"merge:customer", "merge:user", "map:shopify.customer", "map:customcrm.customer"}, rebuilt
    # what the edit reached is in the target, so the mechanism skipped nothing it needed
    crm = sync.member(sync.gid_of(V["customwebshop.product"], rid), V["customcrm.product"])
    assert crm and sync.client("customcrm").get_record("products", crm)["description"].startswith("Ny tekst")


def test_an_order_reaches_shopify_in_the_cycle_that_creates_its_customer_and_the_next_quiet_cycle_rebuilds_nothing(
        sync: Sync) -> None:
    """A CRM customer reaches Shopify only because a CRM order names it (create if referenced): the
    Shopify customer mapping must see this run's order merge, so the customer, the product and the
    order are created in one cycle, and the cycle after the run-down rebuilds no mapping."""
    sync.until_quiet()
    t = uid()
    crm = sync.client("customcrm")
    customer = crm.create_record("customers", {"name": f"Åsmund Ordre{t}", "email": f"asmund.{t}@example.no",
                                               "customer_type": "person"})
    product = crm.create_record("products", {"sku": f"ORD-{t}", "name": f"Ordrevare {t}", "unit_price": "55.00",
                                             "stock_quantity": 3})
    order = crm.create_record("orders", {"customer_id": customer["id"], "reference": f"PO-{t}", "lines": [
        {"sku": f"ORD-{t}", "quantity": 1, "unit_price": "55.00"}]})
    report = sync.cycle()
    assert report.pushed["shopify.order"].created >= 1, report.pushed["shopify.order"].as_metadata()
    shopify_order = sync.counterpart(V["customcrm.order"], order["id"], V["shopify.order"])
    assert shopify_order, "the order waited a cycle for its customer"
    assert sync.counterpart(V["customcrm.customer"], customer["id"], V["shopify.customer"])
    assert sync.counterpart(V["customcrm.product"], product["id"], V["shopify.sesamproduct"])
    sync.until_quiet()  # the created records are collected back (the order merge changes once more)
    built = dict(sync.sql("SELECT name, built_at FROM derived_state"))
    sync.cycle()
    after = dict(sync.sql("SELECT name, built_at FROM derived_state"))
    assert {n for n in built if after.get(n) != built[n]} == set()
