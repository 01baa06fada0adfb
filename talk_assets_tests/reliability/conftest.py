"""The reliability suite's module fixture: the shared sandbox reset to a small world, a private state dir."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from talk_assets_tests.conftest import SIZE as SUITE_SIZE
from talk_assets_tests.conftest import Sandbox
from talk_assets_tests.reliability.support import Harness


def soak() -> bool:
    """`TALK_SOAK=1` runs the long variants (more rounds, more kills)."""
    return os.environ.get("TALK_SOAK", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def rel(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    saved = os.environ.get("TALK_DATA_DIR")
    h = Harness(sandbox, tmp_path_factory.mktemp("reliability"))
    os.environ["TALK_DATA_DIR"] = str(h.data)
    h.reset()
    try:
        yield h
    finally:
        # leave the shared sandbox as the rest of the suite expects it: its size, no faults
        for s in h.box.servers:
            h.box.control(s, "POST", "reset", json={"size": SUITE_SIZE})
        h.faults()
        if saved is None:
            os.environ.pop("TALK_DATA_DIR", None)
        else:
            os.environ["TALK_DATA_DIR"] = saved
