"""Dagster resources: one per connected system, configured from environment variables.

Each field is a Dagster `EnvVar` when its variable is set (so the UI shows the variable's name,
never a secret's value) and the sandbox default otherwise; `talk_assets/config.py` names them.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from talk_assets.config import CUSTOMCRM, CUSTOMWEBSHOP, POWEROFFICE, SHOPIFY, SQUARESPACE, SystemInfo


class ShopifyResource(dg.ConfigurableResource):
    """Shopify Admin REST API of one shop."""

    url: str
    api_version: str
    access_token: str

    def client(self) -> Any:
        from talk_assets.systems.shopify.client import Client

        return Client(self.url, self.access_token, api_version=self.api_version)


class PowerOfficeResource(dg.ConfigurableResource):
    """PowerOffice GO API v2 of one client (company)."""

    url: str
    app_key: str
    client_key: str
    subscription_key: str

    def client(self) -> Any:
        from talk_assets.systems.poweroffice.client import Client

        return Client(self.url, self.app_key, self.client_key, self.subscription_key)


class SquarespaceResource(dg.ConfigurableResource):
    """Squarespace Commerce API of one site."""

    url: str
    api_key: str

    def client(self) -> Any:
        from talk_assets.systems.squarespace.client import Client

        return Client(self.url, self.api_key)


class CustomCrmResource(dg.ConfigurableResource):
    """Your CRM's REST API (the Custom CRM connector)."""

    url: str
    api_key: str

    def client(self) -> Any:
        from talk_assets.systems.customcrm.client import Client

        return Client(self.url, self.api_key)


class CustomWebshopResource(dg.ConfigurableResource):
    """Your webshop's REST API (the Custom Webshop connector)."""

    url: str
    api_key: str

    def client(self) -> Any:
        from talk_assets.systems.customwebshop.client import Client

        return Client(self.url, self.api_key)


def _value(info: SystemInfo, name: str) -> str | dg.EnvVar:
    if name == "url":
        return dg.EnvVar(info.url_env) if os.environ.get(info.url_env) else info.sandbox_url()
    s = info.settings[name]
    return dg.EnvVar(s.env) if os.environ.get(s.env) else s.default


def _build(cls: type[dg.ConfigurableResource], info: SystemInfo) -> dg.ConfigurableResource:
    fields = ["url", *info.settings]
    return cls(**{f: _value(info, f) for f in fields})


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """The five system resources, keyed by system key (as the assets require them)."""
    return {
        "shopify": _build(ShopifyResource, SHOPIFY),
        "poweroffice": _build(PowerOfficeResource, POWEROFFICE),
        "squarespace": _build(SquarespaceResource, SQUARESPACE),
        "customcrm": _build(CustomCrmResource, CUSTOMCRM),
        "customwebshop": _build(CustomWebshopResource, CUSTOMWEBSHOP),
    }


def client_from_env(system: str) -> Any:
    """A client outside Dagster (the CLI): the same settings, read from the environment directly."""
    import importlib

    return importlib.import_module(f"talk_assets.systems.{system}.client").Client.from_env()
