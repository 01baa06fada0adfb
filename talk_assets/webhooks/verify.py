"""What a system's `receive` raises, and the helpers every verification shares."""

from __future__ import annotations

import hmac
import json
from typing import Any


class Refused(Exception):
    """A notification that is not processed: bad or missing signature, replay, malformed body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Ignored(Exception):
    """A verified notification we do not act on (a topic the sync does not read)."""


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two signatures (no early exit an attacker could time)."""
    return hmac.compare_digest(a.encode(), b.encode())


def json_object(body: bytes) -> dict[str, Any]:
    """The verified body as a JSON object, else a 400 refusal."""
    try:
        data = json.loads(body)
    except ValueError:
        raise Refused(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "body is not a JSON object")
    return data
