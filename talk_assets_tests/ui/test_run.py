"""`talk-assets run` (make run) as a process: instance config, sensors on, clean stop, state kept.

No browser needed: the Dagster UI's own GraphQL endpoint and the sandbox's HTTP API are asked.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import requests

from talk_assets_tests.ui.app import RunningApp

pytestmark = pytest.mark.timeout(420)

SHOPIFY_TOKEN = {"X-Shopify-Access-Token": "shpat_sandbox0000000000000000000000"}


def _shopify(app: RunningApp, path: str) -> str:
    return f"{app.sandbox_url('shopify')}/admin/api/2026-07/{path}"


def test_run_starts_stops_cleanly_and_keeps_state(tmp_path: Path) -> None:
    data = tmp_path / "data"
    app = RunningApp(data)
    try:
        app.start()
        # -- first start: instance written, pools set, sensors on by default --------------------
        yaml_text = (data / "dagster_home" / "dagster.yaml").read_text()
        assert "max_concurrent_runs: 1" in yaml_text and "default_limit: 1" in yaml_text
        # no "join the Dagster community" dialog over a first visit's page (the instance's `nux`)
        assert app.graphql("{ shouldShowNux }")["shouldShowNux"] is False
        pools = app.graphql("{ instance { concurrencyLimits { concurrencyKey slotCount } } }")
        slots = {p["concurrencyKey"]: p["slotCount"] for p in pools["instance"]["concurrencyLimits"]}
        expected = {"duckdb": 1, **{f"{s}_api": 1 for s in ("shopify", "poweroffice", "squarespace",
                                                               "customcrm", "customwebshop")}}
        assert {k: slots.get(k) for k in expected} == expected
        sensors = app.sensors()
        assert {s["status"] for s in sensors.values()} == {"RUNNING"}, sensors
        assert {"shopify_changes", "poweroffice_changes"} <= set(sensors)
        assert "sync_automation" not in sensors  # nothing materializes downstream by itself
        log = app.log()
        assert f"Dagster UI on http://127.0.0.1:{app.ui_port}" in log
        assert f"TALK_SHOPIFY_URL={app.sandbox_url('shopify')}" in log

        # a user edit in a sandbox, made through the real API's path
        customers = requests.get(_shopify(app, "customers.json?limit=1"), headers=SHOPIFY_TOKEN, timeout=10)
        customers.raise_for_status()
        cid = customers.json()["customers"][0]["id"]
        note = f"edited before restart {time.time():.0f}"
        r = requests.put(_shopify(app, f"customers/{cid}.json"), headers=SHOPIFY_TOKEN,
                         json={"customer": {"id": cid, "note": note}}, timeout=10)
        r.raise_for_status()
        deadline = time.monotonic() + 120  # the daemon's first sensor ticks come some seconds after start
        runs_before: set[str] = set()
        while not runs_before and time.monotonic() < deadline:
            runs_before = {r["runId"] for r in app.runs()}
            if not runs_before:
                time.sleep(2)
        assert runs_before, "the sensors' first ticks requested no run"

        # -- SIGTERM: everything stops, nothing is left --------------------------------------------
        started = time.monotonic()
        assert app.stop(signal.SIGTERM) == 0, app.log_tail()
        took = time.monotonic() - started
        time.sleep(1.0)
        assert app.leftover_processes() == [], app.log_tail()
        assert "sandbox data saved" in app.log()
        assert sorted(p.stem for p in (data / "sandbox").glob("*.pickle")) == sorted(
            ["shopify", "poweroffice", "squarespace", "customcrm", "customwebshop"])
        assert took < 60, f"stopping took {took:.0f}s"

        # -- second start on the same data dir: same instance, runs and sandbox records -----------
        yaml_mtime = (data / "dagster_home" / "dagster.yaml").stat().st_mtime
        app2 = RunningApp(data, port_base=app.port_base, ui_port=app.ui_port)
        app = app2
        app.start()
        assert "restored from" in app.log()[app.log_offset:]
        again = requests.get(_shopify(app, f"customers/{cid}.json"), headers=SHOPIFY_TOKEN, timeout=10)
        again.raise_for_status()
        assert again.json()["customer"]["note"] == note
        assert runs_before <= {r["runId"] for r in app.runs(limit=200)}
        assert (data / "dagster_home" / "dagster.yaml").stat().st_mtime == yaml_mtime

        # Ctrl-C (SIGINT) stops as cleanly as SIGTERM
        assert app.stop(signal.SIGINT) == 0, app.log_tail()
        time.sleep(1.0)
        assert app.leftover_processes() == [], app.log_tail()
    finally:
        app.kill()
