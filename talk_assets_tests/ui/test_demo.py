"""The demo as a newcomer starts it: `make run`'s default sandbox (seed 1, size 200) converges with no
dead letters and no per-cycle skip noise; what the sync does not write is held, once, with a reason."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from talk_assets.config import SYSTEMS
from talk_assets.sandbox.runner import start_all
from talk_assets.settings import environment
from talk_assets_tests.conftest import Sandbox
from talk_assets_tests.harness import SyncHarness

pytestmark = pytest.mark.timeout(1800)

DEFAULT_SEED, DEFAULT_SIZE = 1, 200  # `talk-assets sandbox` / `make run` (talk_assets/sandbox/runner.py)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncHarness]:
    servers = start_all(seed=DEFAULT_SEED, size=DEFAULT_SIZE, ephemeral_ports=True)
    env = {SYSTEMS[k].url_env: srv.url for k, srv in servers.items()}
    env.update({f"TALK_{k.upper()}_MAX_RPS": "2000" for k in servers})
    env["TALK_DATA_DIR"] = ""
    box = Sandbox(servers)
    try:
        with environment(env):
            box.reset()
            yield SyncHarness(box, tmp_path_factory.mktemp("demo"))
    finally:
        for srv in servers.values():
            srv.stop()

def test_the_default_sandbox_converges_without_dead_letters_or_skips(demo: SyncHarness) -> None:
    cycles = demo.until_quiet(limit=6)
    assert demo.sql("SELECT view, status, error FROM dead_letters") == []
    noisy = {k: (p.failed, p.skipped) for r in demo.reports for k, p in r.pushed.items() if p.failed or p.skipped}
    assert noisy == {}, noisy
    # the seed's shared mailboxes (PowerOffice organisations whose firmapost@ address a Shopify
    # customer has) and its customer without e-mail are held in the mapping, each with its reason
    held = demo.sql("SELECT held_reason FROM mapped_shopify_customer WHERE action = 'held' ORDER BY held_reason")
    mailbox = [r for (r,) in held if "already has the email firmapost@" in r]
    assert len(mailbox) == 3, held
    assert any(r.startswith("no email in any linked record") for (r,) in held), held
    mapped = demo.instance.get_latest_materialization_event(
        dg.AssetKey(["shopify", "mapped", "customer"])).asset_materialization
    assert mapped.metadata["held"].value == len(held)
    shown = mapped.metadata["held_records"].value
    assert "firmapost@" in shown and "one customer per email" in shown
    print(f"demo: quiet after {cycles} cycles; held {len(held)}")
