"""Everything Dagster loads: `dagster dev -w workspace.yaml` reads `defs` from here, and
`talk-assets sync` runs the same `sync_job` in process (talk_assets/sync/runner.py)."""

import warnings
from functools import cache
from typing import Any

import dagster as dg

from talk_assets.config import SYSTEMS
from talk_assets.resources import build_resources
from talk_assets.sync.assets import HTTP, HttpTuning, sync_assets
from talk_assets.sync.assets import system_assets as assets_of
from talk_assets.sync.sensors import all_sensors

warnings.filterwarnings("ignore", category=dg.BetaWarning)

JOB_NAME = "sync_job"

sync_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.all(),
    description="One cycle: collect every system entity, merge, update the link table, map every target, run the "
                "blocking checks and push what they let through (references first).",
    executor_def=dg.in_process_executor,
)


def all_resources(http: HttpTuning | None = None) -> dict[str, object]:
    """The five system resources and the clients' timeout/retry tuning (client defaults unless given)."""
    return {**build_resources(), HTTP: http or HttpTuning()}


# every registered system's assets, generated from its declaration; merge and links are shared
system_assets = [a for key in SYSTEMS for a in assets_of(key)]


def build_defs(resources: dict[str, object] | None = None) -> dg.Definitions:
    """The definitions, with resources built from the environment now (or the ones given).

    No automation sensor: a materialization on demand runs what was selected, nothing downstream by
    surprise; the change sensors request runs of what a change reaches, and the settle sensor a run that
    merges what a push read back (`sensors.build_settle_sensor`).
    """
    return dg.Definitions(
        assets=[*system_assets, *sync_assets()],
        resources=resources or all_resources(),
        jobs=[sync_job],
        sensors=all_sensors(),
    )


defs = build_defs()


@cache
def asset_graph() -> Any:
    """The assembled graph, built once per process: a selection resolved against a list of assets builds
    the graph again each time (0.2-0.3 s in a cycle's plan or a sensor's request), against this one in
    well under a millisecond."""
    return defs.resolve_asset_graph()
