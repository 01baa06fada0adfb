"""Field types shared by the custom APIs' models.

The same models validate writes in the sandbox and parse responses in the client, so the
constraints here (e-mail, non-negative decimal strings, ISO codes, millisecond UTC timestamps)
are the API's contract and appear in the generated OpenAPI document.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_DECIMAL = re.compile(r"^\d+(\.\d+)?$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("value is not a valid e-mail address")
    return value


def _money(value: str) -> str:
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise ValueError("must be a decimal number as a string, e.g. \"719.20\"") from None
    if d < 0:
        raise ValueError("must not be negative")
    if not _DECIMAL.match(value):
        raise ValueError("must be a plain decimal string, e.g. \"719.20\"")
    return value


def _rate(value: str) -> str:
    _money(value)
    if Decimal(value) > 1:
        raise ValueError("must be a fraction between 0 and 1, e.g. \"0.25\"")
    return value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_ts(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds: "2026-11-23T10:00:00.123Z" (the API's one timestamp form)."""
    if value.tzinfo is not UTC:
        value = _utc(value)
    return value.isoformat(timespec="milliseconds")[:23] + "Z"  # isoformat is ~5x faster than strftime


Email = Annotated[str, AfterValidator(_email), WithJsonSchema({"type": "string", "format": "email"})]
Money = Annotated[
    str,
    AfterValidator(_money),
    WithJsonSchema({"type": "string", "pattern": _DECIMAL.pattern, "examples": ["719.20"],
                    "description": "Non-negative decimal as a string."}),
]
Rate = Annotated[
    str,
    AfterValidator(_rate),
    WithJsonSchema({"type": "string", "pattern": _DECIMAL.pattern, "examples": ["0.25"],
                    "description": "VAT rate as a fraction (0.25 = 25 %)."}),
]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code.")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")]
Timestamp = Annotated[
    datetime,
    AfterValidator(_utc),
    PlainSerializer(format_ts, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-11-23T10:00:00.123Z"]}),
]

#: Fields every record has and only the server writes.
SERVER_FIELDS = ("id", "created_at", "updated_at", "version")


def read_only(**kw: Any) -> Any:
    """A field the server keeps: ignored in request bodies, marked readOnly in OpenAPI."""
    return Field(default=None, json_schema_extra={"readOnly": True}, **kw)


class ApiRecord(BaseModel):
    """Base of every record: unknown fields are kept (a newer API version may add some)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: int | None = read_only(description="Server-assigned id.")
    created_at: Timestamp | None = read_only()
    updated_at: Timestamp | None = read_only(description="Bumped by every write.")
    version: int | None = read_only(description="Bumped by every write; the ETag is its quoted value.")


class SubRecord(BaseModel):
    """A nested object (order line, address): keeps unknown fields like records do."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ErrorDetail(BaseModel):
    code: str = Field(description="validation_error | not_found | conflict | precondition_failed | "
                                  "unauthorized | rate_limited | method_not_allowed | server_error")
    message: str
    field: str | None = Field(default=None, description="The offending field (dotted path), if any.")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Summary(BaseModel):
    """What `GET {root}/{entity}/_summary` answers: a cheap change probe."""

    count: int
    max_updated_at: Timestamp | None = None
