"""Start the receiver and its subscriptions the way `talk-assets run` and `talk-assets webhooks` do."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import requests

from talk_assets.config import SYSTEMS
from talk_assets.settings import settings
from talk_assets.webhooks.inbox import Inbox
from talk_assets.webhooks.receiver import ReceiverServer
from talk_assets.webhooks.registry import receiving_systems, system_webhooks
from talk_assets.webhooks.subscribe import sandbox_subscribe, subscribe_all


def start_receiver(*, sandbox_urls: dict[str, str] | None = None, host: str | None = None, port: int | None = None,
                   out: Callable[[str], None] = print) -> ReceiverServer:
    """Serve the receiver; set `TALK_WEBHOOK_PUBLIC_URL` to its local URL when unset and the systems
    are the local sandbox (a real deployment sets it to the URL the internet reaches); subscribe in
    the background once the systems answer. Returns the running server."""
    server = ReceiverServer(Inbox(), host=host, port=port).start()
    public = settings().webhook_public_url
    if not public and sandbox_urls:
        public = server.url
        os.environ["TALK_WEBHOOK_PUBLIC_URL"] = public  # the sensors (dagster dev inherits it) read the inbox
        # in the sandbox, a dropped notification (`PUT /_sandbox/webhooks {"drop_share": 1}`) heals in a minute
        os.environ.setdefault("TALK_WEBHOOK_POLL_INTERVAL_S", "60")
    out(f"talk-assets webhooks: receiver on {server.url}/webhooks/<system> for "
        f"{', '.join(receiving_systems())}; inbox {server.inbox.path}")
    if not public:
        out("  TALK_WEBHOOK_PUBLIC_URL is not set: no subscriptions made, every system is polled")
        return server
    out(f"  public URL {public}; systems that notify are also polled every "
        f"{settings().webhook_poll_interval_s}s (TALK_WEBHOOK_POLL_INTERVAL_S); PowerOffice GO has no webhooks "
        "and is polled as before")

    def subscribe() -> None:
        if sandbox_urls:
            for key, url in sandbox_urls.items():
                os.environ[SYSTEMS[key].url_env] = url
            _wait_for(sandbox_urls)
        with Inbox(server.inbox.path) as inbox:
            for key, what in subscribe_all(public, inbox).items():
                out(f"  webhooks {key}: {what}")
        if sandbox_urls:
            for key in receiving_systems():
                mod = system_webhooks(key)
                if key in sandbox_urls and not hasattr(mod, "subscribe"):
                    try:
                        sandbox_subscribe(sandbox_urls[key], key, public)
                        out(f"  webhooks {key}: sandbox configured to notify {public}/webhooks/{key}")
                    except requests.RequestException as exc:
                        out(f"  webhooks {key}: sandbox not configured ({exc}); polled")

    threading.Thread(target=subscribe, name="webhook-subscribe", daemon=True).start()
    return server


def _wait_for(urls: dict[str, str], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    for url in urls.values():
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url}/_sandbox/info", timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.5)
