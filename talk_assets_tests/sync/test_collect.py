"""Collect's rejection of wrongly typed values, on a real DuckDB state file (no HTTP).

A field whose read converts it (a number, a date: `Prop.converts_to`) must hold a value that
converts; a record that does not is named (system, entity, record, field) and not stored, so its
previous good version stays current, and every other record of the batch is stored as before.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb

from talk_assets.sync.assets import HttpTuning, build_collect_asset
from talk_assets.sync.collect import collect_records
from talk_assets.sync.declaration import SOURCES_BY_KEY, VIEWS
from talk_assets.sync.merge import merge_type
from talk_assets.sync.store import connect

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ts(hours: int) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def current(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, dict]:
    system, entity = source.split(".")
    rows = con.execute("SELECT record_id, payload FROM raw_current WHERE system = ? AND entity = ?",
                       [system, entity]).fetchall()
    return {rid: json.loads(payload) for rid, payload in rows}


def webshop_product(rid: int, hours: int, **fields: object) -> dict:
    return {"id": rid, "sku": f"WS-{rid}", "title": f"Vare {rid}", "price": 12500, "stock": 4, "gtin": None,
            "updated_at": ts(hours), "version": hours, **fields}


def shopify_product(rid: int, hours: int, *prices: str) -> dict:
    return {"id": rid, "title": f"Produkt {rid}", "updated_at": ts(hours),
            "variants": [{"id": rid * 10 + i, "sku": f"SH-{rid}-{i}", "price": p, "inventory_quantity": 2}
                         for i, p in enumerate(prices)]}


def test_a_wrongly_typed_value_is_named_and_its_record_keeps_its_good_version(tmp_path: Path) -> None:
    ws, sh = SOURCES_BY_KEY["customwebshop.products"], SOURCES_BY_KEY["shopify.product"]
    with connect(tmp_path / "talk.duckdb") as con:
        first = collect_records(con, ws, [webshop_product(1, 1), webshop_product(2, 1)], since=None, now=T0)
        assert not first.bad and first.new == 2
        collect_records(con, sh, [shopify_product(10, 1, "125.00", "150.00")], since=None, now=T0)

        later = T0 + timedelta(days=1)
        res = collect_records(con, ws, [
            webshop_product(1, 2, price=9900),  # a good edit
            webshop_product(2, 2, stock="mange"),  # an edit with a bad integer
            webshop_product(3, 2, price="tolv kroner", stock=""),  # a new record with a bad price (empty stock is fine)
        ], since=None, now=later)
        assert [str(b) for b in res.bad] == [
            "customwebshop products record 2: field 'stock' is not a number: 'mange'",
            "customwebshop products record 3: field 'price' is not a number: 'tolv kroner'",
        ]
        assert (res.read, res.new, res.changed, res.rejected) == (3, 0, 1, 2)
        stored = current(con, ws.key)
        assert sorted(stored) == ["1", "2"]
        assert stored["1"]["price"] == 9900  # the good record of the batch is stored
        assert stored["2"]["stock"] == 4  # the bad one's earlier version stays current

        res = collect_records(con, sh, [
            shopify_product(10, 2, "125.00", "hundre"),  # one bad variant price names the product
            shopify_product(11, 2, "99.00"),
        ], since=None, now=later)
        assert [(b.system, b.entity, b.record, b.field, b.problem) for b in res.bad] == [
            ("shopify", "product", "10", "variants.price", "is not a number: 'hundre'")]
        stored = current(con, sh.key)
        assert sorted(stored) == ["10", "11"] and stored["10"]["variants"][1]["price"] == "150.00"

        # downstream reads the good versions: nothing became an empty price
        merge_type(con, "product")
        norm = dict(con.execute("SELECT nsid, price_ex_vat FROM norm_customwebshop_product").fetchall())
        assert norm == {"customwebshop-products:1": "79.20", "customwebshop-products:2": "100.00"}
        stock = con.execute("SELECT stock FROM norm_customwebshop_product WHERE record_id = '2'").fetchall()
        assert stock == [("4",)]
        prices = dict(con.execute("SELECT nsid, price_ex_vat FROM norm_shopify_sesamproduct").fetchall())
        assert prices == {"shopify-product:100": "100.00", "shopify-product:101": "120.00",
                          "shopify-product:110": "79.20"}


def test_a_date_that_is_no_date_is_named_and_a_huge_number_is_out_of_range(tmp_path: Path) -> None:
    with connect(tmp_path / "talk.duckdb") as con:
        res = collect_records(con, SOURCES_BY_KEY["customcrm.orders"], [
            {"id": 1, "order_date": "snart", "total_ex_vat": "1e30", "lines": [], "updated_at": ts(1)},
            {"id": 2, "order_date": "2026-01-05", "total_ex_vat": "100.00", "lines": [], "updated_at": ts(1)},
        ], since=None, now=T0)
        assert [str(b) for b in res.bad] == [
            "customcrm orders record 1: field 'order_date' is not a date: 'snart'",
            "customcrm orders record 1: field 'total_ex_vat' is out of range: '1e30'",
        ]
        assert sorted(current(con, "customcrm.orders")) == ["2"]


def test_every_converting_read_is_a_declared_number_or_date() -> None:
    """The rule follows the declaration: what a read converts is what the property's type says."""
    for view in VIEWS:
        for p in view.props:
            if p.converts_to:
                words = {"a number": ("integer", "decimal"), "a date": ("date",)}[p.expects]
                assert any(w in p.type for w in words), (view.vkey, p.field, p.type, p.converts_to)
            elif p.read and p.type.startswith(("integer", "decimal")):  # only references (`ref()`) stay text
                assert p.read.startswith("CASE WHEN nullif(trim({v}), '') IS NOT NULL THEN '"), (view.vkey, p.field)


class _Client:
    """Stands in for a system's API client: serves a fixed batch."""

    def __init__(self, records: list[dict]) -> None:
        self.records = records

    def iter_records(self, entity: str, since: datetime | None = None) -> list[dict]:
        return self.records

    def probe(self, entity: str, previous: str | None = None) -> str:  # the collect observes the source before it reads
        return f"{len(self.records)}"

    def close(self) -> None:
        pass


class _Resource:
    def __init__(self, records: list[dict]) -> None:
        self.records = records

    def client(self) -> _Client:
        return _Client(self.records)


def test_the_collect_asset_shows_each_rejected_record_in_its_metadata_and_log(data_dir: Path) -> None:
    src = SOURCES_BY_KEY["customwebshop.products"]
    batch = [webshop_product(1, 1), webshop_product(2, 1, price="tolv kroner")]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([build_collect_asset(src)], resources={"customwebshop": _Resource(batch), "http": HttpTuning()},
                            instance=instance)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    message = "customwebshop products record 2: field 'price' is not a number: 'tolv kroner'"
    assert meta["rejected"].value == 1 and meta["new"].value == 1
    assert meta["rejected_records"].value == f"- {message}"
    warnings = [e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING]
    assert f"rejected: {message}" in warnings, warnings
