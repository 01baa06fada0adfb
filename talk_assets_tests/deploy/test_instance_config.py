"""The deploy/ instance files: they validate against Dagster's schema, and Postgres storage works.

The Postgres test starts a throwaway PostgreSQL from the Debian packages (initdb + pg_ctl on a temp
dir and a free port), points a Dagster instance built from deploy/dagster.postgres.yaml at it and
runs a materialization through it. Where no PostgreSQL can be started it skips and says why
(TALK_REQUIRE_POSTGRES=1 makes that a failure, for CI).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from talk_assets.config import SYSTEMS
from talk_assets.devserver import INSTANCE_YAML, pools

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PG_ENV = {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
          "DAGSTER_PG_PASSWORD": "secret", "DAGSTER_PG_DB": "dagster"}


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text())


def _validate_instance(config: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Dagster's own check of a dagster.yaml (schema, incompatible keys), as at instance start."""
    from dagster._core.instance.config import dagster_instance_config

    (tmp / "dagster.yaml").write_text(yaml.safe_dump(config))
    processed, _cls = dagster_instance_config(str(tmp))
    return processed


def test_local_instance_yaml_validates(tmp_path: Path) -> None:
    """What `talk-assets run` writes on first start."""
    cfg = _validate_instance(yaml.safe_load(INSTANCE_YAML), tmp_path)
    assert cfg["concurrency"]["runs"]["max_concurrent_runs"] == 1
    assert cfg["concurrency"]["pools"]["default_limit"] == 1
    assert set(pools()) == {"duckdb", *(f"{k}_api" for k in SYSTEMS)}
    # the run a notification asks for is launched within a second of its request (Dagster's default: 5 s)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.run_coordinator.dequeue_interval_seconds == 1
    finally:
        instance.dispose()


def test_postgres_instance_yaml_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    cfg = _validate_instance(_load("dagster.postgres.yaml"), tmp_path)
    assert set(cfg["storage"]["postgres"]["postgres_db"]) >= {"hostname", "port", "username", "password", "db_name"}
    limits = cfg["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limits[0]["key"] == "talk/system"
    assert cfg["run_queue"]["dequeue_interval_seconds"] == 1


def test_docker_run_launcher_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dagster_docker", reason="dagster-docker is not installed (pip install dagster-docker)")
    from dagster._config import process_config
    from dagster_docker import DockerRunLauncher

    for k, v in {**PG_ENV, "TALK_IMAGE": "talk-assets:test", "TALK_DOCKER_NETWORK": "talk"}.items():
        monkeypatch.setenv(k, v)
    merged = {**_load("dagster.postgres.yaml"), **_load("dagster.docker.yaml")}
    cfg = _validate_instance(merged, tmp_path)
    launcher = cfg["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    result = process_config(DockerRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors
    assert result.value["image"] == "talk-assets:test"
    # every secret the clients read reaches the run container
    needed = {s.env for info in SYSTEMS.values() for s in info.settings.values() if s.secret}
    assert needed <= set(result.value["env_vars"])


def test_k8s_run_launcher_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dagster_k8s", reason="dagster-k8s is not installed; deploy/dagster.k8s.yaml unchecked")
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher

    monkeypatch.setenv("TALK_IMAGE", "talk-assets:test")
    launcher = _load("dagster.k8s.yaml")["run_launcher"]
    result = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors


# -- a throwaway PostgreSQL ----------------------------------------------------------------------------
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _unavailable(reason: str) -> None:
    if os.environ.get("TALK_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, str]]:
    """A PostgreSQL server on a free loopback port in a temp dir, stopped and removed afterwards."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        _unavailable("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install -y postgresql")
    run_as: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="talk-pg-", dir="/tmp"))
    if os.geteuid() == 0:  # initdb refuses root: run it as the postgres user the package creates
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no `postgres` user to run PostgreSQL as")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()
    try:
        subprocess.run([*run_as, initdb, "-D", str(data), "-U", "dagster", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        opts = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c listen_addresses=127.0.0.1"
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "-t", "60",
                        "start"], check=True, capture_output=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log = (base / "log").read_text(errors="replace") if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        out = getattr(exc, "stderr", b"") or b""
        _unavailable(f"could not start a throwaway PostgreSQL: {exc} {out.decode(errors='replace')[-400:]} {log[-400:]}")
    try:
        subprocess.run([*run_as, _pg_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "dagster",
                        "dagster"], check=True, capture_output=True, timeout=30)
        yield {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_USER": "dagster",
               "DAGSTER_PG_PASSWORD": "unused-with-trust-auth", "DAGSTER_PG_DB": "dagster"}
    finally:
        with contextlib.suppress(Exception):
            subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True,
                           timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_storage_runs_and_pools(postgres: dict[str, str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is not installed (pip install dagster-postgres)")
    for k, v in postgres.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.postgres.yaml", home / "dagster.yaml")

    @dg.asset(pool="shopify_api")
    def probe() -> int:
        return 1

    @dg.asset(pool="duckdb")
    def downstream(probe: int) -> int:
        return probe + 1

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        for pool, slots in pools().items():  # what deploy/README.md tells an operator to run
            instance.event_log_storage.set_concurrency_slots(pool, slots)
        result = dg.materialize([probe, downstream], instance=instance)
        assert result.success
        run_id = result.run_id

    # a second instance (another process or host in real life) sees the run, events and pools
    with dg.DagsterInstance.from_config(str(home)) as other:
        run = other.get_run_by_id(run_id)
        assert run is not None and run.is_success
        mat = other.get_latest_materialization_event(dg.AssetKey("downstream"))
        assert mat is not None and mat.run_id == run_id
        assert other.event_log_storage.get_concurrency_info("shopify_api").slot_count == 1
        assert set(pools()) <= set(other.event_log_storage.get_concurrency_keys())
