"""Create and keep the subscriptions that make the systems notify our receiver.

Run at every start of the receiver (idempotent: what exists is kept). Per system:
- Shopify: REST `webhooks.json` with the topics the sync reads (systems/shopify/webhooks.py);
- Squarespace: the Webhook Subscriptions API, which needs an OAuth token; refused -> polling only;
- Custom CRM / webshop: configured by the API's operator (Standard Webhooks defines no subscription
  API): nothing to call here; `sandbox_subscribe` does it for the local sandbox, as an operator would;
- PowerOffice GO: no webhooks (systems/poweroffice/webhooks.py), polling only.
A failure is reported, never raised: polling covers the system either way.
"""

from __future__ import annotations

import logging

import requests

from talk_assets.settings import settings
from talk_assets.webhooks.inbox import Inbox
from talk_assets.webhooks.registry import receiving_systems, system_webhooks

log = logging.getLogger("talk_assets.webhooks")


def subscribe_all(public_url: str, inbox: Inbox) -> dict[str, str]:
    """system -> what happened ("subscribed: ...", "kept", "operator-configured", or why not)."""
    out: dict[str, str] = {}
    for key in receiving_systems():
        mod = system_webhooks(key)
        fn = getattr(mod, "subscribe", None)
        if fn is None:
            out[key] = "operator-configured (Standard Webhooks: set the URL and secret in the system)"
            continue
        try:
            created = fn(public_url, inbox)
            out[key] = f"subscribed: {', '.join(created)}" if created else "kept"
        except Exception as exc:  # the system is polled anyway; say why notifications will not come
            out[key] = f"not subscribed, polling only: {str(exc)[:200]}"
            log.warning("webhooks %s: %s", key, out[key])
    return out


def sandbox_subscribe(sandbox_url: str, system: str, public_url: str) -> None:
    """Register our receiver in a custom-API sandbox (its control API), as the API's operator would."""
    from talk_assets.systems.customapi.webhooks import ACTIONS

    mod = system_webhooks(system)
    topics = list(getattr(mod, "TOPICS", []))
    assert all(t.rsplit(".", 1)[-1] in ACTIONS for t in topics)
    r = requests.post(f"{sandbox_url}/_sandbox/webhooks/subscriptions", timeout=10, json={
        "url": f"{public_url}/webhooks/{system}", "topics": topics,
        "secret": settings().webhook_secret(system)})
    r.raise_for_status()
