"""Webhooks of our own custom APIs (CRM and webshop), per the Standard Webhooks specification.

https://www.standardwebhooks.com/ (spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
headers `webhook-id` (the same on every retry: our de-duplication key), `webhook-timestamp` (Unix
seconds of the attempt) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
space-separated when a secret is being rotated), the secret a `whsec_`-prefixed base64 key.
Signing and verifying use the maintained `standardwebhooks` package, not our own HMAC code; it
refuses a timestamp more than 5 minutes from now (the spec's recommended tolerance, fixed in the
library), which is the replay defence together with the inbox's seen-id check.

Events are `<entity>.created`, `<entity>.updated` and `<entity>.deleted` with a thin payload
(`{"type", "timestamp", "data": {"id", "updated_at"}}`): the sync reads the record itself.
Subscriptions are configuration of the API's operator (the URL `<TALK_WEBHOOK_PUBLIC_URL>/webhooks/
<system>` and the shared secret `TALK_<SYSTEM>_WEBHOOK_SECRET`), as in the spec; the sandbox takes
them at `POST /_sandbox/webhooks/subscriptions`, which `talk-assets run` calls for you.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from standardwebhooks.webhooks import Webhook

from talk_assets.settings import settings
from talk_assets.webhooks.inbox import Inbox, Notification
from talk_assets.webhooks.sender import Sender, Subscription
from talk_assets.webhooks.verify import Ignored, Refused, json_object

if TYPE_CHECKING:
    from talk_assets.systems.customapi.spec import SystemSpec

ACTIONS = ("created", "updated", "deleted")


def topics(spec: SystemSpec) -> list[str]:
    return [f"{e.name}.{a}" for e in spec.entities for a in ACTIONS]


def receive(spec: SystemSpec, headers: Mapping[str, str], body: bytes, inbox: Inbox) -> Notification:
    """Verify a Standard Webhooks notification with the library, then read which record changed."""
    secret = settings().webhook_secret(spec.key)
    if not secret:
        raise Refused(401, f"no signing secret: set TALK_{spec.key.upper()}_WEBHOOK_SECRET")
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not headers.get(h)]
    if missing:
        raise Refused(401, f"missing {', '.join(missing)} header")
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except Exception as exc:  # the library's WebhookVerificationError, or a malformed header/body
        raise Refused(401, f"signature not verified: {type(exc).__name__}: {str(exc)[:80]}") from None
    data = json_object(body)
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in topics(spec):
        raise Ignored(f"topic {str(kind)[:60]!r} is not one the sync reads")
    entity = kind.rsplit(".", 1)[0]
    rec = data.get("data") if isinstance(data.get("data"), dict) else {}
    rid = rec.get("id")
    updated = rec.get("updated_at") if isinstance(rec.get("updated_at"), str) else None
    verb = {"created": "create", "updated": "update", "deleted": "delete"}[kind.rsplit(".", 1)[1]]
    return Notification(system=spec.key, event_id=headers["webhook-id"], topic=kind, entity=entity,
                        record_id=None if rid is None else str(rid), updated_at=updated, action=verb)


# -- sandbox side --------------------------------------------------------------------------------
def sign(sub: Subscription, topic: str, event_id: str, body: bytes, attempt: int) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (a retry keeps the id, gets a new timestamp)."""
    now = datetime.fromtimestamp(int(time.time()), UTC)
    return {"content-type": "application/json", "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(sub.secret).sign(event_id, now, body.decode())}


def sender(system: str) -> Sender:
    return Sender(system, sign)


def notify(app: Any, entity: str, action: str, rec: dict[str, Any]) -> None:
    """Called by the custom API sandbox where a record changes (talk_assets/systems/customapi/sandbox.py)."""
    payload = {"type": f"{entity}.{action}", "timestamp": app.now().isoformat().replace("+00:00", "Z"),
               "data": {"id": rec.get("id"), "updated_at": rec.get("updated_at")}}
    app.webhooks.notify(f"{entity}.{action}", payload, event_id=f"msg_{_ulidish()}")


def _ulidish() -> str:
    """A unique, time-ordered message id (the spec's examples use `msg_` + a ULID-like string)."""
    import uuid

    return f"{time.time_ns():x}{uuid.uuid4().hex[:10]}"


# -- the OpenAPI 3.1 `webhooks` section (talk_assets/systems/customapi/openapi.py adds it) -------------
def openapi_webhooks(spec: SystemSpec) -> dict[str, Any]:
    """One webhook per event type: what the API POSTs to a subscriber, with the Standard Webhooks headers."""
    headers = [
        {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "Unique message id, the same on every retry (use it to de-duplicate)."},
        {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string",
                                                                                   "pattern": "^[0-9]+$"},
         "description": "Unix seconds of this attempt; refuse one more than 5 minutes away (replay)."},
        {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string"},
         "description": "Space-separated `v1,<base64 HMAC-SHA256>` signatures of `{id}.{timestamp}.{body}` "
                        "keyed with the subscriber's `whsec_` secret (several while a secret is rotated)."},
    ]
    out: dict[str, Any] = {}
    for e in spec.entities:
        for action in ACTIONS:
            kind = f"{e.name}.{action}"
            body = {"type": "object", "required": ["type", "timestamp", "data"], "properties": {
                "type": {"const": kind},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "integer"},
                    "updated_at": {"type": ["string", "null"], "format": "date-time"}}}}}
            out[kind] = {"post": {
                "summary": f"A {e.name} record was {action}",
                "description": "Sent per the Standard Webhooks specification (https://www.standardwebhooks.com/); "
                               "a thin payload: read the record from the API. Retried with backoff on a "
                               "non-2xx answer or a timeout; may arrive twice or out of order.",
                "parameters": headers,
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {"200": {"description": "Received (any 2xx stops the retries)."},
                              "401": {"description": "Signature or timestamp not accepted; not retried as valid."}},
            }}
    return out
