"""The push's record of its own writes, so their notifications start no run (see `inbox.py`).

`OwnWrites.open(system)` is None unless webhooks are on (`TALK_WEBHOOK_PUBLIC_URL`) and the system
sends notifications: then nothing is written anywhere. Each successful write is recorded at once,
right after the target's answer, because the notification can come back within milliseconds; the
change time is the record's in that answer (`updated_at`, Shopify's and our custom APIs' field, or
`updatedAt`/`modifiedOn` where a record is shown in that shape). A write whose answer carries no
change time is still recorded: a creation is recognised by its create notification.

A system whose notifications do not name the record written, or carry no change time of it, says
what its echoes look like in its `webhooks.py` (`own_echoes(entity, record_id, action, answer)`, a
list of `inbox.Echo`, or None for the plain case): Shopify notifies a variant's product, Squarespace
an order's update kind (see those modules).
"""

from __future__ import annotations

import logging
from typing import Any

from talk_assets.settings import settings
from talk_assets.webhooks.inbox import Echo, Inbox
from talk_assets.webhooks.registry import system_webhooks

log = logging.getLogger("talk_assets.webhooks")

CHANGE_TIME_FIELDS = ("updated_at", "updatedAt", "modifiedOn")


def change_time(answer: Any) -> str | None:
    """The record's change time in a write's answer, if it shows one."""
    if not isinstance(answer, dict):
        return None
    for f in CHANGE_TIME_FIELDS:
        value = answer.get(f)
        if isinstance(value, str) and value:
            return value
    return None


class OwnWrites:
    """Records the writes of one push in the webhook inbox."""

    def __init__(self, system: str, inbox: Inbox) -> None:
        self.system = system
        self.inbox = inbox
        self._echoes = getattr(system_webhooks(system), "own_echoes", None)

    @classmethod
    def open(cls, system: str) -> OwnWrites | None:
        if not settings().webhooks_on or system_webhooks(system) is None:
            return None
        try:
            inbox = Inbox(durable=False)
            inbox.forget_old_own_writes()
        except Exception as exc:  # the inbox is advisory here: a push never fails for it
            log.warning("webhook inbox not writable, own writes not recorded: %s", type(exc).__name__)
            return None
        return cls(system, inbox)

    def add(self, entity: str, record_id: str | None, action: str, answer: Any) -> None:
        """One successful write (`action` create or update) and the target's answer to it."""
        if record_id is None:
            return
        try:
            echoes = self._echoes(entity, str(record_id), action, answer) if self._echoes else None
            if echoes is None:
                echoes = [Echo(entity, str(record_id), action, change_time(answer))]
            for e in echoes:
                self.inbox.record_own(self.system, e.entity, e.record_id, e.action, e.updated_at, e.kind,
                                      e.by_arrival)
        except Exception as exc:  # an unrecorded write costs one run that finds nothing new
            log.warning("own write of %s %s not recorded: %s", self.system, entity, type(exc).__name__)

    def close(self) -> None:
        self.inbox.close()
