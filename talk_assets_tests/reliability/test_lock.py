"""The DuckDB single-writer lock: while another process holds the state file, a Dagster
materialization waits for it and succeeds; the lock never surfaces to a user as an error."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import dagster as dg
import pytest

from talk_assets.definitions import all_resources
from talk_assets.sync.assets import all_assets, collected_key, merge_key
from talk_assets.sync.declaration import SOURCES_BY_KEY
from talk_assets.sync.store import connect
from talk_assets_tests.reliability.support import REPO, Harness

HOLD_S = 5.0


def test_a_materialization_waits_for_the_state_file_held_by_another_process(
    rel: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with connect(rel.data / "talk.duckdb") as con:  # the file exists, with its schema
        con.execute("SELECT 1").fetchall()
    proc = subprocess.Popen([sys.executable, "-m", "talk_assets_tests.reliability.cycle_worker",
                             "--hold-lock", str(HOLD_S)], env=rel.env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert json.loads(line or "{}").get("locked") == proc.pid, proc.stderr.read() if proc.stderr else ""
        held_at = time.monotonic()
        caplog.set_level(logging.INFO, logger="talk_assets.store")
        selection = [collected_key(SOURCES_BY_KEY["customcrm.customers"]), merge_key("customer")]
        result = dg.materialize(all_assets(), selection=selection, resources=all_resources(),
                                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        took = time.monotonic() - held_at
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert took >= HOLD_S - 1.0, f"finished in {took:.1f}s while the file was held for {HOLD_S}s"
    assert "held by another process; waiting" in caplog.text
    done = {e.asset_key: e.materialization for e in result.get_asset_materialization_events() if e.asset_key}
    assert set(done) == set(selection)
    assert int(done[selection[0]].metadata["records"].value) > 0  # the collect really read the CRM
    print(f"\nlock: materialization waited {took:.1f}s for a {HOLD_S:.0f}s lock and succeeded")
