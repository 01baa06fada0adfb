"""Run in a subprocess with `TALK_EXTRA_SYSTEMS=talk_assets_tests.example_system.system` (the one line
that registers the example system): load the Dagster definitions, start all six sandboxes, run one
sync cycle with the test harness and print what the test checks, as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from talk_assets.config import SYSTEMS
from talk_assets.definitions import defs
from talk_assets.resources import client_from_env
from talk_assets_tests.conftest import running_sandboxes
from talk_assets_tests.sync.test_sync import Sync


def main(data: Path) -> dict:
    out: dict = {"systems": list(SYSTEMS)}
    out["assets"] = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
    with running_sandboxes() as box:
        out["subscribers"] = list(client_from_env("newsletter").iter_records("subscribers"))
        report = Sync(box, data).cycle()
        out["pushed"] = {k: [p.created, p.updated, p.failed] for k, p in report.pushed.items()}
        out["crm_customers"] = list(client_from_env("customcrm").iter_records("customers"))
        out["links"] = Sync(box, data).sql(
            "SELECT a.record_id, b.record_id FROM links a JOIN links b ON a.gid = b.gid "
            "WHERE a.system = 'newsletter' AND b.system = 'customcrm' ORDER BY a.record_id")
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), default=str))
