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
- Payload: `{"id", "websiteId", "subscriptionId", "topic", "createdOn", "data": {"orderId", ...}}`;
  an `order.update`'s `data` also has `update`, "describes the update to the order. Values can include:
  FULFILLED, REFUNDED, CANCELED, MARKED_PENDING, or EMAIL_UPDATED"
  (https://developers.squarespace.com/webhooks/events/order-update). `createdOn` is the notification's
  time, not the order's `modifiedOn`: nothing in it is a record time.

The sync's own writes: the only write the Orders API allows to an existing order is its fulfilment
(`POST /1.0/commerce/orders/{id}/fulfillments`, https://developers.squarespace.com/commerce-apis/fulfill-order;
client.update_record("orders", ...)), whose echo is an `order.update` with `update: FULFILLED`; an order
the sync imports comes back as `order.create` (recognised by its id). The update echo has no record time,
so `own_echoes` asks the inbox to recognise it by order, update kind and arrival just after the write
(webhooks/inbox.py, `Echo.by_arrival`). Not covered, because the notification does not carry it: which
fulfilment (shipment) an update names, so a person's fulfilment of the same order within the window
may be claimed instead of ours (then ours starts the run, and nothing is lost unless ours never comes);
an echo retried after a failed delivery, later than the window, starts a run. A real Squarespace could
be matched more closely by re-reading the order (its `fulfillments` and `modifiedOn`) at receipt, which
costs an API call per notification and is not done. Today no view writes an order update (the order
view's fields are written at import only), so this covers the client's fulfilment path for when one does.
Product and inventory writes have no notification topic here: they are not recorded at all.
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
from talk_assets.webhooks.inbox import Echo, Inbox, Notification
from talk_assets.webhooks.sender import Sender, Subscription
from talk_assets.webhooks.verify import Ignored, Refused, json_object, same

SUPPORTED = True
TOPICS = {"order.create": "orders", "order.update": "orders"}
# an order's `fulfillmentStatus` after a change -> the `update` its `order.update` names (the documented values)
UPDATE_KINDS = {"FULFILLED": "FULFILLED", "CANCELED": "CANCELED", "PENDING": "MARKED_PENDING"}
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
    kind = order.get("update") if topic == "order.update" and isinstance(order.get("update"), str) else None
    return Notification(system="squarespace", event_id=nid, topic=str(topic), entity=TOPICS[str(topic)],
                        record_id=None if rid is None else str(rid), updated_at=created,
                        action="create" if topic == "order.create" else "update", kind=kind)


def own_echoes(entity: str, record_id: str, action: str, answer: Any) -> list[Echo] | None:
    """The notifications a write of ours causes (webhooks/own_writes.py): an imported order's
    `order.create` (by its id); a fulfilment's `order.update` of kind FULFILLED, by arrival (it carries
    no record time); nothing for products and inventory (no topic)."""
    if entity != "orders":
        return []
    if action == "create":
        return [Echo("orders", record_id, "create")]
    status = answer.get("fulfillmentStatus") if isinstance(answer, dict) else None
    return [Echo("orders", record_id, "update", kind=UPDATE_KINDS.get(str(status)), by_arrival=True)]


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
            # a documented value (module docstring) from the order as saved: the sandbox keeps no previous
            # state here, so a refund or an e-mail change of a fulfilled order is told as FULFILLED
            data["update"] = UPDATE_KINDS.get(str(rec.get("fulfillmentStatus")), "MARKED_PENDING")
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
