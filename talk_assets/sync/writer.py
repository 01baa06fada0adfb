"""The generic writer a system's writer builds on: a pending row, and how it becomes API calls.

Systems import this (and the model) only; the push engine (`push.py`) imports it too, so neither
depends on the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from talk_assets.sync.model import Source, View, json_type_of


class HeldBack(Exception):  # noqa: N818 - an outcome, not an error
    """A record the target cannot take yet, for a reason in the data, not a fault of the system or the
    record (an order whose product the target does not have yet, an amount in a currency the target
    does not use and no rate is known): no call is made, nothing is dead-lettered, the push counts it
    as `held` with this message as its `held_reason`, and the next cycle tries again."""


@dataclass
class Row:
    """One pending mapped row, as the writer sees it."""

    view: View
    gid: str
    action: str
    nsid: str | None
    record_id: str | None
    parent_id: str | None
    changed_fields: list[str]
    payload: dict[str, Any]
    refs: dict[str, Any]
    glob: dict[str, Any]
    payload_hash: str
    version: str | None

    @property
    def idem_key(self) -> str:
        """Stable for the view and entity, so a retried create is recognised (<= 64 URL-safe chars)."""
        return "talk-" + hashlib.sha256(f"{self.view.vkey}|{self.gid}".encode()).hexdigest()[:40]

    def typed(self, fields: list[str] | None = None) -> dict[str, Any]:
        """The payload (or some fields of it) with values in the API's JSON types."""
        types: dict[str, str] = {}
        for pr in self.view.props:  # the field's writing property decides its type
            if pr.write is not None:
                types.setdefault(pr.field, pr.json_type)
        out = {}
        for f in fields if fields is not None else list(self.payload):
            out[f] = to_json_type(self.payload.get(f), types.get(f, "string"))
        return out


def to_json_type(value: Any, json_type: str) -> Any:
    """A canonical text value as JSON type `json_type` (one of `model.JSON_TYPES`, or a field's declared type)."""
    if value is None:
        return None
    t = json_type if json_type in ("string", "integer", "number", "boolean", "list") else json_type_of(json_type)
    if t == "list":
        return value if isinstance(value, list) else json.loads(value)
    if t == "integer":
        try:
            return int(value)
        except (TypeError, ValueError):
            return value
    if t == "number":
        return float(value)
    if t == "boolean":
        return str(value).lower() == "true"
    return str(value)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.b": 1} -> {"a": {"b": 1}}."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        parts = path.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


class Writer:
    """Turns rows into the system's API calls. The default nests dotted fields into the body and
    uses the client's uniform `create_record` / `update_record`; systems override what differs."""

    supports_idempotency_key = False

    def __init__(self, client: Any, sources: Iterable[Source] = ()) -> None:
        self.client = client
        # where a created record's id is, per entity (a flattened view's rows are created through their entity)
        self.id_fields = {s.entity: s.id_field for s in sources}

    def create(self, row: Row) -> dict[str, Any]:
        body = {k: v for k, v in nest(row.typed()).items() if v is not None}
        return self.client.create_record(row.view.entity, body, idempotency_key=row.idem_key)

    def update(self, row: Row, fields: list[str]) -> dict[str, Any]:
        changes = nest(row.typed(fields))
        return self.client.update_record(row.view.entity, row.record_id, changes, expected_version=row.version)

    @staticmethod
    def write_then_hold(fields: list[str], held: Iterable[str], reason: str,
                        write: Callable[[list[str]], Any]) -> NoReturn:
        """Write `fields` except `held` with `write` (when any are left), then hold the row: `HeldBack(reason)`.

        For a value the target cannot take yet while the record's other properties must still flow (a
        price for a record or shop in another currency): the push counts the row as held (no dead
        letter, nothing retried in a loop) and the next cycle tries the held fields again."""
        skip = set(held)
        rest = [f for f in fields if f not in skip]
        if rest:
            write(rest)
        raise HeldBack(reason)

    def new_record_id(self, row: Row, created: dict[str, Any]) -> str:
        return str(created[self.id_fields[row.view.entity]])

    def describe(self, row: Row, fields: list[str] | None = None) -> str:
        """The call for `--dry-run`."""
        if row.action == "create":
            return f"{row.view.system}: create {row.view.entity} {json.dumps(row.typed(), ensure_ascii=False)[:200]}"
        return (f"{row.view.system}: update {row.view.entity} {row.record_id} "
                f"{json.dumps(row.typed(fields), ensure_ascii=False)[:200]}")


def money_amount(value: Any) -> Decimal | None:
    """A money amount as a Decimal rounded to øre/cents, None when empty or not a number."""
    try:
        return Decimal(str(value)).quantize(Decimal("0.01")) if value not in (None, "") else None
    except InvalidOperation:
        return None


def net_of_lines(lines: Any) -> Decimal | None:
    """An order's net amount from its global lines (quantity x unit price ex. VAT), None when unknown:
    what a target that wants the order's subtotal or tax is sent when no net amount was merged."""
    try:
        items = json.loads(lines) if isinstance(lines, str) else lines
        return sum((Decimal(str(li["unit_price_ex_vat"])) * int(li["quantity"]) for li in items or []), Decimal(0))
    except (ValueError, TypeError, KeyError, InvalidOperation):
        return None
