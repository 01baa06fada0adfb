"""The example newsletter tool's client: the uniform interface (`talk_assets.sync.model.SystemClient`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from talk_assets.core.http import ApiClient
from talk_assets_tests.example_system.info import INFO


class Client(ApiClient):
    system = INFO.key
    entities = ("subscribers",)

    def __init__(self, base_url: str, api_key: str, **kw: Any) -> None:
        super().__init__(base_url, headers={"Authorization": f"Bearer {api_key}"}, secrets=[api_key], **kw)

    @classmethod
    def from_env(cls, **kw: Any) -> Client:
        return cls(INFO.url(), INFO.value("api_key"), **kw)

    def _entity(self, entity: str) -> str:
        if entity not in self.entities:
            raise ValueError(f"newsletter has no entity {entity!r}")
        return f"/v1/{entity}"

    def iter_records(self, entity: str, since: datetime | None = None,
                     page_size: int | None = None) -> Iterator[dict[str, Any]]:
        page: int | None = 1
        while page:
            params: dict[str, Any] = {"page": page}
            if since is not None:
                params["updated_since"] = since.isoformat()
            body = self.request("GET", self._entity(entity), params=params).json()
            yield from body["subscribers"]
            page = body.get("next_page")

    def get_record(self, entity: str, record_id: str) -> dict[str, Any] | None:
        resp = self.request("GET", f"{self._entity(entity)}/{record_id}", ok=(404,))
        return None if resp.status_code == 404 else resp.json()

    def create_record(self, entity: str, data: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        return self.request("POST", self._entity(entity), json=data).json()

    def update_record(self, entity: str, record_id: str, changes: dict[str, Any], *,
                      expected_version: str | None = None) -> dict[str, Any]:
        return self.request("PATCH", f"{self._entity(entity)}/{record_id}", json=changes).json()

    def probe(self, entity: str, previous: str | None = None) -> str:
        rows = list(self.iter_records(entity))
        return hashlib.md5(f"{len(rows)}|{max((r['updated_at'] for r in rows), default='')}".encode()).hexdigest()
