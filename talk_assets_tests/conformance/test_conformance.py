"""`talk-assets conformance` as a user runs it (a subprocess): against a fresh sandbox by default, with
tagged writes cleaned up, and a wrong credential reported by its variable's name, never its value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from talk_assets.config import SYSTEMS

CORE = ("auth", "wrong credential", "paging", "change filter", "not found", "fields")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TALK_")}  # no shared sandbox: a fresh one
    proc = subprocess.run([sys.executable, "-m", "talk_assets.cli", "conformance", "--json", *args],
                          capture_output=True, text=True, timeout=600, env={**base, **(env or {})})
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}, proc.stderr


def by(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["system"], r["check"]): r for r in report["results"]}


def test_conformance_passes_against_a_fresh_sandbox_read_only() -> None:
    code, report, err = run()
    assert code == 0 and report["ok"], (err[-2000:], report)
    assert report["targets"] == {k: "sandbox" for k in SYSTEMS}
    results = by(report)
    for system in SYSTEMS:
        for name in CORE:
            assert results[(system, name)]["status"] == "PASS", results[(system, name)]
        assert results[(system, "writes")]["status"] == "SKIP"
    assert results[("shopify", "rate-limit headers")]["status"] == "PASS"
    assert results[("shopify", "staff (read_users)")]["status"] == "PASS"
    assert results[("poweroffice", "locks")]["status"] == "PASS"
    vat = results[("poweroffice", "product VAT")]  # the seeded products are on (or inherit) a 25 % account
    assert vat["status"] == "PASS" and "25 %" in vat["why"] and "unknown" not in vat["why"], vat
    for system in ("customcrm", "customwebshop"):
        assert results[(system, "read-only fields")]["status"] == "PASS", results[(system, "read-only fields")]
    assert all(r["why"] and "\n" not in r["why"] for r in report["results"])


def test_allow_writes_creates_edits_and_deletes_only_tagged_records() -> None:
    code, report, err = run("--allow-writes", "--system", "shopify", "--system", "customcrm", "--system", "customwebshop")
    assert code == 0, (err[-2000:], report)
    results = by(report)
    for system in ("shopify", "customcrm", "customwebshop"):
        w = results[(system, "writes")]
        assert w["status"] == "PASS" and "talk-conformance-" in w["why"] and "deleted" in w["why"], w


def test_a_wrong_credential_fails_auth_naming_the_variable_not_the_value() -> None:
    secret = "shpat_wrong_conformance_value_123456"
    code, report, err = run("--system", "shopify", env={"TALK_SHOPIFY_ACCESS_TOKEN": secret})
    assert code == 1 and not report["ok"]
    results = by(report)
    assert results[("shopify", "auth")]["status"] == "FAIL"
    assert "TALK_SHOPIFY_ACCESS_TOKEN" in results[("shopify", "auth")]["why"]
    assert results[("shopify", "paging")]["status"] == "SKIP"
    assert secret not in json.dumps(report) and secret not in err


def test_a_written_field_the_schema_declares_read_only_fails_the_check() -> None:
    """The read-only check can fail: a CRM view that wrote `total_ex_vat` (readOnly in our OpenAPI)."""
    from dataclasses import replace

    from talk_assets.conformance.base import Fail
    from talk_assets.conformance.suites import CustomApiSuite
    from talk_assets.sync.model import Prop
    from talk_assets.systems import system

    crm = system("customcrm")
    order = next(v for v in crm.views if v.entity == "orders")
    # a view that does not declare the schema's read-only fields (`View.read_only` would keep the write
    # out by construction) and writes one: the check reads the schema itself and must catch it
    bad = replace(order, props=(*order.props, Prop("total_ex_vat", "net_amount", "decimal (string)")),
                  read_only=(), create_only=())
    suite = CustomApiSuite(replace(crm, views=tuple(bad if v is order else v for v in crm.views)))
    try:
        suite.check_read_only()
    except Fail as f:
        assert "orders.total_ex_vat" in str(f)
    else:
        raise AssertionError("a write to a readOnly field passed")
