"""The sandbox table's change index answers reads of changes exactly as a scan of every record does.

Issue #15: at 1M linked records the sandboxes tested every record against each read's change-time
filter (seconds of every sync cycle spent in the sandbox, not in the engine the benchmark measures).
The index must never change an answer: random writes, deletes and reloads with tied change times,
then every kind of read compared with a brute-force filter of the same records."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from talk_assets.sandbox.store import Table

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
times = st.integers(0, 12).map(lambda m: T0 + timedelta(minutes=m))  # few values: many ties
ids = st.integers(1, 40)
ops = st.lists(st.one_of(
    st.tuples(st.just("put"), ids, times),
    st.tuples(st.just("delete"), ids, times),
    st.tuples(st.just("load"), st.lists(st.tuples(ids, times), max_size=30), times),
), max_size=60)


def brute(table: Table, after: int | None, changed_min: datetime | None, changed_gt: datetime | None,
          changed_max: datetime | None) -> list[int]:
    return [rid for rid in sorted(table.rows)
            if (after is None or rid > after)
            and (changed_min is None or table.changed[rid] >= changed_min)
            and (changed_gt is None or table.changed[rid] > changed_gt)
            and (changed_max is None or table.changed[rid] <= changed_max)
            and table.rows[rid]["n"] % 3 != 0]


@settings(max_examples=150, deadline=None)
@given(ops=ops, after=st.none() | ids, lo=st.none() | times, gt=st.none() | times, hi=st.none() | times)
def test_reads_of_changes_equal_a_scan_of_every_record(ops: list, after: int | None, lo: datetime | None,
                                                        gt: datetime | None, hi: datetime | None) -> None:
    table = Table("things")
    for n, (op, arg, when) in enumerate(ops, 1):
        if n == len(ops) // 2:
            table.holders("n3", 0)  # the value index exists from here on: kept by the rest
        if op == "put":
            table.put({"id": arg, "n": n, "n3": n % 3}, when)
        elif op == "delete":
            table.delete(arg)
        else:
            table.load([{"id": rid, "n": n + i, "n3": (n + i) % 3} for i, (rid, _) in enumerate(arg)],
                       [t for _, t in arg])
    assert table.by_change == sorted((ts, rid) for rid, ts in table.changed.items())
    for colour in range(3):  # the value index (`holders`), built at any point of the sequence
        assert table.holders("n3", colour) == [rid for rid in table.ids if table.rows[rid]["n"] % 3 == colour]
    where = lambda r: r["n"] % 3 != 0  # noqa: E731
    got = [r["id"] for r in table.scan(after=after, where=where, changed_min=lo, changed_gt=gt, changed_max=hi)]
    assert got == brute(table, after, lo, gt, hi)
    assert table.newest_change() == (max(table.changed.values()) if table.changed else None)
    for desc in (False, True):  # a stable sort of the id-ordered records by change time
        want = sorted((rid for rid in table.ids if gt is None or table.changed[rid] > gt),
                      key=lambda rid: table.changed[rid], reverse=desc)
        assert list(table.in_change_order(desc, gt)) == want
    found = table.ids_changed(lo, gt)
    if found is not None:  # the index answered: exactly the changed ids, in id order
        assert found == [rid for rid in table.ids if (lo is None or table.changed[rid] >= lo)
                         and (gt is None or table.changed[rid] > gt)]


def test_a_read_of_a_few_changes_uses_the_index_and_a_read_of_most_walks_the_ids() -> None:
    table = Table("things")
    table.load([{"id": i, "n": i} for i in range(1, 1001)], [T0 + timedelta(seconds=i % 7) for i in range(1, 1001)])
    later = T0 + timedelta(hours=1)
    for rid in (999, 5, 500):
        table.put({"id": rid, "n": -rid}, later)
    assert table.ids_changed(changed_gt=T0 + timedelta(seconds=30)) == [5, 500, 999]
    assert [r["id"] for r in table.scan(changed_min=later)] == [5, 500, 999]
    assert [r["id"] for r in table.scan(after=5, changed_min=later)] == [500, 999]
    assert table.ids_changed(changed_min=T0) is None  # everything changed since: walk the ids
    assert table.count(changed_min=T0) == 1000


def test_a_saved_table_comes_back_with_its_index_also_from_a_snapshot_saved_without_one() -> None:
    table = Table("things")
    table.load([{"id": i} for i in (3, 1, 2)], [T0, T0 + timedelta(minutes=2), T0 + timedelta(minutes=1)])
    table.put({"id": 4}, T0 + timedelta(minutes=3))
    assert "by_change" not in table.__getstate__()  # derived data is not saved
    back = pickle.loads(pickle.dumps(table))
    assert back.by_change == table.by_change and list(back.in_change_order(True)) == [4, 1, 2, 3]
    old = Table.__new__(Table)  # a snapshot of the code before the index (`make run`'s data/sandbox)
    old.__setstate__({k: v for k, v in vars(table).items() if k != "by_change"})
    assert list(old.in_change_order(True)) == [4, 1, 2, 3] and old.by_change == table.by_change
