"""`TALK_SYSTEMS`: a deployment names the systems it uses, and the others are not there at all: no
assets, no sandbox, no flows, and nothing waits for them. Before it, every registered system was
always on: a company without Squarespace had its collects failing every cycle, and since a create
waits until every system holding its type has been read (`push.unread_sources`), nothing was ever
created. Run as a user sets it: in a subprocess, with the variable in the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALK_")}
    return {**env, **extra}


def test_a_deployment_of_two_systems_syncs_them_and_waits_for_no_other(tmp_path: Path) -> None:
    env = _env(TALK_SYSTEMS=" Shopify , poweroffice", TALK_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, "-m", "talk_assets_tests.systems.subset_worker", str(tmp_path / "data")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["systems"] == ["shopify", "poweroffice"]  # registry order, whatever order the variable has
    assert out["sandboxes"] == ["poweroffice", "shopify"]
    assert out["flows"] == ["004"] and out["n_flows"] == 4  # PowerOffice GO -> Shopify: its four flows
    assert not [a for a in out["assets"] if a.split("/")[0] in ("customcrm", "customwebshop", "squarespace")]
    # the first cycle creates: no left-out system is waited for
    created, _updated, failed, _held = out["first_pushed"]["shopify.customer"]
    assert created > 0 and failed == 0, out["first_pushed"]
    assert out["cycles_to_quiet"] >= 1 and out["dead"] == 0
    persons = {p["EmailAddress"].strip().lower() for p in out["po_persons"]}
    assert persons and persons <= set(out["shopify_emails"]), sorted(persons - set(out["shopify_emails"]))[:5]


@pytest.mark.parametrize(("value", "message"), [
    ("shopify,sage", "TALK_SYSTEMS names sage, which is not a registered system (registered: shopify, poweroffice, "
                     "squarespace, customcrm, customwebshop)"),
    ("shopify", "TALK_SYSTEMS names one system (shopify); a sync needs at least two"),
])
def test_a_wrong_list_of_systems_stops_with_the_variable_named(value: str, message: str) -> None:
    code = "import talk_assets.definitions"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(TALK_SYSTEMS=value),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]


def test_unset_or_empty_means_every_registered_system() -> None:
    code = "from talk_assets.config import SYSTEMS; print(','.join(SYSTEMS))"
    for env in (_env(), _env(TALK_SYSTEMS="")):
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.stdout.strip() == "shopify,poweroffice,squarespace,customcrm,customwebshop", proc.stderr
