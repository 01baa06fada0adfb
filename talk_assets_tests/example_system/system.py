"""The example newsletter tool as one `System`: its folder is all a new system needs, plus one line
(`TALK_EXTRA_SYSTEMS=talk_assets_tests.example_system.system`)."""

from __future__ import annotations

import dagster as dg

from talk_assets.sync.conversions import EMAIL
from talk_assets.sync.model import Dataflow, Source, System, View
from talk_assets.sync.model import Prop as P
from talk_assets.sync.writer import Writer
from talk_assets_tests.example_system.client import Client
from talk_assets_tests.example_system.info import INFO
from talk_assets_tests.example_system.sandbox import App

SOURCES = (Source("newsletter", "subscribers", "Subscribers", "id", "updated_at"),)
SUBSCRIBER = View(
    "newsletter", "subscribers", "Subscriber", "customer",
    description="Newsletter subscribers (persons).",
    props=(
        P("email", "email", "string", EMAIL),
        P("first_name", "first_name", "string"),
        P("last_name", "last_name", "string"),
    ),
)


class NewsletterResource(dg.ConfigurableResource):
    """The newsletter tool's API."""

    url: str
    api_key: str

    def client(self) -> Client:
        return Client(self.url, self.api_key)


def dataflows(views: dict[str, View]) -> tuple[Dataflow, ...]:
    return (Dataflow("900", SUBSCRIBER, views["customcrm.customer"]),)


SYSTEM = System(info=INFO, resource=NewsletterResource, client=Client, writer=Writer, sandbox=App,
                views=(SUBSCRIBER,), sources=SOURCES, dataflows=dataflows,
                seed_titles={"900": ("Example Newsletter", "Custom CRM")})
