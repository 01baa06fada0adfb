"""The Custom CRM, as one object: settings, resource, client, writer, sandbox, views and sources."""

from __future__ import annotations

import dagster as dg

from talk_assets.sync.model import System
from talk_assets.systems.customcrm.client import Client
from talk_assets.systems.customcrm.info import INFO
from talk_assets.systems.customcrm.sandbox import App
from talk_assets.systems.customcrm.views import SOURCES, VIEWS
from talk_assets.systems.customcrm.writer import SystemWriter


class CustomCrmResource(dg.ConfigurableResource):
    """Your CRM's REST API (the Custom CRM connector)."""

    url: str
    api_key: str

    def client(self) -> Client:
        return Client(self.url, self.api_key)


SYSTEM = System(info=INFO, resource=CustomCrmResource, client=Client, writer=SystemWriter, sandbox=App,
                views=VIEWS, sources=SOURCES)
