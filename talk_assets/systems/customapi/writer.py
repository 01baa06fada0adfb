"""Writing to a custom API: the generic writer fits (PATCH with If-Match, POST with Idempotency-Key)."""

from __future__ import annotations

from talk_assets.sync.writer import Writer


class CustomApiWriter(Writer):
    supports_idempotency_key = True
