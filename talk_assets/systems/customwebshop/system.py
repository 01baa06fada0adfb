"""The Custom Webshop, as one object: settings, resource, client, writer, sandbox, views and sources."""

from __future__ import annotations

import dagster as dg

from talk_assets.sync.model import System
from talk_assets.systems.customwebshop.client import Client
from talk_assets.systems.customwebshop.info import INFO
from talk_assets.systems.customwebshop.sandbox import App
from talk_assets.systems.customwebshop.views import SOURCES, VIEWS
from talk_assets.systems.customwebshop.writer import SystemWriter


class CustomWebshopResource(dg.ConfigurableResource):
    """Your webshop's REST API (the Custom Webshop connector)."""

    url: str
    api_key: str

    def client(self) -> Client:
        return Client(self.url, self.api_key)


SYSTEM = System(info=INFO, resource=CustomWebshopResource, client=Client, writer=SystemWriter, sandbox=App,
                views=VIEWS, sources=SOURCES)
