"""Shopify, as one object: settings, resource, client, writer, sandbox, views and sources."""

from __future__ import annotations

import dagster as dg

from talk_assets.sync.model import System
from talk_assets.systems.shopify.client import Client
from talk_assets.systems.shopify.info import INFO
from talk_assets.systems.shopify.sandbox import App
from talk_assets.systems.shopify.views import SOURCES, VIEWS
from talk_assets.systems.shopify.writer import SystemWriter


class ShopifyResource(dg.ConfigurableResource):
    """Shopify GraphQL Admin API of one shop."""

    url: str
    api_version: str
    access_token: str

    def client(self) -> Client:
        return Client(self.url, self.access_token, api_version=self.api_version)


SYSTEM = System(info=INFO, resource=ShopifyResource, client=Client, writer=SystemWriter, sandbox=App,
                views=VIEWS, sources=SOURCES)
