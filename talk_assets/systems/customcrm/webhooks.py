"""Custom CRM notifications: Standard Webhooks, as every custom API (talk_assets/systems/customapi/webhooks.py)."""

from __future__ import annotations

from collections.abc import Mapping

from talk_assets.systems.customapi import webhooks as standard
from talk_assets.systems.customcrm.spec import SPEC
from talk_assets.webhooks.inbox import Inbox, Notification

SUPPORTED = True
TOPICS = standard.topics(SPEC)


def receive(headers: Mapping[str, str], body: bytes, inbox: Inbox) -> Notification:
    return standard.receive(SPEC, headers, body, inbox)
