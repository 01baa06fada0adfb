"""The merge is incremental (issue #15): `nodes_<type>` derives again only the records whose input changed,
and a type whose entities depend only on their own records (customers) merges again only the entities the
changed records were or are part of, then rewrites only their links and change digests; each mapping of the
type then maps again only the entities the merges since its last build changed. The result must be the very
one a full rebuild makes. Property-based: random sequences of record versions (merge keys that join and
split entities, a key made unsafe by another record, values that change and change back, emptied fields,
the sync's own writes that make a value an echo, links made and removed) played on two state files, one
merged and mapped incrementally and one rebuilt whole at every merge, compared after each (DuckDB in memory,
no HTTP)."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talk_assets.sync.checks import MERGE_SINCE, not_collapsed
from talk_assets.sync.display import changed_entities
from talk_assets.sync.links import refresh_links
from talk_assets.sync.mapping import map_view, target_views
from talk_assets.sync.merge import MergeResult, links_refreshed, merge_type, table
from talk_assets.sync.push import WRITES_SCHEMA
from talk_assets.sync.store import SCHEMA
from talk_assets_tests.sync.small_world import T0, put

EMAILS = ["ola@firma.no", "OLA@firma.no ", "kari@x.no", "post@firma.no", None, ""]
NAMES = ["Ola Nordmann", "Kari", "van der Berg", "Åse 🎉", None, "x" * 300, "Ny\nlinje"]
DERIVED = ("nodes", "members", "merged")


def _record(source: str, rid: int, email: str | None, name: str | None, hour: int) -> dict:
    at = (T0 + timedelta(hours=hour)).isoformat()
    if source == "customcrm.customers":
        first, _, last = (name or "").partition(" ")
        return {"id": rid, "email": email, "name": name, "first_name": first or None, "last_name": last or None,
                "customer_type": "person", "updated_at": at}
    if source == "customwebshop.customers":
        return {"id": rid, "email": email, "first_name": name, "last_name": None, "updated_at": at}
    if source == "shopify.customer":
        return {"id": rid, "email": email, "first_name": name, "updated_at": at}
    return {"Id": rid, "EmailAddress": email, "Name": name or "", "IsPerson": True, "LastChangedDateTimeOffset": at}


SOURCES = ["customcrm.customers", "customwebshop.customers", "shopify.customer", "poweroffice.customers"]
# few records, so that keys collide and versions of one record follow each other
step = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(SOURCES), st.integers(1, 3), st.sampled_from(EMAILS),
              st.sampled_from(NAMES)),
    st.tuples(st.just("echo"), st.sampled_from(SOURCES), st.integers(1, 3), st.sampled_from(EMAILS), st.none()),
    # the sync linked two records (a create it made, or a link by the CLI), or a link was removed
    st.tuples(st.just("link"), st.sampled_from(SOURCES), st.integers(1, 3), st.sampled_from(SOURCES), st.integers(1, 3)),
    st.tuples(st.just("unlink"), st.sampled_from(SOURCES), st.integers(1, 3), st.none(), st.none()),
    st.tuples(st.just("merge"), st.none(), st.none(), st.none(), st.none()),
)
VIEW = {"customcrm.customers": "customcrm.customer", "customwebshop.customers": "customwebshop.customer",
        "shopify.customer": "shopify.customer", "poweroffice.customers": "poweroffice.customers_person"}
NAMESPACE = {"customcrm.customers": "customcrm-customers", "customwebshop.customers": "customwebshop-customers",
             "shopify.customer": "shopify-customer", "poweroffice.customers": "poweroffice-customers"}
MERGE = ("merge", None, None, None, None)


MAPPED = [v for v in target_views() if v.global_type == "customer"]


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    out = {t: con.execute(f"SELECT * FROM {t}_customer ORDER BY ALL").fetchall() for t in DERIVED}
    out |= {v.vkey: con.execute(f"SELECT * FROM {table('mapped', v.vkey)} ORDER BY ALL").fetchall() for v in MAPPED}
    out["links"] = con.execute("SELECT * FROM links ORDER BY ALL").fetchall()
    out["merged_digests"] = con.execute("SELECT * FROM merged_digests ORDER BY ALL").fetchall()
    return out


def _merge(con: duckdb.DuckDBPyConnection, hour: int, whole: bool) -> MergeResult:
    """What the merge step does (`assets._merge`); `whole`: as a state file without any earlier merge."""
    if whole:
        con.execute("DELETE FROM cycle_state WHERE name LIKE 'nodes:%'")
        con.execute("DELETE FROM derived_state")
    res = merge_type(con, "customer")
    if not res.reused:
        refresh_links(con, T0 + timedelta(hours=hour), ["customer"], scope=None if res.whole else "merge_scope")
        links_refreshed(con, "customer", res)
        changed_entities(con, "customer", gids=res.gids)
    for v in MAPPED:  # the mapping step of every customer view that a dataflow writes to
        map_view(con, v)
    return res


def _nsid(source: str, rid: int) -> str:
    return f"{NAMESPACE[source]}:{rid}"


def _play(con: duckdb.DuckDBPyConnection, hour: int, step: tuple) -> None:
    kind, source, rid, a, b = step
    if kind == "put":
        put(con, source, _record(source, rid, a, b, hour))
    elif kind == "echo":  # the sync wrote this e-mail to that record (an echo while the record holds it)
        con.execute("INSERT OR REPLACE INTO push_writes VALUES (?, ?, 'email', 'g', ?, 'shopify-customer:9', ?, ?)",
                    [VIEW[source], _nsid(source, rid), (a or "").strip().lower() or None,
                     T0 + timedelta(minutes=hour), T0 + timedelta(hours=hour)])
    elif kind == "link":  # both records under one new global id, as the sync links a record it created
        for src, r in ((source, rid), (a, b)):
            view = VIEW[src]
            con.execute("INSERT OR REPLACE INTO links VALUES (?, 'customer', ?, ?, ?, ?, ?, 'two-way', 'created', ?, NULL, NULL)",
                        [f"customer:link{hour}", _nsid(src, r), view, view.split(".")[0], src.split(".")[1], str(r),
                         T0 + timedelta(hours=hour)])
    elif kind == "unlink":
        con.execute("DELETE FROM links WHERE nsid = ?", [_nsid(source, rid)])


def _state() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(SCHEMA)
    con.execute(WRITES_SCHEMA)
    return con


def _check(steps: list[tuple]) -> int:
    """Play `steps` on two state files; at each "merge" and at the end, merge one incrementally and rebuild
    the other whole: their tables must be equal. Returns how many merges took the incremental path."""
    inc, full = _state(), _state()
    partial = 0
    try:
        for hour, st_ in enumerate([*steps, MERGE], start=1):
            if st_[0] != "merge":
                _play(inc, hour, st_)
                _play(full, hour, st_)
                continue
            res = _merge(inc, hour, whole=False)
            _merge(full, hour, whole=True)
            partial += not res.reused and not res.whole
            assert _tables(inc) == _tables(full), f"after {hour} steps"
            # the merge check reads the entities merged again since it last passed; the other reads all
            full.execute("DELETE FROM cycle_state WHERE name LIKE 'checked:%'")
            got, want = not_collapsed(inc, "customer"), not_collapsed(full, "customer")
            assert want.metadata["checked"].value == "everything"
            assert (got.passed, got.metadata["collapsed_entities"].value) == \
                (want.passed, want.metadata["collapsed_entities"].value), f"after {hour} steps"
    finally:
        inc.close()
        full.close()
    return partial


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=10))
def test_the_incremental_merge_equals_a_full_rebuild(steps: list[tuple]) -> None:
    _check(steps)


def test_a_write_of_the_sync_after_the_last_merge_makes_the_value_an_echo_as_a_rebuild_does() -> None:
    """The record did not change, what the sync wrote to it did: its node is derived again."""
    assert _check([("put", "customwebshop.customers", 1, "kari@x.no", "Kari"), MERGE,
                   ("echo", "customwebshop.customers", 1, "kari@x.no", None)]) == 1


def test_a_later_write_of_another_value_ends_the_echo_as_a_rebuild_does() -> None:
    """What the sync last wrote changed to a value the record does not hold: no echo any more."""
    _check([("put", "customwebshop.customers", 1, "kari@x.no", "Kari"), ("echo", "customwebshop.customers", 1, "kari@x.no", None),
            MERGE, MERGE, ("echo", "customwebshop.customers", 1, "ola@firma.no", None)])


def test_a_key_that_joins_and_then_splits_entities_as_a_rebuild_does() -> None:
    assert _check([("put", "customcrm.customers", 1, "ola@firma.no", "Ola Nordmann"),
                   ("put", "shopify.customer", 1, "kari@x.no", "Kari"), MERGE,
                   ("put", "shopify.customer", 1, "OLA@firma.no ", "Ola"), MERGE,
                   ("unlink", "shopify.customer", 1, None, None), ("put", "shopify.customer", 1, "kari@x.no", "van der Berg"),
                   MERGE, ("put", "customcrm.customers", 1, None, None)]) >= 3


def test_a_key_made_unsafe_by_another_record_of_its_view_splits_an_unchanged_record_as_a_rebuild_does() -> None:
    """Two webshop customers with one e-mail (a shared mailbox) merge nothing: the first one's entity,
    which did not change, loses its key when the second takes it."""
    assert _check([("put", "customwebshop.customers", 1, "kari@x.no", "Kari"), ("put", "shopify.customer", 1, "kari@x.no", "Kari"),
                   MERGE, ("unlink", "customwebshop.customers", 1, None, None), ("unlink", "shopify.customer", 1, None, None),
                   MERGE, ("put", "customwebshop.customers", 2, "kari@x.no", "Kari 2"), MERGE]) >= 2


def test_entities_joined_by_a_link_and_split_when_it_is_removed_as_a_rebuild_does() -> None:
    assert _check([("put", "customcrm.customers", 1, "ola@firma.no", "Ola Nordmann"),
                   ("put", "shopify.customer", 2, None, "Åse 🎉"), MERGE,
                   ("link", "customcrm.customers", 1, "shopify.customer", 2), MERGE,
                   ("unlink", "customcrm.customers", 1, None, None), ("unlink", "shopify.customer", 2, None, None),
                   MERGE]) >= 2


def test_a_key_made_safe_again_joins_an_unchanged_record_as_a_rebuild_does() -> None:
    """The second webshop customer leaves the shared e-mail: the first one, unchanged, now merges with the
    Shopify customer that has it."""
    assert _check([("put", "customwebshop.customers", 1, "kari@x.no", "Kari"), ("put", "customwebshop.customers", 2, "kari@x.no", "K"),
                   ("put", "shopify.customer", 1, "kari@x.no", "Kari"), MERGE,
                   ("put", "customwebshop.customers", 2, "ola@firma.no", "Ola"), MERGE]) >= 1


def test_a_shared_mailbox_stays_unsafe_when_one_of_its_records_changes_another_value_as_a_rebuild_does() -> None:
    """Two webshop customers share an e-mail, a Shopify customer has it too. The first webshop customer's
    name changes: whether its e-mail is a key is counted over the whole view (the second one still has
    it), not over the few records the incremental merge looks at, so nothing joins."""
    assert _check([("put", "customwebshop.customers", 1, "kari@x.no", "Kari"),
                   ("put", "customwebshop.customers", 2, "kari@x.no", "K"),
                   ("put", "shopify.customer", 1, "kari@x.no", "Kari"), MERGE,
                   ("put", "customwebshop.customers", 1, "kari@x.no", "Kari van der Berg 🎉"), MERGE]) >= 1

def test_a_create_held_by_another_target_record_is_mapped_again_when_that_record_changes() -> None:
    """Two PowerOffice persons share a mailbox (so the e-mail merges nothing); the Shopify customer with it
    holds their creates there (one customer per e-mail in Shopify). When it takes another e-mail, their
    rows, whose entities did not change, are creates again, as a rebuild maps them."""
    assert _check([("put", "poweroffice.customers", 1, "kari@x.no", "Kari Nordmann"),
                   ("put", "poweroffice.customers", 2, "kari@x.no", "Kari van der Berg"),
                   ("put", "shopify.customer", 1, "kari@x.no", "Kari"), MERGE,
                   ("put", "shopify.customer", 1, "ola@firma.no", "Kari"), MERGE]) >= 1


def test_a_merge_stopped_half_way_leaves_the_last_tables_and_the_next_one_ends_as_a_rebuild(monkeypatch) -> None:
    """The merge is one transaction: a failure after members were rewritten (a killed process, a full disk)
    leaves every table as the last merge made it, and says what failed, not that a transaction was aborted;
    the next merge still finds the same changes."""
    import talk_assets.sync.merge as merge

    inc, full = _state(), _state()
    try:
        for con in (inc, full):
            _play(con, 1, ("put", "customcrm.customers", 1, "ola@firma.no", "Ola Nordmann"))
            _play(con, 2, ("put", "shopify.customer", 1, "kari@x.no", "Kari"))
        _merge(inc, 3, whole=False)
        _merge(full, 3, whole=True)
        before = _tables(inc)
        for con in (inc, full):
            _play(con, 4, ("put", "shopify.customer", 1, "ola@firma.no", "Ola"))

        def broken(*_a: object, **_k: object) -> None:
            raise OSError("disk full while writing merged_customer")

        monkeypatch.setattr(merge, "_merged", broken)
        with pytest.raises(OSError, match="disk full"):
            merge_type(inc, "customer")
        assert _tables(inc) == before
        monkeypatch.undo()
        assert not _merge(inc, 5, whole=False).whole
        _merge(full, 5, whole=True)
        assert _tables(inc) == _tables(full)
    finally:
        inc.close()
        full.close()


def test_the_merge_check_reads_what_changed_after_a_pass_and_everything_after_a_failure() -> None:
    """A generic mailbox (post@) joins two persons through a link: `customers_not_collapsed` fails, and
    keeps failing while other records change; once the link is gone it passes, and the next merge's check
    reads only the entities that merge changed."""
    con = _state()
    try:
        for step_ in [("put", "customcrm.customers", 1, "post@firma.no", "Ola Nordmann"),
                      ("put", "shopify.customer", 2, "kari@x.no", "Kari")]:
            _play(con, 1, step_)
        _merge(con, 2, whole=False)
        assert not_collapsed(con, "customer").passed
        _play(con, 3, ("link", "customcrm.customers", 1, "shopify.customer", 2))
        _merge(con, 3, whole=False)
        bad = not_collapsed(con, "customer")
        assert not bad.passed and bad.metadata["checked"].value.startswith("the entities merged again since")
        for hour, name in ((4, "Åse 🎉"), (5, "van der Berg")):  # other records change; the failure stays
            _play(con, hour, ("put", "customwebshop.customers", 3, "ola@firma.no", name))
            _merge(con, hour, whole=False)
            again = not_collapsed(con, "customer")
            assert not again.passed and again.metadata["checked"].value == "everything"
        for src, rid in (("customcrm.customers", 1), ("shopify.customer", 2)):
            _play(con, 6, ("unlink", src, rid, None, None))
        _merge(con, 6, whole=False)
        assert not_collapsed(con, "customer").passed
        build = con.execute("SELECT max(build) FROM merge_changes WHERE global_type = 'customer'").fetchone()[0]
        _play(con, 7, ("put", "customwebshop.customers", 3, "ola@firma.no", "Ola"))
        assert not _merge(con, 7, whole=False).whole
        after = not_collapsed(con, "customer")
        assert after.passed and after.metadata["checked"].value == MERGE_SINCE.format(build)
    finally:
        con.close()
