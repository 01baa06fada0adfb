"""The Dagster UI in headless Chromium, as a new user meets it after `make run`.

Starts `talk-assets run` on free ports, opens the asset graph, follows one dataflow's lineage end to
end (PowerOffice GO customers -> ... -> pushed to Shopify), materializes an asset from its page and
waits for the run to succeed. Screenshots go to docs/screenshots/ for the README.

Needs Chromium and the `playwright` package (deploy/install-browser.sh installs both). Without them
the test skips and says why; with TALK_REQUIRE_BROWSER=1 (CI) it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from talk_assets_tests.ui.app import LOCATION, REPOSITORY, RunningApp

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]
# one dataflow's lineage, source to target: PowerOffice GO customers end up as Shopify customers
FLOW = ["poweroffice/customers", "poweroffice/collected/customers", "merge/customer", "shopify/mapped/customer",
        "shopify/pushed/customer", "sync/links"]
MATERIALIZE = "poweroffice/collected/customers"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("TALK_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                      shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _unavailable(reason: str) -> None:
    msg = f"{reason}; run deploy/install-browser.sh to install it"
    if os.environ.get("TALK_REQUIRE_BROWSER") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the UI test needs the `playwright` Python package, which is not installed")
    exe = chromium_path()
    if exe is None:
        _unavailable("the UI test needs Chromium (/usr/bin/chromium), which is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    running = RunningApp(tmp_path_factory.mktemp("ui") / "data")
    try:
        yield running.start(timeout=480)
    finally:
        try:
            running.stop()
        finally:
            running.kill()


@pytest.fixture
def page(browser: Any, app: RunningApp) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000}, base_url=app.url)
    ctx.set_default_timeout(30_000)
    pg = ctx.new_page()
    try:
        yield pg
    finally:
        ctx.close()


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def test_sensors_run_by_default(page: Any, app: RunningApp) -> None:
    assert {s["status"] for s in app.sensors().values()} == {"RUNNING"}
    page.goto("/automation", wait_until="load")
    page.get_by_text("poweroffice_changes").first.wait_for()
    # each row's details load after the names, one by one: wait for the fifth sensor's
    page.get_by_text("Standard sensor").nth(4).wait_for(timeout=120_000)
    page.wait_for_timeout(3000)
    shot(page, "automation-sensors")


def test_asset_graph_and_flow_lineage(page: Any, app: RunningApp) -> None:
    # the whole graph, grouped left to right: <system>_in -> merge -> sync -> <system>_out
    page.goto("/asset-groups", wait_until="load")
    page.get_by_text("Materialize all (").first.wait_for()
    for group in ("shopify_in", "poweroffice_in", "merge", "sync", "shopify_out"):
        page.locator(f"[data-tooltip='{group}']").first.wait_for()
    page.wait_for_timeout(1500)
    shot(page, "asset-graph")

    # every asset on a path from the PowerOffice source to the Shopify push: the flow's five, and the
    # other customer mappings the push waits for (all targets of a type are judged before any is written)
    selection = f'key:"{FLOW[0]}"+ and +key:"{FLOW[-2]}"'
    page.goto("/asset-groups~" + urllib.parse.quote(selection, safe="") + "/", wait_until="load")
    page.get_by_text("Materialize all (").first.wait_for()
    for _ in range(len(FLOW)):  # open the groups so the assets show
        icons = page.locator("foreignObject.group [aria-label=unfold_more]")
        if icons.count() == 0:
            break
        # a group laid out under the selection bar cannot take a pointer click (the bar intercepts it):
        # the click is dispatched on the icon itself
        icons.first.dispatch_event("click")
        page.wait_for_timeout(500)
    # the UI keeps opened groups; a reload lays the opened graph out to fit a wide window
    page.set_viewport_size({"width": 2400, "height": 900})
    page.reload(wait_until="load")
    page.locator("[data-svg-viewport]").first.wait_for()
    page.wait_for_timeout(2500)
    shot(page, "flow-lineage")
    page.set_viewport_size({"width": 1600, "height": 1000})

    # each hop of the flow, as the asset pages show it: the next asset is linked as downstream (up to the
    # push; a push's page lists the pushes that wait for it before `sync/links`, checked below)
    for upstream, downstream in zip(FLOW[:-1], FLOW[1:-1], strict=False):
        page.goto(f"/assets/{upstream}", wait_until="load")
        page.locator(f'a[href^="/assets/{downstream}"]').first.wait_for()
        if upstream == "merge/customer":
            page.wait_for_timeout(1000)
            shot(page, "asset-merge-customer")

    # and the same edges in the definitions the UI serves
    nodes = app.graphql("{ assetNodes { assetKey { path } dependencyKeys { path } } }")["assetNodes"]
    deps = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes}
    for upstream, downstream in zip(FLOW, FLOW[1:], strict=False):
        assert upstream in deps[downstream], f"{downstream} does not depend on {upstream}"


CRM_KEY = {"Authorization": "Bearer crm-sandbox-api-key"}


def _wait_runs_done(app: RunningApp, timeout: float = 240) -> None:
    """Until no run is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = app.runs()
        if all(r["status"] not in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED") for r in runs):
            return
        time.sleep(2)
    raise AssertionError(f"runs still going after {timeout:.0f}s: {[r['status'] for r in app.runs()]}")


def _launch_sync(app: RunningApp, assets: list[list[str]] | None = None) -> str:
    """A run of `sync_job` (of these assets only, when given), launched as the Launchpad does."""
    selector: dict[str, Any] = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": "sync_job"}
    if assets is not None:
        selector["assetSelection"] = [{"path": path} for path in assets]
    res = app.graphql("""mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
        ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
                      {"p": {"selector": selector, "runConfigData": {}}})["launchRun"]
    assert res["__typename"] == "LaunchRunSuccess", res
    return res["run"]["runId"]


def _run_to_end(app: RunningApp, run_id: str, timeout: float = 240) -> str:
    """Wait for a run to end; it must succeed."""
    deadline = time.monotonic() + timeout
    while app.run_status(run_id) not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        time.sleep(2)
    assert app.run_status(run_id) == "SUCCESS", app.log_tail(80)
    return run_id


def _latest_markdown(app: RunningApp, path: list[str], label: str) -> str:
    """A Markdown metadata entry of an asset's latest materialization, as the UI's GraphQL serves it."""
    data = app.graphql("""query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset {
        assetMaterializations(limit: 1) { runId metadataEntries { label ... on MarkdownMetadataEntry { mdStr } } } } } }""",
                       {"k": {"path": path}})["assetOrError"]
    entries = data["assetMaterializations"][0]["metadataEntries"] if data.get("assetMaterializations") else []
    return next((e.get("mdStr") or "" for e in entries if e["label"] == label), "")


def _show_markdown(page: Any, entry: str) -> Any:
    """Open a Markdown metadata entry of the selected event ([Show Markdown]) and return its dialog."""
    row = page.locator("tr", has=page.get_by_text(entry, exact=True)).first
    row.wait_for()
    button = row.get_by_text("[Show Markdown]")
    if button.count():
        button.first.click()
        dialog = page.get_by_role("dialog").first
        dialog.wait_for()
        page.wait_for_timeout(800)
        return dialog
    return row


def test_why_and_what_differs_on_the_asset_pages(page: Any, app: RunningApp) -> None:
    # the sensors' first ticks come one by one, each requesting a full run: stop them and drop the runs
    # still queued (the whole run below does their work), so that run is the latest materialization of
    # what it changes; a run already started ends first (it holds the state file)
    app.stop_sensors()
    time.sleep(2)  # a tick already under way may still request a run
    app.cancel_runs(queued_only=True)
    _wait_runs_done(app)
    # one whole run first, so the run after the edit compares with a merge that had everything
    # (a run requested by a sensor's first tick may have collected only one system)
    _run_to_end(app, _launch_sync(app))
    # a customer edited in the CRM: which value won and why shows on merge/customer, the old and new
    # values on the mapped assets of the systems it goes to, the new link version on sync/links
    crm = f"{app.sandbox_url('customcrm')}/api/v1/customers"
    rows = requests.get(f"{crm}?limit=50", headers=CRM_KEY, timeout=10).json()
    rows = rows.get("data", rows) if isinstance(rows, dict) else rows
    person = next(r for r in rows if r.get("customer_type") == "person" and r.get("email"))
    r = requests.patch(f"{crm}/{person['id']}", headers=CRM_KEY, json={"phone": "+47 41234567"}, timeout=10)
    r.raise_for_status()
    # what a sensor requests for a CRM customer change: the assets downstream of its collect
    from talk_assets.sync.declaration import SOURCES_BY_KEY
    from talk_assets.sync.sensors import downstream_of

    selection = downstream_of((SOURCES_BY_KEY["customcrm.customers"],))
    run_id = _run_to_end(app, _launch_sync(app, [k.path for k in selection]))

    latest = _latest_markdown(app, ["merge", "customer"], "provenance_changed")
    assert "+4741234567" in latest, f"run {run_id}: the CRM edit is not in provenance_changed:\n{latest[:3000]}"
    page.goto("/assets/merge/customer?view=events", wait_until="load")
    dialog = _show_markdown(page, "provenance_changed")
    dialog.get_by_text("from (system record)").first.wait_for()
    dialog.screenshot(path=str(SHOTS / "provenance-merge-customer.png"))
    page.keyboard.press("Escape")

    mats = app.graphql("""{ assetNodes { assetKey { path } assetMaterializations(limit: 1) {
        metadataEntries { label ... on IntMetadataEntry { intValue } } } } }""")["assetNodes"]
    updated = ["/".join(n["assetKey"]["path"]) for n in mats if n["assetKey"]["path"][1:2] == ["mapped"]
               and n["assetMaterializations"] and any(e["label"] == "update" and e.get("intValue")
                                                     for e in n["assetMaterializations"][0]["metadataEntries"])]
    assert updated, "no mapped asset has an update after the edit"
    target = next((k for k in updated if k.endswith("/customer") or k.endswith("/customers")), updated[0])
    page.goto(f"/assets/{target}?view=events", wait_until="load")
    dialog = _show_markdown(page, "what_differs")
    dialog.get_by_text("old", exact=True).first.wait_for()
    dialog.screenshot(path=str(SHOTS / "what-differs-mapped.png"))
    differs = _latest_markdown(app, target.split("/"), "what_differs")
    assert "+4741234567" in differs, f"{target}: the CRM edit is not in what_differs:\n{differs[:3000]}"
    page.keyboard.press("Escape")

    page.goto("/assets/sync/links?view=events", wait_until="load")
    page.get_by_text("changes", exact=True).first.wait_for()
    page.wait_for_timeout(1500)
    shot(page, "links-versions")


def test_materialize_from_the_ui(page: Any, app: RunningApp) -> None:
    # The sensors' first ticks queued full sync runs (one run at a time). Stop them and clear the
    # queue so this run starts now: the test is about the button, and must stay within minutes.
    app.stop_sensors()
    time.sleep(2)  # a tick already under way may still request a run
    app.cancel_runs()
    before = {r["runId"] for r in app.runs()}

    page.goto(f"/assets/{MATERIALIZE}", wait_until="load")
    button = page.get_by_role("button").filter(has_text=re.compile(r"^\s*Materialize\s*$"))
    button.first.wait_for()
    page.wait_for_timeout(500)
    button.first.click()

    run_id = None
    deadline = time.monotonic() + 30
    while run_id is None and time.monotonic() < deadline:
        new = [r for r in app.runs() if r["runId"] not in before
               and [p["path"] for p in r["assetSelection"] or []] == [MATERIALIZE.split("/")]]
        if new:
            run_id = new[0]["runId"]
        else:
            time.sleep(0.5)
    assert run_id, "clicking Materialize launched no run"
    app.cancel_runs(keep={run_id})  # nothing else ahead of it in the one-run queue

    page.goto(f"/runs/{run_id}", wait_until="load")
    status = "QUEUED"
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        status = app.run_status(run_id)
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    page.wait_for_timeout(2500)  # the run page polls every 2 s
    shot(page, "run-materialize")
    assert status == "SUCCESS", f"run {run_id} ended {status}:\n{app.log_tail(80)}"

    page.goto(f"/assets/{MATERIALIZE}", wait_until="load")
    page.locator(f'a[href*="/runs/{run_id}"]').first.wait_for()  # the latest materialization's run
    page.wait_for_timeout(1000)
    shot(page, "asset-materialized")
