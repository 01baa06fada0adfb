"""Every setting, read from the environment in this one module.

Two kinds: the engine's (`Settings`: where the state lives, how far back a collect reads, the
circuit breaker, the checks' thresholds, per-system pace and polling, what may be written) and each
system's connection settings (`SystemInfo`: URL, keys; declared in the system's folder). Code asks
`settings()` for the values in force instead of reading `os.environ` itself, so a variable is named,
parsed and validated once; an invalid value raises `SettingError` naming the variable (never echoing a
secret's value).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

SANDBOX_HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 8701

T = TypeVar("T")


class SettingError(ValueError):
    """An environment variable holds a value the setting cannot take; the message names the variable."""


# -- system connection settings --------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, its sandbox default and whether it is a secret."""

    env: str
    default: str
    secret: bool = False
    help: str = ""


@dataclass(frozen=True)
class SystemInfo:
    """A connected system's identity and connection settings: key, display name, sandbox port offset."""

    key: str
    title: str
    port_offset: int
    url_env: str
    settings: dict[str, Setting] = field(default_factory=dict)

    def sandbox_url(self, host: str = SANDBOX_HOST, port_base: int = DEFAULT_PORT_BASE) -> str:
        return f"http://{host}:{port_base + self.port_offset}"

    def url(self) -> str:
        """The origin to talk to: the environment's, or the sandbox's default."""
        return os.environ.get(self.url_env) or self.sandbox_url()

    def value(self, name: str) -> str:
        s = self.settings[name]
        return os.environ.get(s.env) or s.default

    def is_set(self, name: str) -> bool:
        """Whether the environment sets this setting (`url` or a settings name), not the sandbox default."""
        return bool(os.environ.get(self.url_env if name == "url" else self.settings[name].env))

    def env_name(self, name: str) -> str:
        return self.url_env if name == "url" else self.settings[name].env

    def secrets(self) -> list[str]:
        """Every secret value in force, so error messages and logs can redact them."""
        return [self.value(n) for n, s in self.settings.items() if s.secret and self.value(n)]


# Sandbox defaults of the webhook signing keys (the sandboxes sign with these unless the variable is set).
SANDBOX_WEBHOOK_SECRETS = {
    "shopify": "shpss_sandbox_app_client_secret",
    "customcrm": "whsec_c2FuZGJveC1jdXN0b21jcm0td2ViaG9vay1rZXk=",
    "customwebshop": "whsec_c2FuZGJveC1jdXN0b213ZWJzaG9wLWhvb2sta2V5",
}


# -- engine settings -------------------------------------------------------------------------------
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _parse(env: Mapping[str, str], name: str, default: T, conv: Callable[[str], T], expects: str,
           ok: Callable[[T], bool] = lambda _v: True) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = conv(raw.strip())
    except (TypeError, ValueError):
        raise SettingError(f"{name}={raw.strip()[:40]!r} is not {expects}") from None
    if not ok(value):
        raise SettingError(f"{name}={raw.strip()[:40]!r} is not {expects}")
    return value


def _bool(raw: str) -> bool:
    v = raw.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(raw)


@dataclass(frozen=True)
class Settings:
    """The engine-wide settings in force (see the README's settings table)."""

    data_dir: Path = Path("data")  # TALK_DATA_DIR: the DuckDB state file's folder
    collect_lookback_s: float = 300.0  # TALK_COLLECT_LOOKBACK_S: an incremental read starts this early
    probe_refresh_s: float = 900.0  # TALK_PROBE_REFRESH_S: how often a probe's part that pages is taken again
    duckdb_memory_limit: str = "2GB"  # TALK_DUCKDB_MEMORY_LIMIT
    duckdb_threads: int = 0  # TALK_DUCKDB_THREADS: DuckDB's worker threads per connection (0: its default, the cores)
    poll_interval_s: int = 300  # TALK_POLL_INTERVAL_S (Sesam's default), per system TALK_<SYSTEM>_POLL_INTERVAL_S
    circuit_breaker_share: float = 0.5  # TALK_CIRCUIT_BREAKER_SHARE
    circuit_breaker_min_rows: int = 50  # TALK_CIRCUIT_BREAKER_MIN_ROWS
    check_max_bad_share: float = 0.05  # TALK_CHECK_MAX_BAD_SHARE
    check_min_bad_rows: int = 10  # TALK_CHECK_MIN_BAD_ROWS
    sandbox_fresh: bool = False  # TALK_SANDBOX_FRESH=1: the CLI starts a fresh sandbox
    extra_systems: tuple[str, ...] = ()  # TALK_EXTRA_SYSTEMS: module paths of plugin systems
    systems: tuple[str, ...] = ()  # TALK_SYSTEMS: the systems this deployment uses (empty: every registered one)
    lock_report_s: float = 30.0  # TALK_LOCK_REPORT_S: how often a run waiting for the state file says so
    webhook_public_url: str = ""  # TALK_WEBHOOK_PUBLIC_URL: where the systems reach our receiver (webhooks on)
    webhook_host: str = "127.0.0.1"  # TALK_WEBHOOK_HOST: the receiver's listening interface
    webhook_port: int = 8710  # TALK_WEBHOOK_PORT: the receiver's port (0: a free one)
    webhook_poll_interval_s: int = 1800  # TALK_WEBHOOK_POLL_INTERVAL_S: the safety-net poll with webhooks on
    webhook_max_body_bytes: int = 1_048_576  # TALK_WEBHOOK_MAX_BODY_BYTES: larger notifications get 413
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        count = "a whole number >= 0"
        share = "a number between 0 and 1"
        return cls(
            data_dir=Path(e.get("TALK_DATA_DIR") or "data"),
            collect_lookback_s=_parse(e, "TALK_COLLECT_LOOKBACK_S", 300.0, float, "a number of seconds >= 0",
                                      lambda v: v >= 0),
            probe_refresh_s=_parse(e, "TALK_PROBE_REFRESH_S", 900.0, float, "a number of seconds > 0",
                                   lambda v: v > 0),
            duckdb_memory_limit=e.get("TALK_DUCKDB_MEMORY_LIMIT") or "2GB",
            duckdb_threads=_parse(e, "TALK_DUCKDB_THREADS", 0, int, "a whole number >= 0 (0: one per core)",
                                  lambda v: v >= 0),
            poll_interval_s=_parse(e, "TALK_POLL_INTERVAL_S", 300, int, "a whole number of seconds > 0",
                                   lambda v: v > 0),
            circuit_breaker_share=_parse(e, "TALK_CIRCUIT_BREAKER_SHARE", 0.5, float, share, lambda v: 0 <= v <= 1),
            circuit_breaker_min_rows=_parse(e, "TALK_CIRCUIT_BREAKER_MIN_ROWS", 50, int, count, lambda v: v >= 0),
            check_max_bad_share=_parse(e, "TALK_CHECK_MAX_BAD_SHARE", 0.05, float, share, lambda v: 0 <= v <= 1),
            check_min_bad_rows=_parse(e, "TALK_CHECK_MIN_BAD_ROWS", 10, int, count, lambda v: v >= 0),
            sandbox_fresh=_parse(e, "TALK_SANDBOX_FRESH", False, _bool, "true or false (1/0)"),
            extra_systems=tuple(m.strip() for m in (e.get("TALK_EXTRA_SYSTEMS") or "").split(",") if m.strip()),
            systems=tuple(dict.fromkeys(k.strip().lower() for k in (e.get("TALK_SYSTEMS") or "").split(",") if k.strip())),
            lock_report_s=_parse(e, "TALK_LOCK_REPORT_S", 30.0, float, "a number of seconds > 0", lambda v: v > 0),
            webhook_public_url=(e.get("TALK_WEBHOOK_PUBLIC_URL") or "").strip().rstrip("/"),
            webhook_host=(e.get("TALK_WEBHOOK_HOST") or "127.0.0.1").strip(),
            webhook_port=_parse(e, "TALK_WEBHOOK_PORT", 8710, int, "a port number 0-65535", lambda v: 0 <= v < 65536),
            webhook_poll_interval_s=_parse(e, "TALK_WEBHOOK_POLL_INTERVAL_S", 1800, int,
                                           "a whole number of seconds > 0", lambda v: v > 0),
            webhook_max_body_bytes=_parse(e, "TALK_WEBHOOK_MAX_BODY_BYTES", 1_048_576, int,
                                          "a whole number of bytes > 0", lambda v: v > 0),
            env=e,
        )

    @property
    def webhooks_on(self) -> bool:
        """Webhooks are on when a public URL for the receiver is set (`TALK_WEBHOOK_PUBLIC_URL`)."""
        return bool(self.webhook_public_url)

    def webhook_secret(self, system: str) -> str:
        """`TALK_<SYSTEM>_WEBHOOK_SECRET`: the key a system signs its notifications with (Shopify: the
        app's client secret; the custom APIs: a Standard Webhooks `whsec_...` secret). Squarespace
        returns a secret per subscription instead, kept in the webhook inbox. Sandbox default."""
        return self.env.get(f"TALK_{system.upper()}_WEBHOOK_SECRET") or SANDBOX_WEBHOOK_SECRETS.get(system, "")

    def poll_interval(self, system: str, webhooks: bool = False) -> int:
        """`TALK_<SYSTEM>_POLL_INTERVAL_S`, else `TALK_POLL_INTERVAL_S`, else 300 s. For a system whose
        notifications arrive (`webhooks`), polling is only the safety net: `TALK_WEBHOOK_POLL_INTERVAL_S`
        (1800 s) unless the system's own variable says otherwise."""
        base = max(self.poll_interval_s, self.webhook_poll_interval_s) if webhooks else self.poll_interval_s
        return _parse(self.env, f"TALK_{system.upper()}_POLL_INTERVAL_S", base, int,
                      "a whole number of seconds > 0", lambda v: v > 0)

    def max_rps(self, system: str) -> float | None:
        """`TALK_<SYSTEM>_MAX_RPS`: the pace of calls to a system (0: unpaced); None: the documented pace."""
        return _parse(self.env, f"TALK_{system.upper()}_MAX_RPS", None, float, "a number >= 0",
                      lambda v: v is None or v >= 0)

    def share_enabled(self, system: str, entity: str) -> bool:
        """`TALK_SHARE_<SYSTEM>_<ENTITY>` / `TALK_SHARE_<SYSTEM>` = false turns writing off."""
        s, e = system.upper(), entity.upper()
        whole = _parse(self.env, f"TALK_SHARE_{s}", True, _bool, "true or false")
        return _parse(self.env, f"TALK_SHARE_{s}_{e}", whole, _bool, "true or false")


def settings() -> Settings:
    """The settings in force now (read afresh: tests and the CLI change the environment)."""
    return Settings.from_env()


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for a block and put back what was there (unset stays unset): how the
    conformance runner and the tests point the clients at a sandbox started for them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
