"""The link table's version after a run that wrote to a few links (`links.record_version`, issue #15):
kept up by deltas (the rows written since the last version) against the whole-table path (every link
hashed and compared with the history, what each version cost before), in the same run, on one table."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime

import duckdb

from benchmarks.common import Recorder, Result, timer

SIZES = {"quick": [100_000], "full": [100_000, 1_000_000]}
WRITES = 100  # links written by the run (a push's payload hashes), as in a 100-edit cycle


def _write(con: duckdb.DuckDBPyConnection, round_: int) -> None:
    """`WRITES` links get a new last written payload, noted as a push notes them."""
    con.execute(f"UPDATE links SET last_written_hash = 'w{round_}-' || nsid WHERE nsid IN "
                f"(SELECT 'n' || i FROM range({round_ * WRITES}, {(round_ + 1) * WRITES}) t(i))")
    con.execute(f"INSERT INTO links_touched SELECT view, nsid FROM links WHERE last_written_hash LIKE 'w{round_}-%'")


def run(rec: Recorder, profile: str) -> None:
    from talk_assets.settings import environment
    from talk_assets.sync.checks import linked_once, records_per_system
    from talk_assets.sync.links import record_version, whole_data_version
    from talk_assets.sync.store import connect

    now = datetime.now(UTC)
    for n in SIZES[profile]:
        with tempfile.TemporaryDirectory() as d, environment({"TALK_DATA_DIR": d}), connect() as con:
            # two records per entity, in seven views, as the sync links them
            con.execute(f"""INSERT INTO links SELECT 'g' || (i // 2), 'customer', 'n' || i, 'view' || (i % 7), 's', 'e',
                            'r' || i, 'two-way', 'collected', now(), md5(i::VARCHAR), now() FROM range({n}) t(i)""")
            record_version(con, now)  # the first version: every link
            assert linked_once(con).passed and records_per_system(con).passed  # the whole table passes
            _write(con, 1)
            with timer() as t_delta:
                v = record_version(con, now)
            assert v.created and v.written == WRITES and v.data_version == whole_data_version(con)
            with timer() as t_checks:  # the rows written since the version that passed
                scoped = [linked_once(con), records_per_system(con)]
            con.execute("DELETE FROM cycle_state WHERE name LIKE 'checked:%'")  # no result to start from
            with timer() as t_checks_whole:
                whole = [linked_once(con), records_per_system(con)]
            assert all(c.passed for c in scoped + whole)
            assert scoped[0].metadata["checked"].value != whole[0].metadata["checked"].value == "everything"
            with timer() as t_none:
                same = record_version(con, now)
            assert not same.created
            _write(con, 2)
            con.execute("UPDATE link_versions SET content_sum = NULL")  # no checksum to start from: the whole path
            with timer() as t_whole:
                w = record_version(con, now)
            assert w.created and w.written == WRITES
        size = f"{n:,} links"
        rec.add(Result("links.version_after_100_writes", t_delta["s"], "s", "whole-table version", t_whole["s"], size,
                       note=f"{WRITES} links written since the last version"))
        rec.add(Result("links.checks_after_100_writes", t_checks["s"], "s", "both link checks on every link",
                       t_checks_whole["s"], size, note=f"record_linked_once + one_record_per_system after {WRITES} "
                       "links written, reading the rows changed since the version that passed"))
        rec.add(Result("links.version_nothing_written", t_none["s"], "s", "whole-table version", t_whole["s"], size,
                       note="a run that wrote no link: no version"))
