"""The merge keeps `nodes_<type>` up to date incrementally (only records whose input changed are derived
again, issue #15); the result must be the very one a full rebuild makes. Property-based: random sequences
of record versions (merge keys that join and split entities, values that change and change back, emptied
fields, the sync's own writes that make a value an echo) with a merge after some steps, each compared
with a full rebuild of the same state (DuckDB in memory, no HTTP)."""

from __future__ import annotations

from datetime import timedelta

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from talk_assets.sync.merge import merge_type
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
    st.tuples(st.just("put"), st.sampled_from(SOURCES), st.integers(1, 2), st.sampled_from(EMAILS),
              st.sampled_from(NAMES)),
    st.tuples(st.just("echo"), st.sampled_from(SOURCES), st.integers(1, 2), st.sampled_from(EMAILS), st.none()),
    st.tuples(st.just("merge"), st.none(), st.none(), st.none(), st.none()),
)
VIEW = {"customcrm.customers": "customcrm.customer", "customwebshop.customers": "customwebshop.customer",
        "shopify.customer": "shopify.customer", "poweroffice.customers": "poweroffice.customers_person"}
NAMESPACE = {"customcrm.customers": "customcrm-customers", "customwebshop.customers": "customwebshop-customers",
             "shopify.customer": "shopify-customer", "poweroffice.customers": "poweroffice-customers"}


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {t: con.execute(f"SELECT * FROM {t}_customer ORDER BY ALL").fetchall() for t in DERIVED}


def _full(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """What a full rebuild of this state makes (then the incremental tables are rebuilt to the same)."""
    con.execute("DELETE FROM cycle_state WHERE name LIKE 'nodes:%'")
    con.execute("DELETE FROM derived_state")
    merge_type(con, "customer")
    return _tables(con)


def _check(steps: list[tuple]) -> None:
    """Play `steps`; at each "merge" and at the end, the incremental merge's tables equal a full rebuild's."""
    con = duckdb.connect()
    con.execute(SCHEMA)
    con.execute(WRITES_SCHEMA)
    try:
        for hour, (kind, source, rid, email, name) in enumerate([*steps, ("merge", None, None, None, None)], start=1):
            if kind == "put":
                put(con, source, _record(source, rid, email, name, hour))
            elif kind == "echo":  # the sync wrote this e-mail to that record (an echo while the record holds it)
                con.execute("INSERT OR REPLACE INTO push_writes VALUES (?, ?, 'email', 'g', ?, 'shopify-customer:9', ?, ?)",
                            [VIEW[source], f"{NAMESPACE[source]}:{rid}", (email or "").strip().lower() or None,
                             T0 + timedelta(minutes=hour), T0 + timedelta(hours=hour)])
            else:
                merge_type(con, "customer")
                incremental = _tables(con)
                assert incremental == _full(con), f"after {hour} steps"
    finally:
        con.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=8))
def test_the_incremental_merge_equals_a_full_rebuild(steps: list[tuple]) -> None:
    _check(steps)


def test_a_write_of_the_sync_after_the_last_merge_makes_the_value_an_echo_as_a_rebuild_does() -> None:
    """The record did not change, what the sync wrote to it did: its node is derived again."""
    _check([("put", "customwebshop.customers", 1, "kari@x.no", "Kari"), ("merge", None, None, None, None),
            ("echo", "customwebshop.customers", 1, "kari@x.no", None)])


def test_a_later_write_of_another_value_ends_the_echo_as_a_rebuild_does() -> None:
    """What the sync last wrote changed to a value the record does not hold: no echo any more."""
    _check([("put", "customwebshop.customers", 1, "kari@x.no", "Kari"), ("echo", "customwebshop.customers", 1, "kari@x.no", None),
            ("merge", None, None, None, None), ("merge", None, None, None, None),
            ("echo", "customwebshop.customers", 1, "ola@firma.no", None)])


def test_a_key_that_joins_and_then_splits_entities_as_a_rebuild_does() -> None:
    _check([("put", "customcrm.customers", 1, "ola@firma.no", "Ola Nordmann"),
            ("put", "shopify.customer", 1, "kari@x.no", "Kari"), ("merge", None, None, None, None),
            ("put", "shopify.customer", 1, "OLA@firma.no ", "Ola"), ("merge", None, None, None, None),
            ("put", "shopify.customer", 1, "kari@x.no", "van der Berg"), ("merge", None, None, None, None),
            ("put", "customcrm.customers", 1, None, None)])
