"""What Dagster's UI shows about a sync, read from the instance as the UI reads it: provenance on the
merge assets, old -> new on the mapped assets, the link table's versions as its materializations."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets.sync.display import cell, plain, shorten
from talk_assets_tests.conftest import Sandbox
from talk_assets_tests.harness import REPO, SyncHarness

pytestmark = pytest.mark.timeout(1200)  # a module of sync cycles on a machine shared by many

CRM = VIEWS_BY_KEY["customcrm.customer"]
WEBSHOP = VIEWS_BY_KEY["customwebshop.customer"]


@pytest.fixture(scope="module")
def ui(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncHarness]:
    sandbox.reset()
    saved = os.environ.get("TALK_DATA_DIR")
    h = SyncHarness(sandbox, tmp_path_factory.mktemp("ui-meta"))
    h.until_quiet(limit=5)
    yield h
    if saved is None:
        os.environ.pop("TALK_DATA_DIR", None)
    else:
        os.environ["TALK_DATA_DIR"] = saved


def materializations(h: SyncHarness, key: str) -> list[dg.AssetMaterialization]:
    records = h.instance.fetch_materializations(dg.AssetKey(key.split("/")), limit=10_000).records
    out = [r.asset_materialization for r in records]
    return sorted(out, key=lambda m: m.metadata["version"].value if "version" in m.metadata else 0)


def md(m: dg.AssetMaterialization, name: str) -> str:
    return m.metadata[name].value


def test_cells_are_readable() -> None:
    assert plain(422.0) == "422" and plain(float("nan")) == ""
    import numpy as np

    assert plain(np.array(["phone", "email"], dtype=object)) == "phone, email"
    text = "Storgata 1 " + "lang " * 30
    short = shorten(text, 40)
    assert len(short) <= 40 and short.endswith("…") and text.startswith(short[:-1])
    assert short[:-1].split(" ")[-1] in text.split(" ")  # no word cut in half
    assert cell("a|b\nc") == "a\\|b c"
    assert shorten("x" * 10_000, 20) == "x" * 19 + "…"


def test_each_link_version_is_one_materialization_of_the_link_table(ui: SyncHarness) -> None:
    versions = ui.sql("SELECT version FROM link_versions ORDER BY version")
    mats = materializations(ui, "sync/links")
    assert [m.metadata["version"].value for m in mats] == [v for (v,) in versions]
    # a quiet cycle changes no link: no version, no materialization
    ui.cycle()
    assert len(ui.sql("SELECT version FROM link_versions")) == len(versions)
    assert len(materializations(ui, "sync/links")) == len(mats)
    # each event says what changed; the first one added every link
    first = mats[0]
    assert first.metadata["added"].value == first.metadata["rows"].value > 0
    assert "| change |" in md(first, "changes") and "added" in md(first, "changes")
    # `links --at` answers for every version the Events tab lists
    out = subprocess.run([sys.executable, "-m", "talk_assets.cli", "links", "--at", "1"], env=ui.env(), cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) > 5


def test_an_edit_shows_its_provenance_and_its_old_and_new_values(ui: SyncHarness) -> None:
    gid, crm_id = ui.sql(
        "SELECT c.gid, c.record_id FROM links c JOIN links w ON w.gid = c.gid AND w.view = ? WHERE c.view = ? "
        "ORDER BY c.gid LIMIT 1", [WEBSHOP.vkey, CRM.vkey])[0]
    ws_id = ui.member(gid, WEBSHOP)
    old_phone = ui.value(WEBSHOP, ws_id, "phone")
    before = len(materializations(ui, "sync/links"))
    ui.client("customcrm").update_record("customers", crm_id, {"phone": "+4791234567"})
    ui.cycle()

    merge = ui.instance.get_latest_materialization_event(dg.AssetKey(["merge", "customer"])).asset_materialization
    assert merge.metadata["changed_entities"].value >= 1
    changed = md(merge, "provenance_changed")
    assert f"`{gid}`" in changed
    if merge.metadata["changed_entities"].value == 1:  # said as a person would say it
        assert "**1 entity changed in this run**" in changed, changed[:200]
    row = next(line for line in changed.splitlines() if line.startswith("| phone |"))
    assert "+4791234567" in row and f"Custom CRM {CRM.name} {crm_id}" in row
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row)  # the edit's time
    assert "from (system record)" in changed and "| beat |" in changed
    sample = md(merge, "provenance_sample")
    assert "| property | value | from (system record) | edited at | beat |" in sample

    mapped = ui.instance.get_latest_materialization_event(
        dg.AssetKey(["customwebshop", "mapped", "customer"])).asset_materialization
    differs = md(mapped, "what_differs")
    header = differs.splitlines()[0]
    assert header == "| gid | record | action | field | old | new |"
    line = next(ln for ln in differs.splitlines() if "+4791234567" in ln)
    assert f"| {ws_id} | update |" in line and (plain(old_phone) or "") in line
    assert "array(" not in differs and "[" not in differs.replace("\\[", "")
    assert not re.search(r"\b\d+\.0\b", differs)

    # the write is one new link version (the payload written), reported once
    mats = materializations(ui, "sync/links")
    assert len(mats) == before + 1
    assert mats[-1].metadata["written"].value >= 1
    assert [m.metadata["version"].value for m in mats] == [v for (v,) in ui.sql(
        "SELECT version FROM link_versions ORDER BY version")]


def test_asset_descriptions_are_one_line_first(ui: SyncHarness) -> None:
    from talk_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        desc: Any = graph.get(key).description
        assert desc, f"{key.to_user_string()} has no description"
        first_line = desc.split("\n", 1)[0]
        assert first_line.endswith("."), f"{key.to_user_string()}: {first_line!r}"
        assert len(first_line.split(". ")[0]) <= 160, f"{key.to_user_string()}: {first_line!r}"


def test_a_changed_entity_shows_under_changed_even_when_it_is_also_in_the_sample(ui: SyncHarness) -> None:
    # found by CI: the UI test edited a CRM person that happened to be one of the two entities with the
    # most records; the changed list left out the sample's entities, so it read "1 entity changed" over "(none)"
    gid = ui.sql("SELECT gid FROM merged_customer ORDER BY record_count DESC, gid LIMIT 1")[0][0]
    crm_id = ui.member(gid, CRM)
    assert crm_id is not None
    ui.client("customcrm").update_record("customers", crm_id, {"phone": "+4790000001"})
    ui.cycle()
    merge = ui.instance.get_latest_materialization_event(dg.AssetKey(["merge", "customer"])).asset_materialization
    assert gid in md(merge, "provenance_sample")
    changed = md(merge, "provenance_changed")
    assert f"`{gid}`" in changed and "_(none)_" not in changed, changed[:300]
    assert "+4790000001" in changed and "from (system record)" in changed
