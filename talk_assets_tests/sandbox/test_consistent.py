"""The consistent seed (issue #15): sandboxes that start with the records the sync itself makes, so a
first cycle on a new state file links every record as the normal convergence linked it and writes
nothing. Real sync cycles (`run_cycle`, Dagster's sync_job) over HTTP against the five sandboxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests

from talk_assets.config import SYSTEMS
from talk_assets.sandbox.consistent import CACHE_ENV, folder_for, make_consistent
from talk_assets.sandbox.runner import start_all
from talk_assets.sandbox.server import SandboxServer
from talk_assets.sandbox.store import Table
from talk_assets.settings import environment

SEED, SIZE = 7, 20


def _env(servers: dict[str, Any], state: Path) -> dict[str, str]:
    return {"TALK_DATA_DIR": str(state), "DAGSTER_HOME": str(state / "dagster_home"),
            "TALK_CIRCUIT_BREAKER_SHARE": "1.0",
            **{SYSTEMS[k].url_env: s.url for k, s in servers.items()},
            **{f"TALK_{k.upper()}_MAX_RPS": "2000" for k in servers}}


def _rows(servers: dict[str, Any]) -> dict[str, int]:
    """Records per system, over every table of its app."""
    return {k: sum(len(v) for v in vars(s.app).values() if isinstance(v, Table)) for k, s in servers.items()}


def _reset(url: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{url}/_sandbox/reset", json=body, timeout=120)


def _groups(state: Path, servers: dict[str, Any]) -> set[frozenset[tuple[str, str]]]:
    """The link table as a partition of records: one set of (view, record id) per entity."""
    from talk_assets.sync.store import connect

    with environment(_env(servers, state)), connect() as con:
        rows = con.execute("SELECT gid, view, record_id FROM links").fetchall()
    out: dict[str, set[tuple[str, str]]] = {}
    for gid, view, rid in rows:
        out.setdefault(gid, set()).add((view, rid))
    return {frozenset(v) for v in out.values()}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def worlds() -> Iterator[list[dict[str, Any]]]:
    started: list[dict[str, Any]] = []
    yield started
    for servers in started:
        for s in servers.values():
            s.stop()


def test_a_consistent_world_links_everything_in_one_cycle_without_writes(
        tmp_path: Path, cache: Path, worlds: list[dict[str, Any]]) -> None:
    from talk_assets.sync.runner import run_cycle
    from talk_assets.sync.store import connect, first

    # the normal convergence, by the engine, kept: its link table is the reference
    normal = start_all(seed=SEED, size=SIZE, ephemeral_ports=True)
    worlds.append(normal)
    made = make_consistent(normal, SEED, SIZE, state_dir=tmp_path / "normal")
    assert not made.restored and made.cycles[-1][1] == 0 and sum(w for _, w in made.cycles) > 0
    assert (folder_for(SEED, SIZE, list(normal)) / "complete").exists()
    reference = _groups(tmp_path / "normal", normal)
    assert sum(1 for g in reference if len(g) > 1) > 10  # linked entities across systems

    # a new start of the same seed and size: restored from the cache, nothing converged again
    fresh = start_all(seed=SEED, size=SIZE, ephemeral_ports=True)
    worlds.append(fresh)
    again = make_consistent(fresh, SEED, SIZE)
    assert again.restored and again.cycles == []
    for key, srv in fresh.items():
        assert srv.app.stats()["writes"] == 0, key

    # one full cycle on a new state file: reads everything, writes nothing, links as the normal run did
    state = tmp_path / "fresh"
    with environment(_env(fresh, state)):
        instance = dg.DagsterInstance.ephemeral()
        try:
            rep = run_cycle(full=True, instance=instance)
        finally:
            instance.dispose()
        assert rep.success and not rep.errors and not rep.rejected, (rep.errors, rep.rejected[:5])
        assert rep.writes == 0, {k: (p.created, p.updated) for k, p in rep.pushed.items() if p.created or p.updated}
        assert sum(c.read for c in rep.collected.values()) > 0
        with connect() as con:
            dead = first(con, "SELECT count(*) FROM dead_letters")
        assert dead == (0,)
    # the sandboxes agree: no request that could change data reached any of them
    assert {k: s.app.stats()["writes"] for k, s in fresh.items()} == dict.fromkeys(fresh, 0)
    assert _groups(state, fresh) == reference

    # the control API puts the consistent world back after a run changed data; a plain reset does not
    consistent_rows = _rows(fresh)
    for srv in fresh.values():
        assert _reset(srv.url, {}).status_code == 200
    assert _rows(fresh) != consistent_rows
    for srv in fresh.values():
        resp = _reset(srv.url, {"consistent": True})
        assert resp.status_code == 200 and resp.json()["consistent"] is True
    assert _rows(fresh) == consistent_rows


def test_a_consistent_reset_without_a_made_world_says_what_to_run(cache: Path) -> None:
    from talk_assets.systems import system

    srv = SandboxServer(system("customcrm").sandbox(seed=99, size=5), port=0).start()
    try:
        resp = _reset(srv.url, {"consistent": True})
        assert resp.status_code == 409
        text = resp.text
        assert "talk-assets sandbox --consistent --seed 99 --size 5" in text and CACHE_ENV in text
    finally:
        srv.stop()


def test_the_convergence_does_not_wait_for_shopifys_cost_bucket_on_a_fresh_sandbox() -> None:
    """The fast path must reach Shopify's cost bucket even before any GraphQL request built the sandbox's
    GraphQL API (it is built on first use): else the convergence's creates were paced at the standard
    plan's 100 points/s, and a world of 115,000 took hours instead of minutes."""
    from talk_assets.sandbox.consistent import _fast

    servers = start_all(seed=SEED, size=SIZE, systems=["shopify"], ephemeral_ports=True)
    headers = {"X-Shopify-Access-Token": SYSTEMS["shopify"].settings["access_token"].default}
    try:
        with _fast(servers):
            r = requests.post(f"{servers['shopify'].url}/admin/api/2026-07/graphql.json",
                              headers=headers, json={"query": "{ shop { name } }"}, timeout=30)
            status = r.json()["extensions"]["cost"]["throttleStatus"]
            assert status["maximumAvailable"] >= 1e9 and status["restoreRate"] >= 1e9, status
        r = requests.post(f"{servers['shopify'].url}/admin/api/2026-07/graphql.json",
                          headers=headers, json={"query": "{ shop { name } }"}, timeout=30)
        assert r.json()["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 2000  # put back
    finally:
        for srv in servers.values():
            srv.stop()
