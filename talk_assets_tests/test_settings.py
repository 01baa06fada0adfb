"""Settings are read in one place (`talk_assets.settings`), and an invalid value names its variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pytest

from talk_assets.settings import SettingError, Settings
from talk_assets.sync import declaration


def test_defaults_without_variables() -> None:
    s = Settings.from_env({})
    assert s.data_dir == Path("data") and s.collect_lookback_s == 300 and s.duckdb_memory_limit == "2GB"
    assert s.duckdb_threads == 0
    assert (s.circuit_breaker_share, s.circuit_breaker_min_rows) == (0.5, 50)
    assert (s.check_max_bad_share, s.check_min_bad_rows) == (0.05, 10)
    assert s.poll_interval("shopify") == 300 and s.max_rps("shopify") is None
    assert s.share_enabled("shopify", "customer") and s.extra_systems == ()


def test_per_system_values_override_the_global_ones() -> None:
    s = Settings.from_env({"TALK_POLL_INTERVAL_S": "60", "TALK_SHOPIFY_POLL_INTERVAL_S": "5",
                           "TALK_SHARE_SHOPIFY": "false", "TALK_SHARE_SHOPIFY_ORDER": "true",
                           "TALK_CUSTOMCRM_MAX_RPS": "0", "TALK_EXTRA_SYSTEMS": " a.b , c.d ,"})
    assert s.poll_interval("shopify") == 5 and s.poll_interval("squarespace") == 60
    assert not s.share_enabled("shopify", "customer") and s.share_enabled("shopify", "order")
    assert s.max_rps("customcrm") == 0.0 and s.extra_systems == ("a.b", "c.d")


@pytest.mark.parametrize(("name", "value"), [
    ("TALK_COLLECT_LOOKBACK_S", "five minutes"), ("TALK_COLLECT_LOOKBACK_S", "-1"),
    ("TALK_POLL_INTERVAL_S", "0"), ("TALK_POLL_INTERVAL_S", "1.5"),
    ("TALK_CIRCUIT_BREAKER_SHARE", "50%"), ("TALK_CIRCUIT_BREAKER_SHARE", "2"),
    ("TALK_CIRCUIT_BREAKER_MIN_ROWS", "many"), ("TALK_CHECK_MAX_BAD_SHARE", "nan%"),
    ("TALK_CHECK_MIN_BAD_ROWS", "-3"), ("TALK_SANDBOX_FRESH", "maybe"),
    ("TALK_DUCKDB_THREADS", "-1"), ("TALK_DUCKDB_THREADS", "two"),
])
def test_an_invalid_value_raises_an_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize("call", [
    lambda s: s.poll_interval("shopify"), lambda s: s.max_rps("shopify"), lambda s: s.share_enabled("shopify", "order"),
])
def test_an_invalid_per_system_value_names_the_variable(call: object) -> None:
    s = Settings.from_env({"TALK_SHOPIFY_POLL_INTERVAL_S": "soon", "TALK_SHOPIFY_MAX_RPS": "fast",
                           "TALK_SHARE_SHOPIFY_ORDER": "perhaps"})
    with pytest.raises(SettingError, match=r"TALK_(SHARE_)?SHOPIFY_"):
        call(s)  # type: ignore[operator]


def test_referenced_types_come_from_the_typed_conversions() -> None:
    assert declaration.referenced_types("order") == {"customer", "user", "product"}
    assert declaration.referenced_types("customer") == set()
    assert declaration.referenced_types("product") == set()


def test_the_declaration_digest_follows_its_content(monkeypatch: pytest.MonkeyPatch) -> None:
    before = declaration.content_digest()
    assert declaration.content_digest() == before
    view = declaration.VIEWS_BY_KEY["customcrm.product"]
    price = next(p for p in view.props if p.prop == "price_ex_vat")
    changed = dataclasses.replace(price.conversion, sql_type="DOUBLE")  # same SQL, another meaning
    props = tuple(p if p is not price else type(p)(p.field, p.prop, p.type, changed)
                  for p in view.props)
    monkeypatch.setattr(declaration, "VIEWS", tuple(dataclasses.replace(v, props=props) if v is view else v
                                                    for v in declaration.VIEWS))
    assert declaration.content_digest() != before


def test_the_duckdb_settings_reach_every_connection_to_the_state_file(tmp_path: Path) -> None:
    """`TALK_DUCKDB_THREADS` and `TALK_DUCKDB_MEMORY_LIMIT` are what the state file's connections run with;
    0 threads leaves DuckDB's own choice (one per core)."""
    from talk_assets.settings import environment
    from talk_assets.sync.store import connect

    limits = {"TALK_DATA_DIR": str(tmp_path), "TALK_DUCKDB_THREADS": "1", "TALK_DUCKDB_MEMORY_LIMIT": "300MB"}
    with environment(limits), connect() as con:
        threads, memory = con.execute("SELECT current_setting('threads'), current_setting('memory_limit')").fetchone()
    assert threads == 1 and memory.replace(" ", "") in ("286.1MiB", "300.0MB"), (threads, memory)
    with environment({"TALK_DATA_DIR": str(tmp_path), "TALK_DUCKDB_THREADS": "0"}), connect() as con:
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == duckdb.connect().execute(
            "SELECT current_setting('threads')").fetchone()[0]
