"""The generic client of a custom API: cursor paging, ETags, idempotent creates, merge patches.

`CustomApiClient` implements the uniform client interface for any `SystemSpec` plus generic
typed helpers; each system's `Client` subclasses it, sets `spec` and adds named typed methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

import requests
from pydantic import BaseModel

from talk_assets.core.http import ApiClient, Pacer, RetryPolicy
from talk_assets.systems.customapi.spec import SystemSpec
from talk_assets.systems.customapi.types import ApiRecord, Summary, format_ts

M = TypeVar("M", bound=ApiRecord)


def parse_error(body: Any, resp: requests.Response) -> tuple[str, str | None] | None:
    """`{"error": {"code", "message", "field"}}` -> ("code: message", field)."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return None
    code, message = err.get("code") or "error", err.get("message") or resp.reason or ""
    return f"{code}: {message}", err.get("field")


def version_of(etag: str | None) -> str | None:
    """'W/"3"' or '"3"' -> '3'."""
    if not etag:
        return None
    return etag.strip().removeprefix("W/").strip('"')


class CustomApiClient(ApiClient):
    """Client of one custom API (set `spec` in the subclass)."""

    spec: SystemSpec
    page_size = 100

    def __init__(self, base_url: str, api_key: str, *, pacer: Pacer | None = None,
                 retry: RetryPolicy | None = None, timeout: tuple[float, float] = (5.0, 30.0)) -> None:
        super().__init__(
            base_url,
            headers=self.spec.auth_headers(api_key),
            timeout=timeout,
            retry=retry,
            # The API allows 50 requests/s; pace just under it so 429s stay the exception.
            pacer=pacer if pacer is not None else Pacer(min_interval=1 / 48),
            secrets=[api_key],
            error_parser=parse_error,
        )
        self.system = self.spec.key

    @classmethod
    def from_env(cls, **kw: Any) -> CustomApiClient:
        """Base URL and key from TALK_<SYSTEM>_URL / _API_KEY (the sandbox's defaults otherwise)."""
        info = cls.spec.info
        return cls(info.url(), info.value("api_key"), **kw)

    @property
    def entities(self) -> tuple[str, ...]:
        return self.spec.names

    def _path(self, entity: str, record_id: str | int | None = None) -> str:
        e = self.spec.entity(entity).name
        base = f"{self.spec.root}/{e}"
        return base if record_id is None else f"{base}/{record_id}"

    @staticmethod
    def _if_match(expected_version: str | int | None) -> dict[str, str]:
        if expected_version is None:
            return {}
        return {"If-Match": f'"{version_of(str(expected_version))}"'}

    # -- the uniform interface -------------------------------------------------------------
    def list_page(self, entity: str, since: datetime | None = None, cursor: str | None = None,
                  limit: int | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page: (records, next cursor or None)."""
        params: dict[str, Any] = {"limit": limit or self.page_size}
        if cursor:
            params["cursor"] = cursor
        elif since is not None:
            params["updated_since"] = format_ts(since)
        body = self.get_json(self._path(entity), params=params)
        return body["data"], body.get("next_cursor")

    def iter_records(self, entity: str, since: datetime | None = None,
                     page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Every record (changed at or after `since`), all pages, in id order."""
        cursor: str | None = None
        while True:
            data, cursor = self.list_page(entity, since, cursor, page_size)
            yield from data
            if not cursor:
                return

    def get(self, entity: str, record_id: str | int) -> tuple[dict[str, Any], str | None]:
        """(record, version from its ETag); ApiError 404 when it does not exist."""
        resp = self.request("GET", self._path(entity, record_id))
        return resp.json(), version_of(resp.headers.get("ETag"))

    def get_record(self, entity: str, record_id: str | int) -> dict[str, Any] | None:
        resp = self.request("GET", self._path(entity, record_id), ok=(404,))
        return None if resp.status_code == 404 else resp.json()

    def create_record(self, entity: str, data: dict[str, Any], *,
                      idempotency_key: str | None = None) -> dict[str, Any]:
        """POST; with an Idempotency-Key a create is safe to retry after a lost response."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        resp = self.request("POST", self._path(entity), json=data, headers=headers,
                            idempotent=bool(idempotency_key))
        return resp.json()

    def update_record(self, entity: str, record_id: str | int, changes: dict[str, Any], *,
                      expected_version: str | int | None = None) -> dict[str, Any]:
        """PATCH (JSON merge patch). With `expected_version`, ApiError 412 if it has changed."""
        resp = self.request("PATCH", self._path(entity, record_id), json=changes,
                            headers={"Content-Type": "application/merge-patch+json",
                                     **self._if_match(expected_version)},
                            idempotent=True)
        return resp.json()

    def replace_record(self, entity: str, record_id: str | int, data: dict[str, Any], *,
                       expected_version: str | int | None = None) -> dict[str, Any]:
        """PUT (full replace: omitted fields become null)."""
        resp = self.request("PUT", self._path(entity, record_id), json=data,
                            headers=self._if_match(expected_version))
        return resp.json()

    def delete_record(self, entity: str, record_id: str | int, *,
                      expected_version: str | int | None = None) -> bool:
        """DELETE; False when it was already gone."""
        resp = self.request("DELETE", self._path(entity, record_id), headers=self._if_match(expected_version),
                            ok=(404,))
        return resp.status_code != 404

    def summary(self, entity: str) -> Summary:
        return Summary.model_validate(self.get_json(f"{self._path(entity)}/_summary"))

    def probe(self, entity: str, previous: str | None = None) -> str:
        """Count and newest change time: changes whenever the entity's data changes."""
        body = self.get_json(f"{self._path(entity)}/_summary")
        return f"{body['count']}|{body['max_updated_at']}"

    def openapi(self) -> dict[str, Any]:
        return self.get_json("/openapi.json")

    # -- typed helpers -------------------------------------------------------------------------
    def _model(self, entity: str) -> type[ApiRecord]:
        return self.spec.entity(entity).model

    @staticmethod
    def _payload(data: BaseModel | dict[str, Any]) -> dict[str, Any]:
        if isinstance(data, BaseModel):
            return data.model_dump(mode="json", exclude_unset=True,
                                   exclude={"id", "created_at", "updated_at", "version"})
        return data

    def iter_models(self, entity: str, since: datetime | None = None) -> Iterator[ApiRecord]:
        model = self._model(entity)
        for rec in self.iter_records(entity, since):
            yield model.model_validate(rec)

    def get_model(self, entity: str, record_id: int) -> tuple[ApiRecord, str | None]:
        rec, version = self.get(entity, record_id)
        return self._model(entity).model_validate(rec), version

    def create_model(self, entity: str, data: BaseModel | dict[str, Any],
                     idempotency_key: str | None = None) -> ApiRecord:
        rec = self.create_record(entity, self._payload(data), idempotency_key=idempotency_key)
        return self._model(entity).model_validate(rec)

    def update_model(self, entity: str, record_id: int, changes: BaseModel | dict[str, Any],
                     expected_version: str | int | None = None) -> ApiRecord:
        rec = self.update_record(entity, record_id, self._payload(changes), expected_version=expected_version)
        return self._model(entity).model_validate(rec)
