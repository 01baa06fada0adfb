"""Squarespace webhooks: `order.create` / `order.update`, the `Squarespace-Signature`, subscriptions.

Vendor facts (https://developers.squarespace.com/webhooks/overview,
https://developers.squarespace.com/webhooks/verifying-notifications,
https://developers.squarespace.com/webhooks/notification-delivery,
https://developers.squarespace.com/commerce-apis/webhook-subscriptions-overview):
- Subscriptions are made with the Webhook Subscriptions API (`/1.0/webhook_subscriptions`), which
  must be called with an **OAuth token** (an OAuth app's, `TALK_SQUARESPACE_OAUTH_TOKEN`), not an API
  key: with only an API key the sync cannot subscribe and Squarespace is polled, as before.
- Each subscription has its own hex `secret`, returned only when it is created or rotated
  (`POST /1.0/webhook_subscriptions/{id}/actions/rotateSecret`); we keep it in the webhook inbox.
- `Squarespace-Signature` = HMAC-SHA256 keyed with the *hex-decoded* secret over the raw body. The
  docs do not say in words how the header's digest is encoded; we compare it as hex (lower or
  upper case), the form of the docs' example. Compared in constant time.
- Delivery is "at least once", retried up to 48 hours, in no guaranteed order: de-duplication by the
  payload's notification `id`, ordering by its `createdOn`. No signed timestamp: replays are refused
  by the seen-id check.
- Payload: `{"id", "websiteId", "subscriptionId", "topic", "createdOn", "data": {"orderId", ...}}`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets as pysecrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests

from talk_assets.systems.squarespace.info import INFO as SQUARESPACE
from talk_assets.webhooks.inbox import Inbox, Notification
from talk_assets.webhooks.sender import Sender, Subscription
from talk_assets.webhooks.verify import Ignored, Refused, json_object, same

SUPPORTED = True
TOPICS = {"order.create": "orders", "order.update": "orders"}
SUBSCRIPTIONS = "/1.0/webhook_subscriptions"
OAUTH_ENV = "TALK_SQUARESPACE_OAUTH_TOKEN"
SANDBOX_OAUTH_TOKEN = "sqsp-sandbox-oauth-token"  # what the sandbox accepts as an OAuth app's token
MAX_SUBSCRIPTIONS = 25  # "Squarespace websites support a maximum of 25 webhook subscriptions"


def signature(secret_hex: str, body: bytes) -> str:
    return hmac.new(bytes.fromhex(secret_hex), body, hashlib.sha256).hexdigest()


def receive(headers: Mapping[str, str], body: bytes, inbox: Inbox) -> Notification:
    given = (headers.get("squarespace-signature") or "").strip().lower()
    if not given:
        raise Refused(401, "missing Squarespace-Signature header")
    keys = inbox.secrets("squarespace")
    if not keys:
        raise Refused(401, "no Squarespace subscription secret is known (subscribe first)")
    if not any(same(signature(k, body), given) for k in keys):
        raise Refused(401, "Squarespace-Signature does not match the body")
    data = json_object(body)
    topic = data.get("topic")
    if topic not in TOPICS:
        raise Ignored(f"topic {str(topic)[:60]!r} is not one the sync reads")
    nid = data.get("id")
    if not isinstance(nid, str) or not nid:
        raise Refused(400, "notification has no id")
    order = data.get("data") if isinstance(data.get("data"), dict) else {}
    rid = order.get("orderId")
    created = data.get("createdOn") if isinstance(data.get("createdOn"), str) else None
    return Notification(system="squarespace", event_id=nid, topic=str(topic), entity=TOPICS[str(topic)],
                        record_id=None if rid is None else str(rid), updated_at=created,
                        action="create" if topic == "order.create" else "update")


# -- subscriptions (the sync's side) -------------------------------------------------------------
def oauth_token() -> str:
    return os.environ.get(OAUTH_ENV) or SANDBOX_OAUTH_TOKEN


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {oauth_token()}", "User-Agent": "talk-assets webhooks",
            "Content-Type": "application/json"}


class NeedsOAuth(RuntimeError):
    """The Webhook Subscriptions API refused the token: Squarespace stays on polling."""


def subscribe(public_url: str, inbox: Inbox) -> list[str]:
    """Make sure one subscription to both order topics points at our receiver, and that we hold its
    secret (rotating it when we do not, since Squarespace shows a secret only once)."""
    base, endpoint = SQUARESPACE.url(), f"{public_url}/webhooks/squarespace"
    r = requests.get(base + SUBSCRIPTIONS, headers=_headers(), timeout=30)
    if r.status_code in (401, 403):
        raise NeedsOAuth(f"Squarespace webhook subscriptions need an OAuth token ({OAUTH_ENV}); "
                         "an API key cannot subscribe, so Squarespace is polled")
    r.raise_for_status()
    ours = [s for s in r.json().get("webhookSubscriptions", []) if s.get("endpointUrl") == endpoint]
    if not ours:
        r = requests.post(base + SUBSCRIPTIONS, headers=_headers(), timeout=30,
                          json={"endpointUrl": endpoint, "topics": list(TOPICS)})
        r.raise_for_status()
        sub = r.json()
        inbox.save_secret("squarespace", sub["id"], sub["secret"])
        return list(TOPICS)
    for s in ours:
        if not inbox.secrets("squarespace", s["id"]):
            rotate(s["id"], inbox)
    return []


def rotate(subscription_id: str, inbox: Inbox) -> None:
    """Rotate a subscription's secret; the previous one stays valid for notifications in flight."""
    r = requests.post(f"{SQUARESPACE.url()}{SUBSCRIPTIONS}/{subscription_id}/actions/rotateSecret",
                      headers=_headers(), timeout=30)
    r.raise_for_status()
    inbox.save_secret("squarespace", subscription_id, r.json()["secret"])


# -- sandbox side --------------------------------------------------------------------------------
def sign(sub: Subscription, topic: str, event_id: str, body: bytes, attempt: int) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": "Squarespace/1.0",
            "Squarespace-Signature": signature(sub.secret, body)}


def sender() -> Sender:
    return Sender("squarespace", sign)


def notify(app: Any, table: str, rec: dict[str, Any], created: bool) -> None:
    """Called by the Squarespace sandbox where an order is saved."""
    if table != "orders":
        return
    topic = "order.create" if created else "order.update"
    for sub in list(app.webhooks.subscriptions.values()):
        if topic not in sub.topics:
            continue
        data: dict[str, Any] = {"orderId": rec.get("id")}
        if not created:
            data["update"] = "FULFILLED" if rec.get("fulfillmentStatus") == "FULFILLED" else "UPDATED"
        payload = {"id": uuid.uuid4().hex[:24], "websiteId": "sandbox-website", "subscriptionId": sub.id,
                   "topic": topic, "createdOn": datetime.now(UTC).isoformat(timespec="milliseconds")
                   .replace("+00:00", "Z"), "data": data}
        app.webhooks.notify(topic, payload, event_id=payload["id"])


def authenticate(req: Any) -> None:
    """The Webhook Subscriptions API takes an OAuth token only (the docs' note); the status an API key
    gets is not documented: the sandbox answers 401 as for invalid credentials."""
    from talk_assets.sandbox.server import HttpError

    if (req.header("Authorization") or "") != f"Bearer {SANDBOX_OAUTH_TOKEN}":
        raise HttpError(401, "Webhook subscriptions require an OAuth token")


def install(app: Any) -> None:
    """The Webhook Subscriptions API on the Squarespace sandbox."""
    from talk_assets.sandbox.server import HttpError, Response

    def shown(s: Subscription, with_secret: bool = False) -> dict[str, Any]:
        out = {"id": s.id, "endpointUrl": s.url, "topics": s.topics, "createdOn": s.created_at,
               "updatedOn": s.created_at}
        return {**out, "secret": s.secret} if with_secret else out

    def list_(req: Any) -> Response:
        return Response(200, {"webhookSubscriptions": [shown(s) for s in app.webhooks.subscriptions.values()]})

    def create(req: Any) -> Response:
        body = req.json()
        url, topics = body.get("endpointUrl"), body.get("topics")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise HttpError(400, "'endpointUrl' is invalid", field="endpointUrl", subtype="INVALID_ARGUMENT")
        if not isinstance(topics, list) or not topics or any(t not in (*TOPICS, "extension.uninstall")
                                                             for t in topics):
            raise HttpError(400, "'topics' is invalid", field="topics", subtype="INVALID_ARGUMENT")
        if len(app.webhooks.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise HttpError(400, "A website supports at most 25 webhook subscriptions", subtype="INVALID_ARGUMENT")
        sub = app.webhooks.subscribe(url, topics, pysecrets.token_hex(32))
        return Response(200, shown(sub, with_secret=True))

    def rotate_(req: Any) -> Response:
        sub = app.webhooks.subscriptions.get(req.params["id"])
        if sub is None:
            raise HttpError(404, "Webhook subscription not found")
        sub.secret = pysecrets.token_hex(32)
        return Response(200, {"secret": sub.secret})

    def delete(req: Any) -> Response:
        if not app.webhooks.unsubscribe(req.params["id"]):
            raise HttpError(404, "Webhook subscription not found")
        return Response(204, None)

    app.route("GET", SUBSCRIPTIONS, list_, "webhook_subscriptions")
    app.route("POST", SUBSCRIPTIONS, create, "webhook_subscriptions")
    app.route("POST", SUBSCRIPTIONS + r"/(?P<id>[^/]+)/actions/rotateSecret", rotate_,
              "webhook_subscriptions/{id}/actions/rotateSecret")
    app.route("DELETE", SUBSCRIPTIONS + r"/(?P<id>[^/]+)", delete, "webhook_subscriptions/{id}")
