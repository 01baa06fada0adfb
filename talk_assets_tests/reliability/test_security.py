"""Security: credentials come only from the environment and never reach logs, Dagster event logs or
metadata, error messages or the DuckDB state file; the sandboxes refuse missing and wrong
credentials; everything binds to loopback."""

from __future__ import annotations

import base64
import inspect
import logging

import dagster as dg
import duckdb
import pytest
import requests

from talk_assets.config import SANDBOX_HOST, SYSTEMS, all_secrets
from talk_assets.definitions import all_resources
from talk_assets.resources import build_resources
from talk_assets.sandbox.runner import start_all
from talk_assets.sandbox.server import SandboxServer
from talk_assets.sync.assets import all_assets
from talk_assets_tests.conftest import Worlds
from talk_assets_tests.reliability.cycle_worker import fast_client
from talk_assets_tests.reliability.support import SYSTEM_KEYS, Harness

SENTINELS = {
    "TALK_SHOPIFY_ACCESS_TOKEN": "shpat_sentinel7f3a9c1e5b2d4f60",
    "TALK_POWEROFFICE_APP_KEY": "sentinel-po-app-5d1e9b",
    "TALK_POWEROFFICE_CLIENT_KEY": "sentinel-po-client-8c2f4a",
    "TALK_POWEROFFICE_SUBSCRIPTION_KEY": "sentinel-po-sub-3b7a0e",
    "TALK_SQUARESPACE_API_KEY": "sentinel-sqsp-9e4d21",
    "TALK_CUSTOMCRM_API_KEY": "sentinel-crm-1a6b77",
    "TALK_CUSTOMWEBSHOP_API_KEY": "sentinel-ws-7d0c3e",
}


def needles(secrets: list[str]) -> list[str]:
    out = list(secrets)
    po = [s for s in secrets if "po-app" in s or "po-client" in s]
    if len(po) == 2:  # PowerOffice sends app:client as HTTP Basic
        out.append(base64.b64encode(f"{po[0]}:{po[1]}".encode()).decode())
    return out


def state_file_text(rel: Harness) -> tuple[bytes, str]:
    """Every byte of the state files, and every value of every table as text (storage may compress)."""
    raw = b"".join(p.read_bytes() for p in rel.data.glob("talk.duckdb*"))
    parts = []
    with duckdb.connect(str(rel.data / "talk.duckdb"), read_only=True) as con:
        for (name,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
                                   ).fetchall():
            for row in con.execute(f'SELECT * FROM "{name}"').fetchall():
                parts.append(repr(row))
    return raw, "\n".join(parts)


def leaks(haystacks: dict[str, str | bytes], secrets: list[str]) -> list[str]:
    found = []
    for where, text in haystacks.items():
        for s in needles(secrets):
            if (s.encode() if isinstance(text, bytes) else s) in text:
                found.append(f"{s[:12]}... in {where}")
    return found


@pytest.fixture(scope="module")
def synced(rel: Harness, worlds: Worlds) -> Harness:
    """The small world synced until quiet: clean cycles, the last writing nothing (a copy once built)."""
    worlds.converge(rel)
    return rel


def test_the_sandbox_credentials_in_use_are_not_stored_in_the_state_file(synced: Harness) -> None:
    po = fast_client("poweroffice")
    token = po.access_token()
    po.close()
    raw, text = state_file_text(synced)
    secrets = [*all_secrets(), token]
    assert len(secrets) == 8 and raw and text
    assert not leaks({"talk.duckdb bytes": raw, "talk.duckdb rows": text}, secrets)


def _event_text(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every event of a run, serialised whole: messages, metadata, errors with their stack traces."""
    parts = [dg.serialize_value(e) for e in instance.all_logs(run_id)]
    run = instance.get_run_by_id(run_id)
    if run is not None:
        parts.append(dg.serialize_value(run))
    return "\n".join(parts)


def test_sentinel_credentials_never_leak_into_logs_events_errors_or_the_state_file(
    synced: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in SENTINELS.items():
        monkeypatch.setenv(name, value)
    assert sorted(all_secrets()) == sorted(SENTINELS.values())  # the environment is the only source
    caplog.set_level(logging.DEBUG)
    report = synced.cycle()
    # every system refused the wrong credentials, and said so by system and status
    for system in SYSTEM_KEYS:
        mine = [e for e in report.errors if e.startswith(f"{system}.")]
        assert mine and all("HTTP 401" in e or "HTTP 403" in e for e in mine), (system, report.errors)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(all_assets(), resources=all_resources(), instance=instance, raise_on_error=False)
    # 401s everywhere: every read fails, cleanly, as a failed `read_complete` check of its collect asset
    failures = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert failures and all("401" in dg.serialize_value(e) or "403" in dg.serialize_value(e) for e in failures)
    out = capsys.readouterr()
    raw, text = state_file_text(synced)
    haystacks: dict[str, str | bytes] = {
        "cycle errors": "\n".join(report.errors),
        "python logs": caplog.text + "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records),
        "stdout/stderr": out.out + out.err,
        "dagster events": _event_text(instance, result.run_id),
        "talk.duckdb bytes": raw,
        "talk.duckdb rows": text,
    }
    found = leaks(haystacks, list(SENTINELS.values()))
    assert not found, found
    # the check itself can fail: a planted secret is found
    assert leaks({"probe": f"x {SENTINELS['TALK_CUSTOMCRM_API_KEY']} y"}, list(SENTINELS.values()))


def test_dagster_resources_name_the_variables_not_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SENTINELS.items():
        monkeypatch.setenv(name, value)
    text = "\n".join(repr(r) + str(getattr(r, "_get_non_default_public_field_values", dict)())
                     for r in build_resources().values())
    assert not leaks({"resources": text}, list(SENTINELS.values())), text
    assert "TALK_CUSTOMCRM_API_KEY" in text


CALLS: dict[str, tuple[str, str, dict[str, str], dict[str, str]]] = {
    # system: (method, path, headers that are right except the credential, the credential header)
    "shopify": ("GET", "/admin/api/2026-07/customers.json", {}, {"X-Shopify-Access-Token": "shpat_wrong"}),
    "poweroffice": ("GET", "/v2/Customers", {"Ocp-Apim-Subscription-Key": "sandbox-subscription-key"},
                    {"Authorization": "Bearer wrong-token"}),
    "squarespace": ("GET", "/1.0/commerce/products", {"User-Agent": "security-test"},
                    {"Authorization": "Bearer wrong-key"}),
    "customcrm": ("GET", "/api/v1/customers", {}, {"Authorization": "Bearer wrong-key"}),
    "customwebshop": ("GET", "/api/customers", {}, {"X-Api-Key": "wrong-key"}),
}


@pytest.mark.parametrize("system", sorted(CALLS))
def test_the_sandbox_rejects_missing_and_wrong_credentials(rel: Harness, system: str) -> None:
    method, path, base, cred = CALLS[system]
    url = rel.box.url(system) + path
    missing = requests.request(method, url, headers=base, timeout=10)
    wrong = requests.request(method, url, headers={**base, **cred}, timeout=10)
    assert missing.status_code == 401, missing.text
    assert wrong.status_code == 401, wrong.text
    assert list(cred.values())[0].split()[-1] not in wrong.text  # the refusal does not echo the credential


def test_poweroffice_token_endpoint_rejects_wrong_client_keys(rel: Harness) -> None:
    resp = requests.post(rel.box.url("poweroffice") + "/OAuth/Token", data={"grant_type": "client_credentials"},
                         auth=("sandbox-application-key", "wrong-client-key"),
                         headers={"Ocp-Apim-Subscription-Key": "sandbox-subscription-key"}, timeout=10)
    assert resp.status_code in (400, 401) and "wrong-client-key" not in resp.text


def test_servers_bind_loopback_only(rel: Harness) -> None:
    assert SANDBOX_HOST == "127.0.0.1"
    assert inspect.signature(start_all).parameters["host"].default == SANDBOX_HOST
    assert inspect.signature(SandboxServer).parameters["host"].default == "127.0.0.1"
    for key, srv in rel.box.servers.items():
        assert srv.host == "127.0.0.1" and srv.httpd.socket.getsockname()[0] == "127.0.0.1", key
    for info in SYSTEMS.values():
        assert info.sandbox_url().startswith("http://127.0.0.1:")


