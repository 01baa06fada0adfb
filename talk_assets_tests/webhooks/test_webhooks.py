"""Webhooks over HTTP: the sandboxes notify like the real services, the receiver verifies and stores,
refuses what it must, and the sensors turn the inbox into runs (polling heals what is lost)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import requests
from standardwebhooks.webhooks import Webhook

from talk_assets.config import SYSTEMS
from talk_assets.settings import settings
from talk_assets.sync.sensors import build_inbox_sensor
from talk_assets.systems.shopify import webhooks as shopify_hooks
from talk_assets.systems.squarespace import webhooks as sqsp_hooks
from talk_assets.webhooks.inbox import Inbox, Notification
from talk_assets.webhooks.receiver import ReceiverServer
from talk_assets.webhooks.subscribe import sandbox_subscribe, subscribe_all
from talk_assets_tests.conftest import Sandbox

SQSP_UA = {"User-Agent": "talk-assets tests"}


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReceiverServer]:
    monkeypatch.setenv("TALK_DATA_DIR", str(tmp_path / "data"))
    srv = ReceiverServer(Inbox(tmp_path / "data" / "webhooks.sqlite"), host="127.0.0.1", port=0).start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.inbox.close()


@pytest.fixture
def box(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The shared sandbox with no subscriptions and no webhook faults, before and after."""
    for s in ("shopify", "squarespace", "customcrm", "customwebshop"):
        sandbox.control(s, "DELETE", "webhooks/subscriptions")
        sandbox.control(s, "PUT", "webhooks", json={"enabled": True, "drop_share": 0, "duplicate_share": 0,
                                                     "reorder_share": 0, "fail_share": 0})
    yield sandbox
    for s in ("shopify", "squarespace", "customcrm", "customwebshop"):
        sandbox.control(s, "DELETE", "webhooks/subscriptions")
        sandbox.control(s, "PUT", "webhooks", json={"enabled": True, "drop_share": 0, "duplicate_share": 0,
                                                     "reorder_share": 0, "fail_share": 0})


def _flush(box: Sandbox, system: str) -> dict:
    state = box.control(system, "POST", "webhooks/flush", json={"timeout_s": 15})
    assert state["idle"], state
    return state


def _settled(inbox: Inbox, system: str) -> dict[str, int]:
    """The inbox's counts once the sensor's first step has run: a notification can arrive before the write
    that caused it is recorded (the sender notifies as it answers), and is then claimed by `claim_own`, as
    each inbox sensor tick does before it reads what is pending. Counting at receipt would race."""
    inbox.claim_own(system, 0)
    return inbox.counts(system)


def _ours(state: dict) -> list[dict]:
    """The sandbox's recent deliveries to this test's subscriptions. Its outcome counts are the
    session's: an earlier test's retries to its own (stopped) receiver are counted there too."""
    subs = {s["id"] for s in state["subscriptions"]}
    return [r for r in state["recent"] if r["subscription"] in subs]


def _custom(box: Sandbox, system: str) -> tuple[str, dict[str, str]]:
    """The custom API's base URL and auth header (from its spec)."""
    import importlib

    spec = importlib.import_module(f"talk_assets.systems.{system}.spec").SPEC
    return f"{box.url(system)}{spec.root}", spec.auth_headers(spec.api_key())


def _crm(box: Sandbox) -> tuple[str, dict[str, str]]:
    return _custom(box, "customcrm")


def _crm_customer(box: Sandbox) -> dict:
    base, h = _crm(box)
    r = requests.get(f"{base}/customers", headers=h, params={"limit": 1}, timeout=10)
    r.raise_for_status()
    return r.json()["data"][0]


def _patch_crm(box: Sandbox, cid: int, **fields: object) -> dict:
    base, h = _crm(box)
    r = requests.patch(f"{base}/customers/{cid}", headers=h, json=fields, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _std_post(url: str, body: bytes, secret: str, msg_id: str | None = None,
              when: datetime | None = None) -> requests.Response:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = when or datetime.now(UTC)
    sig = Webhook(secret).sign(msg_id, when, body.decode())
    return requests.post(url, data=body, timeout=10, headers={
        "webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": sig,
        "content-type": "application/json"})


# -- custom CRM / webshop: Standard Webhooks -------------------------------------------------------
def test_a_crm_edit_arrives_verified_in_the_inbox(box: Sandbox, receiver: ReceiverServer) -> None:
    sandbox_subscribe(box.url("customcrm"), "customcrm", receiver.url)
    customer = _crm_customer(box)
    edited = _patch_crm(box, customer["id"], phone="+47 912 34 567")
    state = _flush(box, "customcrm")
    assert [r["outcome"] for r in _ours(state)] == ["delivered"], state
    pending = receiver.inbox.pending("customcrm", 0)
    assert [(p.entity, p.record_id) for p in pending] == [("customers", str(customer["id"]))]
    assert receiver.counts["customcrm new"] == 1
    # the secret is never shown by the control API
    assert settings().webhook_secret("customcrm") not in json.dumps(state)
    assert edited["updated_at"]


def test_standard_webhooks_refusals(box: Sandbox, receiver: ReceiverServer,
                                    caplog: pytest.LogCaptureFixture) -> None:
    url = f"{receiver.url}/webhooks/customwebshop"
    secret = settings().webhook_secret("customwebshop")
    body = json.dumps({"type": "customers.updated", "timestamp": "2026-12-01T10:00:00Z",
                       "data": {"id": 5, "updated_at": "2026-12-01T10:00:00.000Z"}}).encode()
    caplog.set_level(logging.INFO, logger="talk_assets.webhooks")
    forged = _std_post(url, body, "whsec_" + base64.b64encode(b"not the secret at all").decode())
    assert forged.status_code == 401
    missing = requests.post(url, data=body, timeout=10)
    assert missing.status_code == 401 and "missing" in missing.json()["error"]
    old = _std_post(url, body, secret, when=datetime.now(UTC) - timedelta(minutes=10))
    assert old.status_code == 401  # a replayed (old) timestamp
    assert receiver.inbox.pending("customwebshop", 0) == []
    ok = _std_post(url, body, secret, msg_id="msg_once")
    assert ok.status_code == 200 and ok.json()["status"] == "accepted"
    again = _std_post(url, body, secret, msg_id="msg_once")  # a replay of a seen id, freshly signed
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    unknown = _std_post(url, json.dumps({"type": "invoices.paid", "data": {"id": 1}}).encode(), secret)
    assert unknown.status_code == 200 and unknown.json()["status"] == "ignored"
    big = _std_post(url, b'{"type":"customers.updated","pad":"' + b"x" * (settings().webhook_max_body_bytes + 1)
                    + b'"}', secret)
    assert big.status_code == 413
    assert len(receiver.inbox.pending("customwebshop", 0)) == 1
    text = caplog.text
    assert "refused" in text and "ignored" in text
    assert secret not in text and secret.removeprefix("whsec_") not in text


# -- Shopify -----------------------------------------------------------------------------------------
def _shopify(box: Sandbox) -> tuple[str, dict[str, str]]:
    from talk_assets.config import SHOPIFY

    return (f"{box.url('shopify')}/admin/api/{SHOPIFY.value('api_version')}",
            {"X-Shopify-Access-Token": SHOPIFY.value("access_token")})


def test_shopify_subscriptions_are_created_once_and_an_edit_arrives(box: Sandbox, receiver: ReceiverServer) -> None:
    with Inbox(receiver.inbox.path) as inbox:
        first = subscribe_all(receiver.url, inbox)
        second = subscribe_all(receiver.url, inbox)
    assert first["shopify"].startswith("subscribed") and second["shopify"] == "kept"
    base, h = _shopify(box)
    listed = requests.post(f"{base}/graphql.json", headers=h, timeout=30, json={
        "query": "{ webhookSubscriptions(first: 50) { nodes { topic uri } } }"}).json()
    nodes = listed["data"]["webhookSubscriptions"]["nodes"]
    assert sorted(shopify_hooks.rest_topic(n["topic"]) for n in nodes) == sorted(shopify_hooks.TOPICS)
    assert {n["uri"] for n in nodes} == {f"{receiver.url}/webhooks/shopify"}
    customer = requests.get(f"{base}/customers.json", headers=h, params={"limit": 1}, timeout=10).json()["customers"][0]
    r = requests.put(f"{base}/customers/{customer['id']}.json", headers=h, timeout=10,
                     json={"customer": {"id": customer["id"], "note": f"webhook {uuid.uuid4().hex[:6]}"}})
    assert r.status_code == 200, r.text
    _flush(box, "shopify")
    pending = receiver.inbox.pending("shopify", 0)
    assert [(p.entity, p.record_id) for p in pending] == [("customer", str(customer["id"]))]


def test_shopify_hmac_refusals_and_duplicates(box: Sandbox, receiver: ReceiverServer) -> None:
    url = f"{receiver.url}/webhooks/shopify"
    body = json.dumps({"id": 42, "updated_at": "2026-12-01T10:00:00+01:00", "note": "ø 🎉\n"}).encode()
    secret = settings().webhook_secret("shopify")
    good = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    head = {"X-Shopify-Topic": "customers/update", "X-Shopify-Webhook-Id": "w-1", "Content-Type": "application/json"}
    assert requests.post(url, data=body, headers=head, timeout=10).status_code == 401  # no signature
    forged = base64.b64encode(hmac.new(b"guess", body, hashlib.sha256).digest()).decode()
    assert requests.post(url, data=body, headers={**head, "X-Shopify-Hmac-Sha256": forged}, timeout=10).status_code == 401
    tampered = body.replace(b"42", b"43")
    assert requests.post(url, data=tampered, headers={**head, "X-Shopify-Hmac-Sha256": good},
                         timeout=10).status_code == 401
    assert requests.post(url, data=body, headers={**head, "X-Shopify-Hmac-Sha256": good}, timeout=10).json() == {
        "status": "accepted"}
    assert requests.post(url, data=body, headers={**head, "X-Shopify-Hmac-Sha256": good}, timeout=10).json() == {
        "status": "duplicate"}
    unknown = {**head, "X-Shopify-Topic": "carts/update", "X-Shopify-Webhook-Id": "w-2", "X-Shopify-Hmac-Sha256": good}
    assert requests.post(url, data=body, headers=unknown, timeout=10).json() == {"status": "ignored"}
    assert len(receiver.inbox.pending("shopify", 0)) == 1


def test_sandbox_duplicates_and_reorders_and_the_inbox_keeps_one_fresh_event(box: Sandbox,
                                                                               receiver: ReceiverServer) -> None:
    sandbox_subscribe(box.url("customcrm"), "customcrm", receiver.url)
    box.control("customcrm", "PUT", "webhooks", json={"duplicate_share": 1.0, "reorder_share": 1.0, "seed": 3})
    customer = _crm_customer(box)
    _patch_crm(box, customer["id"], phone="+47 900 00 001")
    time.sleep(0.01)
    _patch_crm(box, customer["id"], phone="+47 900 00 002")
    state = _flush(box, "customcrm")
    assert any(r["outcome"] == "duplicate sent" for r in _ours(state)), state
    counts = receiver.counts
    assert counts["customcrm duplicate"] >= 1  # a duplicate reached the receiver and was not stored again
    # the two edits arrived newest first (the first one was held back): the older one is stale
    assert counts["customcrm stale"] == 1, dict(counts)
    assert len(receiver.inbox.pending("customcrm", 0)) == 1


def test_a_failed_delivery_is_retried_with_the_same_id(box: Sandbox, receiver: ReceiverServer) -> None:
    sandbox_subscribe(box.url("customwebshop"), "customwebshop", receiver.url)
    box.control("customwebshop", "PUT", "webhooks", json={"fail_share": 1.0, "retry_delays_s": [0.1, 0.1]})
    base, h = _custom(box, "customwebshop")
    rec = requests.get(f"{base}/customers", headers=h, params={"limit": 1}, timeout=10).json()["data"][0]
    assert requests.patch(f"{base}/customers/{rec['id']}", headers=h, json={"phone": "+47 911 11 111"},
                          timeout=10).status_code == 200
    state = _flush(box, "customwebshop")
    tries = [r for r in _ours(state) if r["topic"] == "customers.updated"]
    assert [t["outcome"] for t in tries] == ["retrying", "delivered"] and len({t["event_id"] for t in tries}) == 1
    assert len(receiver.inbox.pending("customwebshop", 0)) == 1


# -- Squarespace ---------------------------------------------------------------------------------------
def test_squarespace_needs_oauth_to_subscribe(box: Sandbox, receiver: ReceiverServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from talk_assets.config import SQUARESPACE

    monkeypatch.setenv(sqsp_hooks.OAUTH_ENV, SQUARESPACE.value("api_key"))  # an API key is not enough
    out = subscribe_all(receiver.url, receiver.inbox)
    assert out["squarespace"].startswith("not subscribed, polling only") and sqsp_hooks.OAUTH_ENV in out["squarespace"]
    assert SQUARESPACE.value("api_key") not in out["squarespace"]


def test_squarespace_signature_and_secret_rotation(box: Sandbox, receiver: ReceiverServer) -> None:
    out = subscribe_all(receiver.url, receiver.inbox)
    assert out["squarespace"].startswith("subscribed"), out
    [sub_id] = receiver.inbox.subscription_ids("squarespace")
    old_secret = receiver.inbox.secrets("squarespace")[0]
    url = f"{receiver.url}/webhooks/squarespace"

    def post(secret: str, nid: str) -> requests.Response:
        body = json.dumps({"id": nid, "websiteId": "w", "subscriptionId": sub_id, "topic": "order.update",
                           "createdOn": datetime.now(UTC).isoformat(), "data": {"orderId": "abc"}}).encode()
        return requests.post(url, data=body, timeout=10, headers={
            "Squarespace-Signature": sqsp_hooks.signature(secret, body), "Content-Type": "application/json"})

    assert post(old_secret, "n1").json()["status"] == "accepted"
    assert post("ab" * 32, "n2").status_code == 401  # forged
    sqsp_hooks.rotate(sub_id, receiver.inbox)
    new_secret = receiver.inbox.secrets("squarespace")[0]
    assert new_secret != old_secret
    assert post(new_secret, "n3").json()["status"] == "accepted"
    assert post(old_secret, "n4").json()["status"] == "accepted"  # in flight before the rotation
    # the sandbox signs with the rotated secret: a real order change arrives verified
    orders = requests.get(f"{box.url('squarespace')}/1.0/commerce/orders", timeout=10,
                          headers={**SQSP_UA, **_sqsp_auth()}).json()["result"]
    order = next(o for o in orders if o["fulfillmentStatus"] == "PENDING")
    r = requests.post(f"{box.url('squarespace')}/1.0/commerce/orders/{order['id']}/fulfillments", timeout=10,
                      headers={**SQSP_UA, **_sqsp_auth()}, json={"shouldSendNotification": False, "shipments": []})
    assert r.status_code in (200, 204), r.text
    _flush(box, "squarespace")
    got = [(p.entity, p.record_id) for p in receiver.inbox.pending("squarespace", 0)]
    assert ("orders", order["id"]) in got


def _sqsp_auth() -> dict[str, str]:
    from talk_assets.config import SQUARESPACE

    return {"Authorization": f"Bearer {SQUARESPACE.value('api_key')}"}


# -- sensors: the inbox requests runs; polling heals a dropped notification ----------------------------
def test_the_inbox_sensor_requests_one_run_per_batch_keyed_by_event_ids(receiver: ReceiverServer) -> None:
    inbox = receiver.inbox
    for i in range(3):
        inbox.append(Notification(system="customcrm", event_id=f"e{i}", topic="customers.updated",
                                  entity="customers", record_id=str(i), updated_at="2026-12-01T10:00:00Z"))
    inbox.append(Notification(system="customcrm", event_id="e0", topic="customers.updated", entity="customers",
                              record_id="0", updated_at="2026-12-01T10:00:00Z"))  # a redelivery: dropped
    sensor = build_inbox_sensor("customcrm")
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))  # same cursor: same run key
        later = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    [req] = first.run_requests
    assert req.run_key == again.run_requests[0].run_key and req.run_key.startswith("customcrm-webhook-")
    selected = {k.to_user_string() for k in req.asset_selection or []}
    assert "customcrm/collected/customers" in selected and "customcrm/collected/orders" not in selected
    assert req.tags["talk/trigger"] == "webhook" and req.tags["talk/notifications"] == "3"
    assert later.run_requests == [] and first.cursor == str(inbox.last_seq("customcrm"))


def test_a_dropped_notification_is_found_by_polling(box: Sandbox, receiver: ReceiverServer) -> None:
    from talk_assets.definitions import all_resources
    from talk_assets.sync.assets import HttpTuning
    from talk_assets.sync.sensors import build_change_sensor

    sandbox_subscribe(box.url("customcrm"), "customcrm", receiver.url)
    box.control("customcrm", "PUT", "webhooks", json={"drop_share": 1.0})
    poll = build_change_sensor("customcrm")
    resources = {"customcrm": all_resources()["customcrm"], "http": HttpTuning()}
    with dg.instance_for_test() as instance:
        def tick() -> dg.SensorResult:
            result = poll.evaluate_tick(dg.build_sensor_context(instance=instance, resources=resources))
            for event in result.asset_events:
                instance.report_runless_asset_event(event)
            return result

        tick()  # everything observed once
        assert tick().run_requests == []
        customer = _crm_customer(box)
        _patch_crm(box, customer["id"], phone="+47 922 22 222")
        state = _flush(box, "customcrm")
        assert [r["outcome"] for r in _ours(state)] == ["dropped"], state
        assert receiver.inbox.pending("customcrm", 0) == []  # the notification was lost...
        healed = tick()  # ...and the safety-net poll finds the change
    [req] = healed.run_requests
    assert req.tags["talk/changed"] == "customers"


def test_poll_interval_is_the_safety_net_with_webhooks_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from talk_assets.sync.sensors import all_sensors, poll_interval

    monkeypatch.delenv("TALK_WEBHOOK_PUBLIC_URL", raising=False)
    monkeypatch.setenv("TALK_POLL_INTERVAL_S", "10")
    assert poll_interval("shopify") == 10
    assert not [s for s in all_sensors() if s.name.endswith("_webhooks")]
    monkeypatch.setenv("TALK_WEBHOOK_PUBLIC_URL", "https://sync.example.no")
    assert poll_interval("shopify") == 1800 and poll_interval("poweroffice") == 10  # no webhooks there
    monkeypatch.setenv("TALK_SHOPIFY_POLL_INTERVAL_S", "60")
    assert poll_interval("shopify") == 60
    names = {s.name for s in all_sensors()}
    assert {f"{k}_webhooks" for k in ("shopify", "squarespace", "customcrm", "customwebshop")} <= names
    assert "poweroffice_webhooks" not in names and {f"{k}_changes" for k in SYSTEMS} <= names


def test_the_webhooks_command_serves_the_receiver(tmp_path: Path) -> None:
    """`talk-assets webhooks` as a subprocess: a signed notification is stored, a forged one refused."""
    import os
    import re
    import signal
    import subprocess
    import sys

    env = {**os.environ, "TALK_WEBHOOK_PORT": "0", "TALK_DATA_DIR": str(tmp_path)}
    env.pop("TALK_WEBHOOK_PUBLIC_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "talk_assets.cli", "webhooks"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"receiver on (http://\S+)/webhooks/<system>", line).group(1)  # type: ignore[union-attr]
        assert "polled" in proc.stdout.readline()  # no public URL: no subscriptions
        body = json.dumps({"type": "orders.created", "data": {"id": 7, "updated_at": None}}).encode()
        secret = settings().webhook_secret("customwebshop")
        assert _std_post(f"{url}/webhooks/customwebshop", body, secret).status_code == 200
        assert _std_post(f"{url}/webhooks/customwebshop", body, "whsec_" + "A" * 32).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, out
    assert "'customwebshop new': 1" in out and "'customwebshop refused': 1" in out
    with Inbox(tmp_path / "webhooks.sqlite") as inbox:
        assert [p.entity for p in inbox.pending("customwebshop", 0)] == ["orders"]


def test_crm_notifications_match_the_webhooks_section_of_its_openapi(box: Sandbox) -> None:
    """What the CRM sandbox POSTs is what its OpenAPI document's `webhooks` section promises."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import jsonschema_rs  # schemathesis's validator (no jsonschema package here)

    got: list[tuple[dict[str, str], bytes]] = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            got.append(({k.lower(): v for k, v in self.headers.items()},
                        self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        sandbox_subscribe(box.url("customcrm"), "customcrm", url)
        customer = _crm_customer(box)
        _patch_crm(box, customer["id"], phone="+47 933 33 333")
        _flush(box, "customcrm")
    finally:
        srv.shutdown()
    doc = requests.get(f"{box.url('customcrm')}/openapi.json", timeout=10).json()
    [(headers, body)] = got
    data = json.loads(body)
    hook = doc["webhooks"][data["type"]]["post"]
    jsonschema_rs.validate(hook["requestBody"]["content"]["application/json"]["schema"], data)
    for param in hook["parameters"]:
        assert headers.get(param["name"]), param["name"]
        jsonschema_rs.validate(param["schema"], headers[param["name"]])
    assert data["type"] == "customers.updated" and data["data"]["id"] == customer["id"]
    Webhook(settings().webhook_secret("customcrm")).verify(body, headers)  # the library agrees


def test_shopify_secret_rotation_accepts_the_previous_secret_only_when_named(
        receiver: ReceiverServer, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{receiver.url}/webhooks/shopify"
    body = json.dumps({"id": 7, "updated_at": "2026-12-01T10:00:00Z"}).encode()

    def post(secret: str, wid: str) -> int:
        sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        return requests.post(url, data=body, timeout=10, headers={
            "X-Shopify-Topic": "products/update", "X-Shopify-Webhook-Id": wid, "X-Shopify-Hmac-Sha256": sig}).status_code

    monkeypatch.setenv("TALK_SHOPIFY_WEBHOOK_SECRET", "shpss_new")
    assert post("shpss_old", "r1") == 401
    monkeypatch.setenv("TALK_SHOPIFY_WEBHOOK_SECRET_PREVIOUS", "shpss_old")  # up to an hour after a rotation
    assert post("shpss_old", "r2") == 200 and post("shpss_new", "r3") == 200
    # r3 names the same change time as r2 but is another delivery id: kept (only strictly older is stale)
    assert [p.event_id for p in receiver.inbox.pending("shopify", 0)] == ["r2", "r3"]


def test_a_second_edit_in_the_same_second_is_not_dropped_as_stale(tmp_path: Path) -> None:
    """Shopify's `updated_at` has whole seconds: the sync's own write to a record and a person's edit of
    it in the same second carry the same change time. Only a strictly older change is stale; one at the
    same time is a new reason to look (its event id is new), or the person's edit would wait for polling."""
    with Inbox(tmp_path / "inbox.sqlite") as inbox:
        def note(event_id: str, at: str) -> str:
            return inbox.append(Notification(system="shopify", event_id=event_id, topic="customers/update",
                                             entity="customer", record_id="7000000001", updated_at=at))
        assert note("sync-write", "2026-12-01T10:00:00Z") == "new"
        assert note("person-edit", "2026-12-01T11:00:00+01:00") == "new"  # the same second, another zone
        assert note("late-redelivery-of-older", "2026-12-01T09:59:59Z") == "stale"
        assert [p.event_id for p in inbox.pending("shopify", 0)] == ["sync-write", "person-edit"]


# -- the sync's own writes come back as notifications: they start no run --------------------------------
def _shopify_note(inbox: Inbox, event_id: str, at: str | None, topic: str = "customers/update",
                  record_id: str = "7000000001") -> str:
    return inbox.append(Notification(system="shopify", event_id=event_id, topic=topic, entity="customer",
                                     record_id=record_id, updated_at=at, action=shopify_hooks.action(topic)))


def _tick(instance: dg.DagsterInstance, system: str = "shopify", cursor: str | None = None) -> dg.SensorResult:
    return build_inbox_sensor(system).evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_the_echo_of_an_own_write_starts_no_run_but_a_same_second_edit_does(receiver: ReceiverServer) -> None:
    """One recorded write claims one notification with the change time the target answered with (in any
    zone); a person's edit in the same whole second is a second notification, and starts a run."""
    inbox = receiver.inbox
    inbox.record_own("shopify", "customer", "7000000001", "update", "2026-12-01T11:00:00+01:00")
    with dg.instance_for_test() as instance:
        assert _shopify_note(inbox, "echo", "2026-12-01T10:00:00Z") == "own"
        quiet = _tick(instance)
        assert quiet.run_requests == [] and "own writes" in (quiet.skip_message or "")
        assert _shopify_note(inbox, "person", "2026-12-01T10:00:00Z") == "new"
        [req] = _tick(instance).run_requests
    assert req.tags["talk/notifications"] == "1"
    assert [p.event_id for p in inbox.pending("shopify", 0)] == ["person"]
    assert inbox.counts("shopify") == {"fresh": 1, "stale": 0, "own": 1}


def test_an_echo_that_comes_before_the_push_recorded_its_write_is_claimed_by_the_sensor(
        receiver: ReceiverServer) -> None:
    """The target can notify before our write's answer is back: the sensor claims the echo at its tick,
    and a person's older edit that arrived after the echo (stored stale against it) is fresh again."""
    inbox = receiver.inbox
    assert _shopify_note(inbox, "echo", "2026-12-01T10:00:05Z") == "new"
    assert _shopify_note(inbox, "older-person-edit", "2026-12-01T10:00:02Z") == "stale"
    inbox.record_own("shopify", "customer", "7000000001", "update", "2026-12-01T10:00:05Z")
    with dg.instance_for_test() as instance:
        [req] = _tick(instance).run_requests
    assert req.tags["talk/notifications"] == "1"
    assert [p.event_id for p in inbox.pending("shopify", 0)] == ["older-person-edit"]


def test_an_echo_never_moves_a_record_s_newest_change_time(receiver: ReceiverServer) -> None:
    """A person's edit made before our write, whose notification comes after our echo, is not stale: no
    run was requested for the echo, so nothing has read the record since the person's edit."""
    inbox = receiver.inbox
    inbox.record_own("shopify", "customer", "7000000001", "update", "2026-12-01T10:00:05Z")
    assert _shopify_note(inbox, "echo", "2026-12-01T10:00:05Z") == "own"
    assert _shopify_note(inbox, "person", "2026-12-01T10:00:03Z") == "new"


def test_a_create_echo_is_ours_even_without_a_record_time(receiver: ReceiverServer) -> None:
    """Squarespace's order notifications carry no record time (only the notification's `createdOn`): the
    creation of a record the sync created is ours (nobody else creates a record with the id the
    target gave us); an update notification of it is not recognised and starts a run."""
    inbox = receiver.inbox
    inbox.record_own("squarespace", "orders", "ord-1", "create", None)
    n = Notification(system="squarespace", event_id="n1", topic="order.create", entity="orders", record_id="ord-1",
                     updated_at="2026-12-01T10:00:00.123Z", action="create")
    assert inbox.append(n) == "own"
    assert inbox.append(n.model_copy(update={"event_id": "n2", "topic": "order.update", "action": "update"})) == "new"
    inbox.record_own("squarespace", "orders", "ord-2", "update", None)  # no time: cannot be matched
    assert inbox.append(n.model_copy(update={"event_id": "n3", "record_id": "ord-2", "topic": "order.update",
                                             "action": "update"})) == "new"


def test_shopify_echo_of_a_write_through_our_client_is_matched_by_its_answer(box: Sandbox,
                                                                            receiver: ReceiverServer) -> None:
    """Over HTTP: our GraphQL client writes a customer (as the push does), the write is recorded with the
    `updatedAt` Shopify answered with, and the REST-shaped `customers/update` notification that follows
    (its `updated_at` in the shop's zone) is recognised as ours; a person's edit right after is not."""
    from talk_assets.resources import client_from_env
    from talk_assets.webhooks.own_writes import OwnWrites

    with Inbox(receiver.inbox.path) as inbox:
        subscribe_all(receiver.url, inbox)
    base, h = _shopify(box)
    customer = requests.get(f"{base}/customers.json", headers=h, params={"limit": 1}, timeout=10).json()["customers"][0]
    client = client_from_env("shopify")
    own = OwnWrites("shopify", Inbox(receiver.inbox.path, durable=False))
    try:
        answer = client.update_record("customer", str(customer["id"]), {"note": "skrevet av synk\nø 🎉"})
        own.add("customer", str(customer["id"]), "update", answer)
    finally:
        own.close()
        client.close()
    _flush(box, "shopify")
    counts = _settled(receiver.inbox, "shopify")
    assert counts["own"] == 1 and counts["fresh"] == 0, (counts, dict(receiver.counts))
    r = requests.put(f"{base}/customers/{customer['id']}.json", headers=h, timeout=10,
                     json={"customer": {"id": customer["id"], "note": "en person"}})
    assert r.status_code == 200, r.text
    _flush(box, "shopify")
    counts = _settled(receiver.inbox, "shopify")
    assert counts["own"] == 1 and counts["fresh"] == 1, (counts, dict(receiver.counts))
    assert [p.record_id for p in receiver.inbox.pending("shopify", 0)] == [str(customer["id"])]


def test_a_notification_that_comes_while_a_run_is_going_starts_the_next_run(receiver: ReceiverServer) -> None:
    """A run already going may have read the entity before the edit: a notification that comes meanwhile
    asks for the next run (queued behind it, one run at a time). While that one waits in the queue, newer
    notifications keep the cursor, and are asked for once it has started; none is skipped."""
    from dagster._core.test_utils import create_run_for_test

    inbox = receiver.inbox

    def note(event_id: str, record_id: str) -> None:
        assert inbox.append(Notification(system="customcrm", event_id=event_id, topic="customers.updated",
                                         entity="customers", record_id=record_id,
                                         updated_at=datetime.now(UTC).isoformat(), action="update")) == "new"

    with dg.instance_for_test() as instance:
        going = create_run_for_test(instance, job_name="sync_job", status=dg.DagsterRunStatus.STARTED)
        note("during-a-run", "1")
        first = _tick(instance, "customcrm")
        [req] = first.run_requests
        assert req.tags["talk/notifications"] == "1"
        # waiting to start (NOT_STARTED and QUEUED count alike; a QUEUED one needs a code location to create)
        queued = create_run_for_test(instance, job_name="sync_job", status=dg.DagsterRunStatus.NOT_STARTED)
        note("while-queued", "2")
        waiting = _tick(instance, "customcrm", first.cursor)
        assert waiting.run_requests == [] and (waiting.cursor or first.cursor) == first.cursor  # the cursor stays
        instance.delete_run(queued.run_id)
        instance.delete_run(going.run_id)
        create_run_for_test(instance, job_name="sync_job", status=dg.DagsterRunStatus.STARTED)  # it has started
        note("after-it-started", "3")
        later = _tick(instance, "customcrm", first.cursor)
    [req2] = later.run_requests
    assert req2.tags["talk/notifications"] == "2" and req2.run_key != req.run_key
    assert later.cursor == str(inbox.last_seq("customcrm"))


def test_a_run_waiting_for_another_systems_entities_does_not_hold_a_notification_back(
        receiver: ReceiverServer) -> None:
    """A waiting run is left to collect a change only when it reads the changed entity: a Shopify run
    queued for Shopify's products does not read CRM customers, so a CRM customer's notification asks for
    its own run at once (queued behind it) instead of a tick after the Shopify run has started. A waiting
    run that does read them still holds it."""
    from dagster._core.test_utils import create_run_for_test

    from talk_assets.sync.declaration import SOURCES
    from talk_assets.sync.sensors import downstream_of

    def selection(system: str, entity: str) -> frozenset:
        return frozenset(downstream_of(tuple(s for s in SOURCES if (s.system, s.entity) == (system, entity))))

    assert receiver.inbox.append(Notification(
        system="customcrm", event_id="crm-edit-Ø", topic="customers.updated", entity="customers", record_id="7",
        updated_at=datetime.now(UTC).isoformat(), action="update")) == "new"
    with dg.instance_for_test() as instance:
        shopify_run = create_run_for_test(instance, job_name="sync_job", status=dg.DagsterRunStatus.NOT_STARTED,
                                          asset_selection=selection("shopify", "product"))
        [req] = _tick(instance, "customcrm").run_requests
        assert req.tags["talk/changed"] == "customers"
        # and it is launched before polling runs queued earlier (the run queue's documented priority tag)
        assert int(req.tags["dagster/priority"]) > 0
        crm_run = create_run_for_test(instance, job_name="sync_job", status=dg.DagsterRunStatus.NOT_STARTED,
                                      asset_selection=selection("customcrm", "customers"))
        held = _tick(instance, "customcrm")
        assert held.run_requests == [] and "already waiting" in (held.skip_message or ""), held.skip_message
        instance.delete_run(crm_run.run_id)
        instance.delete_run(shopify_run.run_id)


def test_squarespace_echo_of_a_fulfilment_by_the_sync_starts_no_run(box: Sandbox, receiver: ReceiverServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The only write Squarespace's Orders API allows to an existing order is its fulfilment (POST
    orders/{id}/fulfillments, the client's `update_record("orders", ...)`, as the push calls it). Its
    `order.update` notification carries the order id, the update kind (`FULFILLED`) and the notification's
    own time, no record time: it is recognised by order, kind and arrival just after our write, and starts
    no run. A person's fulfilment of the same order right after (a shipment with its tracking number) is a
    second notification that no write claims: it starts a run."""
    from talk_assets.resources import client_from_env
    from talk_assets.webhooks.own_writes import OwnWrites

    monkeypatch.setenv("TALK_WEBHOOK_PUBLIC_URL", "https://sync.example.no")
    out = subscribe_all(receiver.url, receiver.inbox)
    assert out["squarespace"].startswith(("subscribed", "kept")), out
    orders = requests.get(f"{box.url('squarespace')}/1.0/commerce/orders", timeout=10,
                          headers={**SQSP_UA, **_sqsp_auth()}, params={"fulfillmentStatus": "PENDING"}).json()
    order_id = orders["result"][0]["id"]
    client = client_from_env("squarespace")
    own = OwnWrites.open("squarespace")
    assert own is not None
    try:
        answer = client.update_record("orders", order_id, {"fulfillmentStatus": "FULFILLED"})
        own.add("orders", order_id, "update", answer)
    finally:
        own.close()
        client.close()
    _flush(box, "squarespace")
    assert receiver.counts["squarespace own"] + receiver.counts["squarespace new"] == 1, dict(receiver.counts)
    with dg.instance_for_test() as instance:
        assert _tick(instance, "squarespace").run_requests == []
        counts = receiver.inbox.counts("squarespace")
        assert counts["own"] == 1 and counts["fresh"] == 0, (counts, dict(receiver.counts))
        r = requests.post(f"{box.url('squarespace')}/1.0/commerce/orders/{order_id}/fulfillments", timeout=10,
                          headers={**SQSP_UA, **_sqsp_auth()}, json={"shouldSendNotification": False, "shipments": [
                              {"shipDate": datetime.now(UTC).isoformat(), "carrierName": "Posten «Bring» 📦",
                               "trackingNumber": "NO-70 0001\n2"}]})
        assert r.status_code in (200, 204), r.text
        _flush(box, "squarespace")
        [req] = _tick(instance, "squarespace").run_requests
        counts = receiver.inbox.counts("squarespace")
        assert counts["own"] == 1 and counts["fresh"] == 1, (counts, dict(receiver.counts))
    assert req.tags["talk/changed"] == "orders" and req.tags["talk/notifications"] == "1"
    assert [p.record_id for p in receiver.inbox.pending("squarespace", 0)] == [order_id]


def test_an_echo_without_a_record_time_is_claimed_by_kind_and_arrival_only(receiver: ReceiverServer) -> None:
    """A write whose echo carries no record time (Squarespace's order.update) claims one notification of
    its record and kind arriving near it: not another kind of update, not another order, not one that
    comes after the window (a late retry, or a person's edit minutes later), and not a second one."""
    from talk_assets.webhooks.inbox import ECHO_WINDOW_S

    inbox = receiver.inbox

    def note(event_id: str, order: str, kind: str) -> str:
        return inbox.append(Notification(system="squarespace", event_id=event_id, topic="order.update",
                                         entity="orders", record_id=order, action="update", kind=kind,
                                         updated_at=datetime.now(UTC).isoformat()))

    inbox.record_own("squarespace", "orders", "ord-1", "update", None, kind="FULFILLED", by_arrival=True)
    assert note("canceled", "ord-1", "CANCELED") == "new"  # another kind: a person's
    assert note("other-order", "ord-2", "FULFILLED") == "new"
    assert note("echo", "ord-1", "FULFILLED") == "own"
    assert note("second", "ord-1", "FULFILLED") == "new"  # one write claims one notification
    inbox.record_own("squarespace", "orders", "ord-3", "update", None, kind="FULFILLED", by_arrival=True)
    long_ago = (datetime.now(UTC) - timedelta(seconds=ECHO_WINDOW_S + 5)).isoformat(timespec="microseconds")
    inbox._con.execute("UPDATE own_writes SET written_at = ? WHERE record_id = 'ord-3'", (long_ago,))
    assert note("late", "ord-3", "FULFILLED") == "new"
    assert inbox.counts("squarespace") == {"fresh": 4, "stale": 0, "own": 1}


def test_an_inbox_written_before_update_kinds_is_migrated(tmp_path: Path) -> None:
    """An inbox file of the previous release (no `kind`, no `by_arrival`) opens, and matches by arrival."""
    import sqlite3

    path = tmp_path / "webhooks.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, system TEXT NOT NULL, event_id TEXT NOT NULL, "
            "topic TEXT NOT NULL, entity TEXT NOT NULL, record_id TEXT, updated_at TEXT, received_at TEXT NOT NULL, "
            "stale INTEGER NOT NULL DEFAULT 0, own INTEGER NOT NULL DEFAULT 0, action TEXT, UNIQUE (system, event_id));"
            "CREATE TABLE own_writes (id INTEGER PRIMARY KEY AUTOINCREMENT, system TEXT NOT NULL, entity TEXT NOT NULL, "
            "record_id TEXT NOT NULL, action TEXT NOT NULL, updated_at TEXT, written_at TEXT NOT NULL, "
            "claimed_seq INTEGER);")
    con.close()
    with Inbox(path) as inbox:
        inbox.record_own("squarespace", "orders", "ord-ø", "update", None, kind="FULFILLED", by_arrival=True)
        assert inbox.append(Notification(system="squarespace", event_id="n", topic="order.update", entity="orders",
                                         record_id="ord-ø", action="update", kind="FULFILLED")) == "own"


def test_shopify_echoes_of_a_product_the_sync_creates_start_no_run(box: Sandbox, receiver: ReceiverServer) -> None:
    """A product create is `productSet` and, when the new variant's stock did not come out as asked, an
    `inventorySetQuantities` after it: `products/create` and then a `products/update` of the product. Both are
    ours (a first `make run` started two runs for such echoes), whether they come before the write's answer
    (claimed at the sensor's tick) or after; a person's edit of the product right after is not."""
    from talk_assets.resources import client_from_env
    from talk_assets.sync.declaration import VIEWS_BY_KEY
    from talk_assets.sync.writer import Row
    from talk_assets.sync.writers import writer_for
    from talk_assets.webhooks.own_writes import OwnWrites

    with Inbox(receiver.inbox.path) as inbox:
        subscribe_all(receiver.url, inbox)
    client = client_from_env("shopify")
    own = OwnWrites("shopify", Inbox(receiver.inbox.path, durable=False))
    payload = {"variants.sku": "ÆØÅ-🎉-1", "variants.title": "Blå", "variants.price": "125.00",
               "variants.inventory_quantity": "4"}
    row = Row(VIEWS_BY_KEY["shopify.sesamproduct"], "g-echo", "create", None, None, None, list(payload), payload,
              {}, {"name": "Termokopp Blå", "variant_title": "Blå"}, "h-echo", None)
    try:
        created = writer_for("shopify", client).create(row)
        own.add("product", str(created["id"]), "create", created)
        product = client.get_record("product", str(created["product_id"]))
    finally:
        own.close()
        client.close()
    assert product["variants"][0]["inventory_quantity"] == 4
    _flush(box, "shopify")
    assert receiver.counts["shopify new"] + receiver.counts["shopify own"] == 2, dict(receiver.counts)
    with dg.instance_for_test() as instance:
        quiet = _tick(instance)
        assert quiet.run_requests == [], [r.tags for r in quiet.run_requests]
        base, h = _shopify(box)
        r = requests.put(f"{base}/products/{product['id']}.json", headers=h, timeout=10,
                         json={"product": {"id": product["id"], "title": "Termokopp av en person"}})
        assert r.status_code == 200, r.text
        _flush(box, "shopify")
        [req] = _tick(instance, cursor=quiet.cursor).run_requests
    assert req.tags["talk/notifications"] == "1"
    assert [p.record_id for p in receiver.inbox.pending("shopify", 0)] == [str(product["id"])]
