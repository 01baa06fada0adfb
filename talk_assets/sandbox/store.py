"""In-memory tables for the sandbox servers.

Records are kept in id order with their change time and version beside them, so list endpoints
page by id with a cursor and filter by change time without re-sorting, even at 100,000+ rows.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

Record = dict[str, Any]


class Table:
    """One entity's records, keyed by an integer or string id, in ascending id order."""

    def __init__(self, name: str, id_field: str = "id") -> None:
        self.name = name
        self.id_field = id_field
        self.rows: dict[Any, Record] = {}
        self.ids: list[Any] = []  # sorted
        self.changed: dict[Any, datetime] = {}
        self.versions: dict[Any, int] = {}
        self.next_id = 1

    def __len__(self) -> int:
        return len(self.rows)

    def new_id(self) -> int:
        nid = self.next_id
        self.next_id += 1
        return nid

    def put(self, record: Record, changed: datetime) -> Record:
        """Insert or replace a record; bumps its version."""
        rid = record[self.id_field]
        if rid not in self.rows:
            bisect.insort(self.ids, rid)
            if isinstance(rid, int) and rid >= self.next_id:
                self.next_id = rid + 1
        self.rows[rid] = record
        self.changed[rid] = changed
        self.versions[rid] = self.versions.get(rid, 0) + 1
        return record

    def load(self, records: list[Record], changed: list[datetime]) -> None:
        """Bulk load at seed time (records may come in any order)."""
        for rec, ts in zip(records, changed, strict=True):
            rid = rec[self.id_field]
            self.rows[rid] = rec
            self.changed[rid] = ts
            self.versions[rid] = 1
        self.ids = sorted(self.rows)
        ints = [i for i in self.ids if isinstance(i, int)]
        self.next_id = (max(ints) + 1) if ints else 1

    def get(self, rid: Any) -> Record | None:
        return self.rows.get(rid)

    def delete(self, rid: Any) -> Record | None:
        rec = self.rows.pop(rid, None)
        if rec is not None:
            i = bisect.bisect_left(self.ids, rid)
            del self.ids[i]
            self.changed.pop(rid, None)
            self.versions.pop(rid, None)
        return rec

    def version(self, rid: Any) -> int:
        return self.versions.get(rid, 0)

    def scan(
        self,
        after: Any = None,
        where: Callable[[Record], bool] | None = None,
        changed_min: datetime | None = None,
        changed_max: datetime | None = None,
        changed_gt: datetime | None = None,
    ) -> Iterator[Record]:
        """Records with id > `after` in id order, filtered by change time and a predicate."""
        start = 0 if after is None else bisect.bisect_right(self.ids, after)
        for rid in self.ids[start:]:
            ts = self.changed[rid]
            if changed_min is not None and ts < changed_min:
                continue
            if changed_gt is not None and ts <= changed_gt:
                continue
            if changed_max is not None and ts > changed_max:
                continue
            rec = self.rows[rid]
            if where is not None and not where(rec):
                continue
            yield rec

    def page(self, limit: int, **kw: Any) -> tuple[list[Record], bool]:
        """Up to `limit` records from `scan(**kw)` and whether more follow."""
        out: list[Record] = []
        it = self.scan(**kw)
        for rec in it:
            if len(out) == limit:
                return out, True
            out.append(rec)
        return out, False

    def count(self, **kw: Any) -> int:
        if not kw:
            return len(self.rows)
        return sum(1 for _ in self.scan(**kw))

    def newest_change(self) -> datetime | None:
        return max(self.changed.values()) if self.changed else None
