"""Shopify webhooks: verification, the topics the sync reads, subscriptions, and the sandbox's sender.

Vendor facts (https://shopify.dev/docs/apps/build/webhooks/verify-deliveries and
https://shopify.dev/docs/apps/build/webhooks/delivery-structure):
- `X-Shopify-Hmac-Sha256` is the base64 HMAC-SHA256 of the raw body keyed with the app's client
  secret (`TALK_SHOPIFY_WEBHOOK_SECRET`); compared in constant time. After a secret rotation Shopify
  may sign with the old one for up to an hour, so a previous secret can be given too
  (`TALK_SHOPIFY_WEBHOOK_SECRET_PREVIOUS`).
- `X-Shopify-Webhook-Id` identifies a delivery and stays the same on retries: the de-duplication
  key. `X-Shopify-Event-Id` identifies the event (shared by the deliveries to several subscriptions).
- Shopify gives 5 s to answer and retries 8 times over 4 hours; it does not promise order, so the
  record's `updated_at` orders notifications (the inbox marks an older one stale).
- The payload carries no timestamp that is signed, so replays are refused by the seen-id check.
- `products/*` name the product (payload `id`, its variants under `variants[].id`, the product's
  `updated_at`; /work/shared/reference/shopify/product.json), also for a change of one variant, and a
  change of a variant's stock comes as `products/update` too ("it does in fact always fire" for an
  inventory level update, Shopify staff at
  https://community.shopify.com/c/Shopify-APIs-SDKs/Will-products-update-webhook-always-fire-when-an-inventory-level/m-p/825619).

The sync's own writes (`own_echoes`): a customer's or an order's echo names the record written and is
matched by its change time (or as the create); a product variant's write is addressed to the variant
(and its inventory item), so its echoes are recorded under the variant's product: one per mutation the
writer made (productUpdate, productVariantsBulkUpdate, inventorySetQuantities; client.py `MUTATIONS`; a create is
`productSet` and, where the new variant's stock did not come out as asked, an `inventorySetQuantities`),
each recognised by arrival just after the write (webhooks/inbox.py `Echo.by_arrival`), since the
writer's answer is the variant as read before the write and carries no new change time. Not covered:
a mutation that changes nothing may not be notified by a real Shopify, and its record then claims a
person's edit of the same product within the window (that edit waits for polling).

Subscriptions: created with the GraphQL `webhookSubscriptionCreate` (Shopify's current way; the
sandbox's GraphQL endpoint stores them, graphql_mutations.py), through REST `webhooks.json` where
a shop has no GraphQL endpoint, with the topics the sync's Shopify entities need.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests

from talk_assets.settings import settings
from talk_assets.systems.shopify.info import INFO as SHOPIFY
from talk_assets.webhooks.inbox import Echo, Inbox, Notification
from talk_assets.webhooks.sender import Sender, Subscription
from talk_assets.webhooks.verify import Ignored, Refused, json_object, same

SUPPORTED = True
# topic -> the Shopify source entity it changes (talk_assets/systems/shopify/views.py SOURCES)
TOPICS = {
    "customers/create": "customer", "customers/update": "customer", "customers/delete": "customer",
    "products/create": "product", "products/update": "product", "products/delete": "product",
    "orders/create": "order", "orders/updated": "order", "orders/cancelled": "order", "orders/delete": "order",
}
SHOP_DOMAIN = "talk-sandbox.myshopify.com"


def hmac_b64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def secrets() -> list[str]:
    current = settings().webhook_secret("shopify")
    previous = os.environ.get("TALK_SHOPIFY_WEBHOOK_SECRET_PREVIOUS", "")
    return [s for s in (current, previous) if s]


def receive(headers: Mapping[str, str], body: bytes, inbox: Inbox) -> Notification:
    given = headers.get("x-shopify-hmac-sha256")
    if not given:
        raise Refused(401, "missing X-Shopify-Hmac-Sha256 header")
    keys = secrets()
    if not keys:
        raise Refused(401, "no signing secret: set TALK_SHOPIFY_WEBHOOK_SECRET")
    if not any(same(hmac_b64(k, body), given.strip()) for k in keys):
        raise Refused(401, "X-Shopify-Hmac-Sha256 does not match the body")
    webhook_id = headers.get("x-shopify-webhook-id")
    if not webhook_id:
        raise Refused(400, "missing X-Shopify-Webhook-Id header")
    topic = headers.get("x-shopify-topic") or ""
    if topic not in TOPICS:
        raise Ignored(f"topic {topic[:60]!r} is not one the sync reads")
    data = json_object(body)
    rid = data.get("id")
    updated = data.get("updated_at") if isinstance(data.get("updated_at"), str) else None
    return Notification(system="shopify", event_id=webhook_id, topic=topic, entity=TOPICS[topic],
                        record_id=None if rid is None else str(rid), updated_at=updated, action=action(topic))


def own_echoes(entity: str, record_id: str, action: str, answer: Any) -> list[Echo] | None:
    """The notifications a write of ours causes (webhooks/own_writes.py). A product variant's write is
    notified under its product; None (the plain case: the record written, by its change time) else."""
    if entity != "product" or not isinstance(answer, dict) or answer.get("product_id") in (None, ""):
        return None
    from talk_assets.systems.shopify.client import MUTATIONS

    product_id = str(answer["product_id"])
    made = answer.get(MUTATIONS)
    made = made if isinstance(made, int) and made > 0 else 1
    if action == "create":  # `products/create`, then a `products/update` per mutation after `productSet`
        return [Echo("product", product_id, "create")] + [Echo("product", product_id, "update", by_arrival=True)] * (made - 1)
    return [Echo("product", product_id, "update", by_arrival=True)] * made


def action(topic: str) -> str:
    """`customers/create` -> create; `orders/updated`, `orders/cancelled` -> update; `.../delete` -> delete."""
    verb = topic.rsplit("/", 1)[-1]
    return verb if verb in ("create", "delete") else "update"


# -- subscriptions (the sync's side) -------------------------------------------------------------
def _api() -> tuple[str, dict[str, str]]:
    base = f"{SHOPIFY.url()}/admin/api/{SHOPIFY.value('api_version')}"
    return base, {"X-Shopify-Access-Token": SHOPIFY.value("access_token"), "Content-Type": "application/json"}


def graphql_topic(topic: str) -> str:
    """`customers/update` -> `CUSTOMERS_UPDATE` (the GraphQL `WebhookSubscriptionTopic` enum)."""
    return topic.replace("/", "_").upper()


def rest_topic(enum: str) -> str:
    """`ORDERS_UPDATED` -> `orders/updated`."""
    return enum.lower().replace("_", "/", 1)


_LIST = """query($uri: String!, $after: String) {
  webhookSubscriptions(first: 100, uri: $uri, after: $after) {
    nodes { id topic uri } pageInfo { hasNextPage endCursor } } }"""
_CREATE = """mutation($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id } userErrors { field message } } }"""


def _graphql(base: str, headers: dict[str, str], query: str, variables: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"{base}/graphql.json", headers=headers, json={"query": query, "variables": variables},
                      timeout=30)
    r.raise_for_status()
    body = r.json()
    if body.get("errors"):
        raise RuntimeError(f"Shopify GraphQL: {str(body['errors'])[:300]}")
    return body["data"]


def subscribe(public_url: str, inbox: Inbox | None = None) -> list[str]:
    """Make sure every topic the sync reads is subscribed at `<public_url>/webhooks/shopify`; the topics
    created now. Existing subscriptions to our address are kept (idempotent: run on every start).
    Through the GraphQL Admin API (`webhookSubscriptions`, `webhookSubscriptionCreate`), Shopify's
    current way; where the shop answers 404 for `graphql.json`, through REST `webhooks.json`."""
    base, headers = _api()
    address = f"{public_url}/webhooks/shopify"
    probe = requests.post(f"{base}/graphql.json", headers=headers, timeout=30,
                          json={"query": _LIST, "variables": {"uri": address}})
    if probe.status_code == 404:
        return _subscribe_rest(base, headers, address)
    have: set[str] = set()
    after = None
    while True:
        page = _graphql(base, headers, _LIST, {"uri": address, "after": after})["webhookSubscriptions"]
        have |= {rest_topic(n["topic"]) for n in page["nodes"] if n.get("uri") == address}
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    created = []
    for topic in TOPICS:
        if topic in have:
            continue
        out = _graphql(base, headers, _CREATE, {"topic": graphql_topic(topic),
                                                "sub": {"uri": address, "format": "JSON"}})
        errors = out["webhookSubscriptionCreate"]["userErrors"]
        if errors:
            raise RuntimeError(f"Shopify webhookSubscriptionCreate {topic}: {errors[0].get('message')}")
        created.append(topic)
    return created


def _subscribe_rest(base: str, headers: dict[str, str], address: str) -> list[str]:
    r = requests.get(f"{base}/webhooks.json", headers=headers, params={"address": address}, timeout=30)
    r.raise_for_status()
    have = {w["topic"] for w in r.json().get("webhooks", []) if w.get("address") == address}
    created = []
    for topic in TOPICS:
        if topic in have:
            continue
        r = requests.post(f"{base}/webhooks.json", headers=headers, timeout=30,
                          json={"webhook": {"topic": topic, "address": address, "format": "json"}})
        r.raise_for_status()
        created.append(topic)
    return created


# -- sandbox side --------------------------------------------------------------------------------
def sign(sub: Subscription, topic: str, event_id: str, body: bytes, attempt: int) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": hmac_b64(sub.secret, body), "X-Shopify-Shop-Domain": SHOP_DOMAIN,
            "X-Shopify-API-Version": SHOPIFY.value("api_version"), "X-Shopify-Webhook-Id": event_id,
            "X-Shopify-Event-Id": event_id.split(":")[0],
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat()}


def sender() -> Sender:
    return Sender("shopify", sign)


_RESOURCE = {"customers": "customers", "products": "products", "orders": "orders"}


def notify(app: Any, table: str, rec: dict[str, Any], action: str) -> None:
    """Called by the Shopify sandbox where a customer, product or order changes; `action` is create,
    update or delete. The payload is the resource as the REST API shows it (Shopify's webhook payloads
    are the resource's JSON)."""
    if table not in _RESOURCE:
        return
    _adopt_graphql_subscriptions(app)
    topic = f"{table}/{'updated' if table == 'orders' and action == 'update' else action}"
    if topic not in TOPICS:
        return
    payload = rec if action != "delete" else {"id": rec.get("id")}
    app.webhooks.notify(topic, payload, event_id=str(uuid.uuid4()))


def _adopt_graphql_subscriptions(app: Any) -> None:
    """Subscriptions made through the GraphQL sandbox (graphql_mutations.py keeps them in its own
    store) are delivered by the same sender as the REST ones."""
    api = getattr(app, "_graphql", None)
    store = getattr(api, "webhooks", None)
    if not isinstance(store, dict):
        return
    want = {f"gql-{wid}": w for wid, w in store.items()}
    for sid in [sid for sid in app.webhooks.subscriptions if sid.startswith("gql-") and sid not in want]:
        app.webhooks.unsubscribe(sid)
    for sid, w in want.items():
        if sid not in app.webhooks.subscriptions and str(w.get("uri") or "").startswith(("http://", "https://")):
            app.webhooks.subscribe(w["uri"], [rest_topic(str(w["topic"]))], settings().webhook_secret("shopify"),
                                   sub_id=sid)


def install(app: Any) -> None:
    """The REST webhook resource on the Shopify sandbox: list, create, delete (the real paths)."""
    from talk_assets.sandbox.server import HttpError, Response

    v = r"/admin/api/(?P<version>\d{4}-\d{2}|unstable)"

    def shown(sub: Subscription) -> dict[str, Any]:
        return {"id": int(sub.id), "address": sub.url, "topic": sub.topics[0], "created_at": sub.created_at,
                "updated_at": sub.created_at, "format": "json", "fields": [], "metafield_namespaces": [],
                "api_version": SHOPIFY.value("api_version")}

    def list_(req: Any) -> Response:
        address = req.arg("address")
        subs = [shown(s) for s in app.webhooks.subscriptions.values() if address in (None, s.url)]
        return Response(200, {"webhooks": subs})

    def create(req: Any) -> Response:
        data = app._body(req, "webhook")
        topic, address = data.get("topic"), data.get("address")
        if topic not in TOPICS and topic not in ("app/uninstalled",):
            raise HttpError(422, "Invalid topic specified: " + str(topic), errors={"topic": [
                "Invalid topic specified. Topics allowed: " + ", ".join(TOPICS)]})
        if not isinstance(address, str) or not address.startswith(("http://", "https://")):
            raise HttpError(422, "address is invalid", errors={"address": ["is invalid"]})
        if any(s.url == address and s.topics == [topic] for s in app.webhooks.subscriptions.values()):
            raise HttpError(422, "taken", errors={"address": ["for this topic has already been taken"]})
        sid = str(1_000_000 + len(app.webhooks.subscriptions) + 1)
        sub = app.webhooks.subscribe(address, [topic], settings().webhook_secret("shopify"), sub_id=sid)
        return Response(201, {"webhook": shown(sub)})

    def delete(req: Any) -> Response:
        if not app.webhooks.unsubscribe(req.params["id"]):
            raise HttpError(404, "Not Found")
        return Response(200, {})

    app.route("GET", v + r"/webhooks\.json", list_, "webhooks.json")
    app.route("POST", v + r"/webhooks\.json", create, "webhooks.json")
    app.route("DELETE", v + r"/webhooks/(?P<id>\d+)\.json", delete, "webhooks/{id}.json")
