"""PowerOffice GO, as one object: settings, resource, client, writer, sandbox, views and sources."""

from __future__ import annotations

import dagster as dg

from talk_assets.sync.model import System
from talk_assets.systems.poweroffice.client import Client
from talk_assets.systems.poweroffice.info import INFO
from talk_assets.systems.poweroffice.sandbox import App
from talk_assets.systems.poweroffice.views import SOURCES, VIEWS
from talk_assets.systems.poweroffice.writer import SystemWriter


class PowerOfficeResource(dg.ConfigurableResource):
    """PowerOffice GO API v2 of one client (company)."""

    url: str
    app_key: str
    client_key: str
    subscription_key: str

    def client(self) -> Client:
        return Client(self.url, self.app_key, self.client_key, self.subscription_key)


SYSTEM = System(info=INFO, resource=PowerOfficeResource, client=Client, writer=SystemWriter, sandbox=App,
                views=VIEWS, sources=SOURCES)
