"""Dagster resources: one per registered system, configured from environment variables.

Each system declares its resource class (`System.resource`: a typed client factory with the fields
`url` and one per setting). Each field is a Dagster `EnvVar` when its variable is set (so the UI shows
the variable's name, never a secret's value) and the sandbox default otherwise.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from talk_assets.sync.model import System
from talk_assets.systems import system, systems


def _value(s: System, name: str) -> str | dg.EnvVar:
    if s.info.is_set(name):
        return dg.EnvVar(s.info.env_name(name))
    return s.sandbox_url() if name == "url" else s.settings[name].default


def build_resource(s: System) -> dg.ConfigurableResource:
    return s.resource(**{f: _value(s, f) for f in ["url", *s.settings]})


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """Every system's resource, keyed by system key (as the assets require them)."""
    return {key: build_resource(s) for key, s in systems().items()}


def client_from_env(key: str) -> Any:
    """A client outside Dagster (the CLI): the same settings, read from the environment directly."""
    return system(key).client.from_env()
