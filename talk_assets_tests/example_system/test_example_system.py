"""A sixth system needs its folder and one line: with `TALK_EXTRA_SYSTEMS` naming the example
system's module, the Dagster definitions carry its assets and one cycle creates its subscribers as
Custom CRM customers, linked to them (in a subprocess, as a user would set the variable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sixth_system_registers_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "TALK_EXTRA_SYSTEMS": "talk_assets_tests.example_system.system",
           "TALK_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, "-m", "talk_assets_tests.example_system.worker", str(tmp_path / "data")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["systems"][-1] == "newsletter" and len(out["systems"]) == 6
    assert {"newsletter/subscribers", "newsletter/collected/subscribers"} <= set(out["assets"]), out["assets"]
    assert any(a.startswith("newsletter/") and "mapped" in a for a in out["assets"]), "two-way: a newsletter target"

    subscribers = out["subscribers"]
    assert len(subscribers) == 5
    crm_by_email = {c["email"]: c for c in out["crm_customers"]}
    for s in subscribers:  # every subscriber is now a CRM customer, named as the newsletter names them
        crm = crm_by_email.get(s["email"])
        assert crm is not None, s["email"]
        assert crm["name"] == " ".join(p for p in (s["first_name"], s["last_name"]) if p)
        assert crm["customer_type"] == "person"
    assert out["pushed"]["customcrm.customer"][0] >= len(subscribers)
    linked = {a: b for a, b in out["links"]}
    assert set(linked) == {str(s["id"]) for s in subscribers}
    assert {str(crm_by_email[s["email"]]["id"]) for s in subscribers} == set(linked.values())


def test_without_the_line_there_are_five_systems() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TALK_EXTRA_SYSTEMS"}
    code = "from talk_assets.config import SYSTEMS; print(','.join(SYSTEMS))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "shopify,poweroffice,squarespace,customcrm,customwebshop", proc.stderr
