"""Fixtures of the sync tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import duckdb
import pytest

from talk_assets.sync.store import SCHEMA
from talk_assets_tests.conftest import Sandbox, Worlds
from talk_assets_tests.harness import SyncHarness


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory state with the store's schema (the small hand-made worlds of test_merge/test_echo)."""
    c = duckdb.connect()
    c.execute(SCHEMA)
    yield c
    c.close()


class Sync(SyncHarness):
    """The shared harness (talk_assets_tests/harness.py), strict: a cycle with errors fails the test."""

    def until_quiet(self, limit: int = 5) -> int:
        return super().until_quiet(limit)


@pytest.fixture(scope="module")
def sync(sandbox: Sandbox, worlds: Worlds, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sync]:
    """test_sync.py's and test_sync_cli_and_quiet.py's world: the suite's size, synced until quiet, each
    module with its own copy and state file."""
    sandbox.reset()
    saved = os.environ.get("TALK_DATA_DIR")
    s = Sync(sandbox, tmp_path_factory.mktemp("sync"))
    worlds.converge(s, limit=4)  # synced until quiet (once per test process; a copy of it here after)
    yield s
    s.faults()
    if saved is None:
        os.environ.pop("TALK_DATA_DIR", None)
    else:
        os.environ["TALK_DATA_DIR"] = saved
