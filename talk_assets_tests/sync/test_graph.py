"""The whole asset graph, materialized in an ephemeral Dagster instance against the five sandboxes."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import dagster as dg
import pytest

from talk_assets.definitions import all_resources, defs
from talk_assets.sync.assets import all_assets
from talk_assets.sync.declaration import DATAFLOWS, GENERIC_MAILBOXES, SOURCES_BY_KEY, VIEWS
from talk_assets.sync.merge import table
from talk_assets.sync.store import connect
from talk_assets_tests.conftest import Sandbox


def test_definitions_load_with_every_source_and_flow() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for src in SOURCES_BY_KEY.values():
        assert f"{src.system}/{src.entity}" in keys
        assert f"{src.system}/collected/{src.entity}" in keys
    for flow in DATAFLOWS:
        assert f"{flow.target.system}/mapped/{flow.target.vkey.split('.', 1)[1]}" in keys
    assert {"merge/customer", "merge/product", "merge/order", "merge/user", "sync/links"} <= keys


@pytest.fixture(scope="module")
def graph_run(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> tuple[dg.ExecuteInProcessResult, Path]:
    sandbox.reset()
    data = tmp_path_factory.mktemp("graph")
    mp = pytest.MonkeyPatch()
    mp.setenv("TALK_DATA_DIR", str(data))
    try:
        result = dg.materialize(all_assets(), resources=all_resources(),
                                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    finally:
        mp.undo()
    return result, data


def _con(data: Path):  # noqa: ANN202 - a context manager
    return connect(data / "talk.duckdb")


def test_whole_graph_materializes_and_checks_pass(graph_run: tuple[dg.ExecuteInProcessResult, Path]) -> None:
    result, _ = graph_run
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    evaluations = result.get_asset_check_evaluations()
    assert evaluations, "no asset check ran"
    failed = [(e.asset_check_key.to_user_string(), e.metadata) for e in evaluations
              if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    assert not failed, failed
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    links = mats["sync/links"].materialization
    assert links.metadata["rows"].value > 0


def test_every_group_of_records_sharing_an_email_is_one_customer(graph_run: tuple[dg.ExecuteInProcessResult, Path],
                                                                 sandbox: Sandbox) -> None:
    _, data = graph_run
    customer_views = [v for v in VIEWS if v.global_type == "customer"]
    with _con(data) as con:
        rows = con.execute(" UNION ALL ".join(
            f"SELECT n.nsid, n.email, {'n.is_person' if 'is_person' in v.read_props else 'NULL'} AS is_person, m.gid "
            f"FROM {table('norm', v.vkey)} n JOIN members_customer m USING (nsid)" for v in customer_views)).fetchall()
    by_email: dict[str, set[str]] = defaultdict(set)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for nsid, email, _person, _gid in rows:
        if email:
            counts[(nsid.split(":")[0], email)] += 1
    for nsid, email, person, gid in rows:
        shared = counts[(nsid.split(":")[0], email)] > 1
        generic = email and email.split("@")[0] in GENERIC_MAILBOXES and person != "false"
        if email and not shared and not generic:
            by_email[email].add(gid)
    assert len(by_email) > 50
    split = {e: g for e, g in by_email.items() if len(g) > 1}
    assert not split, f"records sharing an e-mail ended up in different customers: {list(split.items())[:5]}"
    multi = sum(1 for e in by_email if sum(1 for r in rows if r[1] == e) > 1)
    assert multi > 10, "the seed data should overlap across systems"


def test_every_source_record_has_a_mapped_row_in_each_flow(graph_run: tuple[dg.ExecuteInProcessResult, Path]) -> None:
    _, data = graph_run
    with _con(data) as con:
        for flow in DATAFLOWS:
            src, tgt = flow.source, flow.target
            members = f"members_{src.global_type}"
            if flow.only:  # CRM users reach Shopify orders as the orders' staff user
                missing = con.execute(
                    f"""SELECT o.gid FROM members_order o JOIN merged_order g USING (gid)
                        JOIN {table('mapped', tgt.vkey)} m USING (gid)
                        WHERE o.view = 'customcrm.order' AND g."user" NOT IN (SELECT gid FROM members_user)"""
                ).fetchall()
                assert not missing, flow.key
                continue
            where = "" if flow.link_mode != "merge-only" else \
                f"AND s.gid IN (SELECT gid FROM {members} WHERE view = '{tgt.vkey}')"
            total, missing = con.execute(
                f"""SELECT count(*), count(*) FILTER (WHERE m.gid IS NULL)
                    FROM {members} s LEFT JOIN {table('mapped', tgt.vkey)} m USING (gid)
                    WHERE s.view = '{src.vkey}' {where}"""
            ).fetchall()[0]
            assert total > 0, f"{flow.key}: no source records in the seed data"
            assert missing == 0, f"{flow.key}: {missing} of {total} source records have no mapped row"
