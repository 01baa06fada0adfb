"""Squarespace, as one object: settings, resource, client, writer, sandbox, views and sources."""

from __future__ import annotations

import dagster as dg

from talk_assets.sync.model import System
from talk_assets.systems.squarespace.client import Client, full_read_seconds
from talk_assets.systems.squarespace.info import INFO
from talk_assets.systems.squarespace.sandbox import App
from talk_assets.systems.squarespace.views import SOURCES, VIEWS
from talk_assets.systems.squarespace.writer import SystemWriter


class SquarespaceResource(dg.ConfigurableResource):
    """Squarespace Commerce API of one site."""

    url: str
    api_key: str
    inventory_full_read_s: str = INFO.settings["inventory_full_read_s"].default

    def client(self) -> Client:
        return Client(self.url, self.api_key, inventory_full_read_s=full_read_seconds(self.inventory_full_read_s))


SYSTEM = System(info=INFO, resource=SquarespaceResource, client=Client, writer=SystemWriter, sandbox=App,
                views=VIEWS, sources=SOURCES)
