"""Squarespace, as one object: settings, resource, client, writer, sandbox, views and sources."""

from __future__ import annotations

import dagster as dg

from talk_assets.sync.model import System
from talk_assets.systems.squarespace.client import Client
from talk_assets.systems.squarespace.info import INFO
from talk_assets.systems.squarespace.sandbox import App
from talk_assets.systems.squarespace.views import SOURCES, VIEWS
from talk_assets.systems.squarespace.writer import SystemWriter


class SquarespaceResource(dg.ConfigurableResource):
    """Squarespace Commerce API of one site."""

    url: str
    api_key: str

    def client(self) -> Client:
        return Client(self.url, self.api_key)


SYSTEM = System(info=INFO, resource=SquarespaceResource, client=Client, writer=SystemWriter, sandbox=App,
                views=VIEWS, sources=SOURCES)
