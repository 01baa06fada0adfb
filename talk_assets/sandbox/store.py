"""In-memory tables for the sandbox servers.

Records are kept in id order with their change time and version beside them, so list endpoints
page by id with a cursor and filter by change time without re-sorting, even at 100,000+ rows.
A second list keeps (change time, id) in time order, so a read of what changed since a time finds
those records by bisection, as a real service answers such a filter from an index, instead of
testing every record (at 1M linked records that scan was seconds of each sync cycle, spent in the
sandbox, not in the engine it measures).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from datetime import datetime
from operator import itemgetter
from typing import Any

Record = dict[str, Any]
_TIME = itemgetter(0)
# The change index answers a read when it leaves at most this share of the table to look at; a read
# of (nearly) everything walks the ids, which are already in order.
NARROW = 0.25


class Table:
    """One entity's records, keyed by an integer or string id, in ascending id order."""

    def __init__(self, name: str, id_field: str = "id") -> None:
        self.name = name
        self.id_field = id_field
        self.rows: dict[Any, Record] = {}
        self.ids: list[Any] = []  # sorted
        self.changed: dict[Any, datetime] = {}
        self.versions: dict[Any, int] = {}
        self.by_change: list[tuple[datetime, Any]] = []  # (change time, id), sorted
        self._by_value: dict[str, dict[Any, set[Any]]] = {}  # field -> value -> ids (`holders`)
        self.next_id = 1

    def __getstate__(self) -> dict[str, Any]:
        """Saved without the change index (`devserver.save_sandbox`): it is derived from `changed`."""
        return {k: v for k, v in self.__dict__.items() if k not in ("by_change", "_by_value")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restored with the index built again, also from a snapshot saved before the index existed."""
        self.__dict__.update(state)
        self.by_change = sorted((ts, rid) for rid, ts in self.changed.items())
        self._by_value = {}

    def __len__(self) -> int:
        return len(self.rows)

    def new_id(self) -> int:
        nid = self.next_id
        self.next_id += 1
        return nid

    def put(self, record: Record, changed: datetime, rid: Any = None) -> Record:
        """Insert or replace a record; bumps its version. `rid` stores a record under a key it does not
        carry (a malformed record a test serves); otherwise the key is the record's id."""
        rid = record[self.id_field] if rid is None else rid
        if rid not in self.rows:
            bisect.insort(self.ids, rid)
            if isinstance(rid, int) and rid >= self.next_id:
                self.next_id = rid + 1
        old = self.changed.get(rid)
        if old is not None:
            self._unindex(old, rid)
        bisect.insort(self.by_change, (changed, rid))
        before = self.rows.get(rid)
        for name, index in self._by_value.items():
            if before is not None:
                _discard(index, before.get(name), rid)
            index.setdefault(record.get(name), set()).add(rid)
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
        self.by_change = sorted((ts, rid) for rid, ts in self.changed.items())
        self._by_value = {}
        ints = [i for i in self.ids if isinstance(i, int)]
        self.next_id = (max(ints) + 1) if ints else 1

    def get(self, rid: Any) -> Record | None:
        return self.rows.get(rid)

    def delete(self, rid: Any) -> Record | None:
        rec = self.rows.pop(rid, None)
        if rec is not None:
            i = bisect.bisect_left(self.ids, rid)
            del self.ids[i]
            old = self.changed.pop(rid, None)
            if old is not None:
                self._unindex(old, rid)
            for name, index in self._by_value.items():
                _discard(index, rec.get(name), rid)
            self.versions.pop(rid, None)
        return rec

    def _values(self, name: str) -> dict[Any, set[Any]]:
        index = self._by_value.get(name)
        if index is None:
            index = self._by_value[name] = {}
            for rid, rec in self.rows.items():
                index.setdefault(rec.get(name), set()).add(rid)
        return index

    def holders(self, name: str, value: Any) -> list[Any]:
        """The ids of the records whose field `name` is `value`, in id order: a unique field's check (a
        customer number, an import reference) without reading every record, as a database's unique index
        answers it. Built on first use, kept by put/delete/load (records are replaced by `put`, never
        edited in place)."""
        return sorted(self._values(name).get(value, ()))

    def values_of(self, name: str) -> list[Any]:
        """The distinct values of field `name` the records hold (None included when one lacks it)."""
        return list(self._values(name))

    def _unindex(self, changed: datetime, rid: Any) -> None:
        i = bisect.bisect_left(self.by_change, (changed, rid))
        if i < len(self.by_change) and self.by_change[i] == (changed, rid):
            del self.by_change[i]

    def ids_changed(self, changed_min: datetime | None = None,
                    changed_gt: datetime | None = None) -> list[Any] | None:
        """The ids of the records changed at/after `changed_min` and after `changed_gt`, in id order,
        found in the change index; None when no bound is given or the bound leaves most of the table
        (then walking `ids` is cheaper than sorting the found ones)."""
        if changed_min is None and changed_gt is None:
            return None
        start = 0
        if changed_min is not None:
            start = bisect.bisect_left(self.by_change, changed_min, key=_TIME)
        if changed_gt is not None:
            start = max(start, bisect.bisect_right(self.by_change, changed_gt, key=_TIME))
        if len(self.by_change) - start > NARROW * len(self.ids):
            return None
        return sorted(rid for _, rid in self.by_change[start:])

    def in_change_order(self, descending: bool = False, changed_gt: datetime | None = None) -> Iterator[Any]:
        """Ids by change time (changed after `changed_gt`), ties in id order either way: the order a
        stable sort of the id-ordered records by their change time gives, without sorting them."""
        by = self.by_change
        lo = 0 if changed_gt is None else bisect.bisect_right(by, changed_gt, key=_TIME)
        if not descending:
            yield from (rid for _, rid in by[lo:])
            return
        end = len(by)
        while end > lo:
            start = max(lo, bisect.bisect_left(by, by[end - 1][0], key=_TIME))
            yield from (rid for _, rid in by[start:end])
            end = start

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
        ids = self.ids_changed(changed_min, changed_gt)
        if ids is None:
            ids = self.ids
        start = 0 if after is None else bisect.bisect_right(ids, after)
        for rid in ids[start:]:
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
        return self.by_change[-1][0] if self.by_change else None


def _discard(index: dict[Any, set[Any]], value: Any, rid: Any) -> None:
    held = index.get(value)
    if held is not None:
        held.discard(rid)
        if not held:
            del index[value]
