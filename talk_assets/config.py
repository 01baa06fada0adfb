"""Connector settings, read from environment variables and defaulting to the local sandbox.

One table (`SYSTEMS`) names every system, its sandbox port offset and its settings; the CLI, the
sandbox, the clients and the Dagster resources all read it, so a new setting is declared once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

SANDBOX_HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 8701


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, its sandbox default and whether it is a secret."""

    env: str
    default: str
    secret: bool = False
    help: str = ""


@dataclass(frozen=True)
class SystemInfo:
    """A connected system: its key, display name, sandbox port offset and settings."""

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

    def secrets(self) -> list[str]:
        """Every secret value in force, so error messages and logs can redact them."""
        return [self.value(n) for n, s in self.settings.items() if s.secret and self.value(n)]


SHOPIFY = SystemInfo(
    key="shopify",
    title="Shopify",
    port_offset=0,
    url_env="TALK_SHOPIFY_URL",
    settings={
        "api_version": Setting("TALK_SHOPIFY_API_VERSION", "2026-07", help="Admin REST API version"),
        "access_token": Setting(
            "TALK_SHOPIFY_ACCESS_TOKEN", "shpat_sandbox0000000000000000000000", secret=True,
            help="Admin API access token of a custom app",
        ),
    },
)
POWEROFFICE = SystemInfo(
    key="poweroffice",
    title="PowerOffice GO",
    port_offset=1,
    url_env="TALK_POWEROFFICE_URL",
    settings={
        "app_key": Setting("TALK_POWEROFFICE_APP_KEY", "sandbox-application-key", secret=True,
                           help="Application key (from PowerOffice's partner program)"),
        "client_key": Setting("TALK_POWEROFFICE_CLIENT_KEY", "sandbox-client-key", secret=True,
                              help="Client key (the customer's integration key)"),
        "subscription_key": Setting("TALK_POWEROFFICE_SUBSCRIPTION_KEY", "sandbox-subscription-key",
                                    secret=True, help="Ocp-Apim-Subscription-Key"),
    },
)
SQUARESPACE = SystemInfo(
    key="squarespace",
    title="Squarespace",
    port_offset=2,
    url_env="TALK_SQUARESPACE_URL",
    settings={
        "api_key": Setting("TALK_SQUARESPACE_API_KEY", "sqsp-sandbox-api-key", secret=True,
                           help="Commerce API key (Settings > Advanced > Developer API keys)"),
    },
)
CUSTOMCRM = SystemInfo(
    key="customcrm",
    title="Custom CRM",
    port_offset=3,
    url_env="TALK_CUSTOMCRM_URL",
    settings={
        "api_key": Setting("TALK_CUSTOMCRM_API_KEY", "crm-sandbox-api-key", secret=True,
                           help="Bearer key of your CRM's API"),
    },
)
CUSTOMWEBSHOP = SystemInfo(
    key="customwebshop",
    title="Custom Webshop",
    port_offset=4,
    url_env="TALK_CUSTOMWEBSHOP_URL",
    settings={
        "api_key": Setting("TALK_CUSTOMWEBSHOP_API_KEY", "webshop-sandbox-api-key", secret=True,
                           help="Bearer key of your webshop's API"),
    },
)

SYSTEMS: dict[str, SystemInfo] = {s.key: s for s in (SHOPIFY, POWEROFFICE, SQUARESPACE, CUSTOMCRM, CUSTOMWEBSHOP)}


def all_secrets() -> list[str]:
    return [v for s in SYSTEMS.values() for v in s.secrets()]
