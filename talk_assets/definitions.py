"""Everything Dagster loads: `dagster dev -w workspace.yaml` reads `defs` from here."""

import warnings

import dagster as dg

from talk_assets.config import SYSTEMS
from talk_assets.resources import build_resources
from talk_assets.sync.assets import sync_assets
from talk_assets.sync.assets import system_assets as assets_of
from talk_assets.sync.checks import all_checks
from talk_assets.sync.sensors import all_sensors

warnings.filterwarnings("ignore", category=dg.BetaWarning)

sync_job = dg.define_asset_job(
    "sync_job",
    selection=dg.AssetSelection.all(),
    description="One cycle: observe and collect every system entity, merge, update the link table, map and push "
                "every target.",
    executor_def=dg.in_process_executor,
)

automation = dg.AutomationConditionSensorDefinition(
    "sync_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="Brings downstream assets up to date after a materialization on demand (collect -> merge -> "
                "links -> mapped -> pushed).",
)

# every registered system's assets, generated from its declaration; merge and links are shared
system_assets = [a for key in SYSTEMS for a in assets_of(key)]

defs = dg.Definitions(
    assets=[*system_assets, *sync_assets()],
    asset_checks=all_checks(),
    resources=build_resources(),
    jobs=[sync_job],
    sensors=[*all_sensors(), automation],
)
