"""The webhook receiver: `POST /webhooks/<system>`, verified before anything else, stored, answered.

Order of work per request, so nothing unverified is processed and the sender's time limit is met
(Shopify: 5 s in all, https://shopify.dev/docs/apps/build/webhooks/delivery-structure; Squarespace:
"respond quickly", https://developers.squarespace.com/webhooks/notification-delivery):
1. unknown system -> 404; body over `TALK_WEBHOOK_MAX_BODY_BYTES` -> 413 (read no further);
2. the system's `receive(headers, body, inbox)` checks the signature (and timestamp where the
   scheme signs one) -> 401 when it fails, with a log line naming the system and the reason only;
3. a verified notification of a topic we do not sync -> 200 and a log line (a 4xx would only make
   the sender retry it), never stored;
4. the inbox append (milliseconds, its own SQLite file): a seen id -> 200 "duplicate", an older
   change than one already notified -> 200 "stale"; else 200 "accepted".
The sensors turn the inbox into runs; nothing here touches the DuckDB state.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from talk_assets.settings import settings
from talk_assets.webhooks.inbox import Inbox, Notification
from talk_assets.webhooks.registry import receiving_systems, system_webhooks
from talk_assets.webhooks.verify import Ignored, Refused

log = logging.getLogger("talk_assets.webhooks")


Receive = Callable[[Mapping[str, str], bytes, Inbox], Notification]


def endpoint_path(system: str) -> str:
    return f"/webhooks/{system}"


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (the rest is not read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(inbox: Inbox, systems: list[str] | None = None) -> Starlette:
    """The ASGI app: one route per receiving system. `app.state.counts` counts outcomes per system."""
    receivers: dict[str, Receive] = {}
    for key in systems or receiving_systems():
        mod = system_webhooks(key)
        if mod is not None:
            receivers[key] = mod.receive
    counts: Counter[str] = Counter()
    limit = settings().webhook_max_body_bytes

    async def receive(request: Request) -> JSONResponse:
        system = request.path_params["system"]
        fn = receivers.get(system)
        if fn is None:
            counts[f"{system} unknown"] += 1
            return JSONResponse({"error": "no such webhook endpoint"}, status_code=404)
        body = await _read_limited(request, limit)
        if body is None:
            counts[f"{system} refused"] += 1
            log.warning("webhook %s refused: body over %d bytes (TALK_WEBHOOK_MAX_BODY_BYTES)", system, limit)
            return JSONResponse({"error": "payload too large"}, status_code=413)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            note = await run_in_threadpool(fn, headers, body, inbox)
        except Refused as r:
            counts[f"{system} refused"] += 1
            log.warning("webhook %s refused: %s", system, r.reason)
            return JSONResponse({"error": r.reason}, status_code=r.status)
        except Ignored as i:
            counts[f"{system} ignored"] += 1
            log.info("webhook %s ignored: %s", system, i)
            return JSONResponse({"status": "ignored"})
        outcome = await run_in_threadpool(inbox.append, note)
        counts[f"{system} {outcome}"] += 1
        if outcome != "new":
            log.info("webhook %s %s: %s %s", system, outcome, note.topic, note.event_id)
        return JSONResponse({"status": "accepted" if outcome == "new" else outcome})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"systems": sorted(receivers), "counts": dict(counts)})

    app = Starlette(routes=[Route("/webhooks/{system}", receive, methods=["POST"]),
                            Route("/webhooks", health, methods=["GET"])])
    app.state.counts = counts
    app.state.inbox = inbox
    return app


class ReceiverServer:
    """The receiver on uvicorn in a background thread (the CLI and the tests start it this way)."""

    def __init__(self, inbox: Inbox | None = None, host: str | None = None, port: int | None = None,
                 systems: list[str] | None = None) -> None:
        import uvicorn

        s = settings()
        self.inbox = inbox or Inbox()
        self.app = build_app(self.inbox, systems)
        self.host = host or s.webhook_host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, s.webhook_port if port is None else port))
        self.port = self._sock.getsockname()[1]
        # uvicorn's access log would print every notification: our own log lines say what matters
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                        name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def counts(self) -> Counter[str]:
        return self.app.state.counts

    def start(self) -> ReceiverServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()
