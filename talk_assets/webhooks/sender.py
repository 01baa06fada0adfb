"""How a sandbox sends notifications the way the real services do (sandbox-side only).

Each sandbox owns a `Sender`: its subscriptions (created through the system's real subscription API,
or for our own custom APIs through the control API, as their operator would configure them), and a
delivery thread that POSTs each notification with the system's headers and signature (built by the
system's `sign` function), retries a failed delivery with the same id (Shopify: 8 tries over 4 hours,
https://shopify.dev/docs/apps/build/webhooks/delivery-structure; Squarespace: "several times for up
to 48 hours", https://developers.squarespace.com/webhooks/notification-delivery; Standard Webhooks:
retries with backoff, same `webhook-id`), and, when switched on from `/_sandbox/webhooks`, drops,
duplicates or reorders deliveries: both vendors say duplicates and out-of-order delivery happen, and
a dropped notification is what the polling safety net exists for. The sandbox's retry delays are
seconds, not hours (set them with `retry_delays_s`), so tests can see a retry.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from pydantic import BaseModel, ValidationError

log = logging.getLogger("talk_assets.sandbox.webhooks")


@dataclass
class Subscription:
    id: str
    url: str
    topics: list[str]
    secret: str
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def public(self) -> dict[str, Any]:
        """What the control API shows: never the secret."""
        return {"id": self.id, "url": self.url, "topics": self.topics, "created_at": self.created_at}


@dataclass
class Delivery:
    sub: Subscription
    topic: str
    event_id: str
    body: bytes
    attempts: int = 0


class WebhookFaults(BaseModel, extra="forbid"):
    """Switchable from `PUT /_sandbox/webhooks`."""

    enabled: bool = True
    drop_share: float = 0.0  # share of notifications never sent
    duplicate_share: float = 0.0  # share sent twice (same id)
    reorder_share: float = 0.0  # share held back and sent after the next one
    fail_share: float = 0.0  # share whose first attempt is "lost" (not sent, retried later)
    retry_delays_s: list[float] = [0.2, 0.5, 1.0, 2.0, 4.0]
    seed: int | None = None


# (subscription, topic, event id, body, attempt) -> the request's headers, signature included
Sign = Callable[[Subscription, str, str, bytes, int], dict[str, str]]


class Sender:
    """One sandbox's subscriptions and deliveries."""

    def __init__(self, system: str, sign: Sign, timeout_s: float = 5.0) -> None:
        self.system = system
        self.sign = sign
        self.timeout_s = timeout_s
        self.subscriptions: dict[str, Subscription] = {}
        self.faults = WebhookFaults()
        self.outcomes: Counter[str] = Counter()
        self.recent: list[dict[str, Any]] = []
        self._rng = random.Random(0)
        self._queue: queue.Queue[Delivery] = queue.Queue()
        self._lock = threading.Lock()
        self._timers = 0
        self._busy = 0
        self._thread: threading.Thread | None = None
        self._http = requests.Session()

    # -- subscriptions --------------------------------------------------------------------------
    def subscribe(self, url: str, topics: list[str], secret: str, sub_id: str | None = None) -> Subscription:
        sub = Subscription(sub_id or uuid.uuid4().hex[:24], url, list(topics), secret)
        with self._lock:
            self.subscriptions[sub.id] = sub
        return sub

    def unsubscribe(self, sub_id: str) -> bool:
        with self._lock:
            return self.subscriptions.pop(sub_id, None) is not None

    def reset(self) -> None:
        with self._lock:
            self.subscriptions.clear()
            self.outcomes.clear()
            self.recent.clear()
            self.faults = WebhookFaults()

    # -- sending --------------------------------------------------------------------------------
    def notify(self, topic: str, payload: dict[str, Any], event_id: str | None = None) -> int:
        """Queue `payload` for every subscription to `topic`; the number queued. Never blocks the API."""
        with self._lock:
            subs = [s for s in self.subscriptions.values() if topic in s.topics]
            faults = self.faults
        if not subs or not faults.enabled:
            return 0
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        for sub in subs:
            d = Delivery(sub, topic, event_id or str(uuid.uuid4()), body)
            with self._lock:
                self._busy += 1
            self._queue.put(d)
        self._ensure_thread()
        return len(subs)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=f"{self.system}-webhooks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        held: list[Delivery] = []
        while True:
            try:
                d = self._queue.get(timeout=0.3)
            except queue.Empty:
                for h in held:  # nothing came after a held one: send it now
                    self._attempt(h)
                held = []
                continue
            f = self.faults
            roll = self._rng.random
            if d.attempts == 0 and f.drop_share and roll() < f.drop_share:
                self._record(d, "dropped", None)
                self._done()
                continue
            if d.attempts == 0 and f.reorder_share and not held and roll() < f.reorder_share:
                held.append(d)
                continue
            if d.attempts == 0 and f.duplicate_share and roll() < f.duplicate_share:
                with self._lock:
                    self._busy += 1
                self._attempt(Delivery(d.sub, d.topic, d.event_id, d.body), duplicate=True)
            self._attempt(d)
            for h in held:
                self._attempt(h)
            held = []

    def _attempt(self, d: Delivery, duplicate: bool = False) -> None:
        d.attempts += 1
        status: int | None = None
        f = self.faults
        if d.attempts == 1 and not duplicate and f.fail_share and self._rng.random() < f.fail_share:
            status = None  # as if the connection failed
        else:
            try:
                r = self._http.post(d.sub.url, data=d.body, timeout=self.timeout_s,
                                    headers=self.sign(d.sub, d.topic, d.event_id, d.body, d.attempts))
                status = r.status_code
            except requests.RequestException:
                status = None
        if status is not None and 200 <= status < 300:
            self._record(d, "duplicate sent" if duplicate else "delivered", status)
            self._done()
            return
        delays = f.retry_delays_s
        if d.attempts > len(delays):
            self._record(d, "failed", status)
            self._done()
            return
        self._record(d, "retrying", status)
        timer = threading.Timer(delays[d.attempts - 1], self._queue.put, args=(d,))
        timer.daemon = True
        timer.start()

    def _record(self, d: Delivery, outcome: str, status: int | None) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            self.recent.append({"event_id": d.event_id, "topic": d.topic, "subscription": d.sub.id,
                                "attempt": d.attempts, "status": status, "outcome": outcome})
            del self.recent[:-200]

    def _done(self) -> None:
        with self._lock:
            self._busy -= 1

    def idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued notification is delivered, dropped or given up on."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._busy <= 0:
                    return True
            time.sleep(0.02)
        return False

    # -- control API: /_sandbox/webhooks --------------------------------------------------------
    def control(self, method: str, sub: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, body) for the control API; `sub` is the path after `/_sandbox/`."""
        if sub == "webhooks" and method == "GET":
            return 200, self.state()
        if sub == "webhooks" and method in ("PUT", "POST"):
            try:
                faults = WebhookFaults(**{**self.faults.model_dump(), **body})
            except ValidationError as exc:
                return 400, {"error": str(exc.errors()[0]["msg"]), "field": str(exc.errors()[0]["loc"][0])}
            with self._lock:
                self.faults = faults
                self._rng = random.Random(faults.seed if faults.seed is not None else 0)
            return 200, self.state()
        if sub == "webhooks/subscriptions" and method == "POST":
            url, topics, secret = body.get("url"), body.get("topics"), body.get("secret")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return 400, {"error": "url must be an http(s) URL", "field": "url"}
            if not isinstance(topics, list) or not topics or not all(isinstance(t, str) for t in topics):
                return 400, {"error": "topics must be a non-empty list of strings", "field": "topics"}
            if not isinstance(secret, str) or not secret:
                return 400, {"error": "secret is required", "field": "secret"}
            return 201, self.subscribe(url, topics, secret).public()
        if sub == "webhooks/subscriptions" and method == "DELETE":
            with self._lock:
                self.subscriptions.clear()
            return 200, self.state()
        if sub == "webhooks/flush" and method == "POST":
            return 200, {"idle": self.idle(float(body.get("timeout_s", 10.0))), **self.state()}
        return 404, {"error": f"no sandbox control endpoint {method} /_sandbox/{sub}", "field": None}

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"system": self.system, "faults": self.faults.model_dump(),
                    "subscriptions": [s.public() for s in self.subscriptions.values()],
                    "outcomes": dict(self.outcomes), "recent": list(self.recent[-50:])}
