"""Run in a subprocess with `TALK_SYSTEMS` set (the systems a deployment uses): load the Dagster
definitions, start the sandboxes of those systems only, sync until quiet with the test harness and
print what `test_registry.py` checks, as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from talk_assets.config import SYSTEMS
from talk_assets.definitions import defs
from talk_assets.resources import client_from_env
from talk_assets.sync.declaration import DATAFLOWS
from talk_assets_tests.conftest import running_sandboxes
from talk_assets_tests.sync.test_sync import Sync


def main(data: Path) -> dict:
    out: dict = {"systems": list(SYSTEMS), "flows": sorted({f.seed for f in DATAFLOWS}), "n_flows": len(DATAFLOWS)}
    out["assets"] = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
    with running_sandboxes() as box:
        out["sandboxes"] = sorted(box.servers)
        sync = Sync(box, data)
        first = sync.cycle()
        out["first_pushed"] = {k: [p.created, p.updated, p.failed, p.held] for k, p in first.pushed.items()}
        out["cycles_to_quiet"] = sync.until_quiet(4)
        out["po_persons"] = [c for c in client_from_env("poweroffice").iter_records("customers")
                             if c.get("EmailAddress") and c.get("IsPerson")]
        out["shopify_emails"] = sorted({(c.get("email") or "").lower()
                                        for c in client_from_env("shopify").iter_records("customer")})
        out["dead"] = sync.sql("SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL")[0][0]
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), default=str))
