"""The link table's versions kept up by deltas (`links.record_version`): each version says exactly what
the table held, however the rows changed, and every version stays readable (`links_at`)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pytest

from talk_assets.sync.links import LINK_COLUMNS, links_at, record_version, whole_data_version

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _rows(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(f"SELECT {', '.join(LINK_COLUMNS)} FROM links ORDER BY view, nsid").df()


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    def norm(df: pd.DataFrame) -> list[tuple]:
        return sorted(tuple(None if pd.isna(x) else x for x in row)
                      for row in df[list(LINK_COLUMNS)].itertuples(index=False))
    return norm(a) == norm(b)


def _insert(con: duckdb.DuckDBPyConnection, view: str, nsid: str, gid: str, note: bool = True) -> None:
    con.execute("INSERT INTO links VALUES (?, 'customer', ?, ?, 's', 'e', ?, 'two-way', 'collected', ?, NULL, NULL)",
                [gid, nsid, view, nsid.split(":")[-1], NOW])
    if note:
        con.execute("INSERT INTO links_touched VALUES (?, ?)", [view, nsid])


def _random_step(con: duckdb.DuckDBPyConnection, rng: random.Random, serial: list[int]) -> None:
    """One writer's change, noted as the writers note theirs: a new link, a record gone, a record moved
    to another entity (a merge key joined or split), a payload written; odd names and NULLs included."""
    existing = con.execute("SELECT view, nsid FROM links ORDER BY view, nsid").fetchall()
    op = rng.choice(["add", "add", "remove", "move", "write", "write"]) if existing else "add"
    if op == "add":
        serial[0] += 1
        view = rng.choice(["customcrm.customer", "shopify.customer", "poweroffice.customer"])
        _insert(con, view, f"{view}:{serial[0]}:ÆØÅ 🙂|{rng.random():.3f}", f"g{rng.randrange(40)}")
        return
    view, nsid = rng.choice(existing)
    if op == "remove":
        con.execute("DELETE FROM links WHERE view = ? AND nsid = ?", [view, nsid])
    elif op == "move":
        con.execute("UPDATE links SET gid = ? WHERE view = ? AND nsid = ?", [f"g{rng.randrange(40)}", view, nsid])
    else:
        payload = rng.choice([None, f"h{rng.randrange(5)}", "multi\nline"])
        con.execute("UPDATE links SET last_written_hash = ? WHERE view = ? AND nsid = ?", [payload, view, nsid])
    con.execute("INSERT INTO links_touched VALUES (?, ?)", [view, nsid])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_versions_kept_by_deltas_equal_a_whole_hash_and_every_version_stays_readable(
        con: duckdb.DuckDBPyConnection, seed: int) -> None:
    rng = random.Random(seed)
    serial = [0]
    snapshots: dict[int, pd.DataFrame] = {}
    for _ in range(25):
        for _ in range(rng.randrange(0, 6)):  # zero steps: a run that changed nothing makes no version
            _random_step(con, rng, serial)
        before = con.execute("SELECT max(version) FROM link_versions").fetchone()[0]
        v = record_version(con, NOW)
        assert v.data_version == whole_data_version(con)
        assert con.execute("SELECT count(*) FROM links_touched").fetchone()[0] == 0
        if v.created:
            snapshots[v.version] = _rows(con)
        else:
            assert v.version == before
    assert len(snapshots) > 10
    for version, rows in snapshots.items():
        assert _same(links_at(con, version), rows), version


def test_a_row_removed_without_being_noted_is_found_by_its_count_and_the_version_hashes_everything(
        con: duckdb.DuckDBPyConnection) -> None:
    for i in range(5):
        _insert(con, "customcrm.customer", f"crm:{i}", f"g{i}")
    record_version(con, NOW)
    con.execute("DELETE FROM links WHERE nsid = 'crm:3'")  # nothing noted
    v = record_version(con, NOW)
    assert v.created and v.removed == 1 and v.data_version == whole_data_version(con)
    assert _same(links_at(con, v.version), _rows(con))


def test_a_state_file_whose_versions_have_no_checksum_is_hashed_whole_once(con: duckdb.DuckDBPyConnection) -> None:
    """Versions written before the checksum was kept (`content_sum` NULL): the next one starts from a
    whole hash, whose digest is the one the old code wrote (an unchanged table makes no new version)."""
    for i in range(4):
        _insert(con, "shopify.customer", f"gid://shopify/Customer/{i}", f"g{i}")
    v1 = record_version(con, NOW)
    con.execute("UPDATE link_versions SET content_sum = NULL")
    con.execute("DELETE FROM links_touched")
    assert not record_version(con, NOW).created
    assert con.execute("SELECT content_sum IS NULL FROM link_versions WHERE version = ?", [v1.version]).fetchone()[0]
    _insert(con, "shopify.customer", "gid://shopify/Customer/9", "g9")
    v2 = record_version(con, NOW)
    assert v2.created and v2.added == 1 and v2.data_version == whole_data_version(con)
    assert con.execute("SELECT content_sum IS NOT NULL FROM link_versions WHERE version = ?", [v2.version]).fetchone()[0]


# -- the link checks read what changed since the whole table last passed ------------------------------
def _whole_violations(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(records linked to two entities, entities with two records in one view), read from every row."""
    twice = con.execute("SELECT count(*) FROM (SELECT nsid FROM links GROUP BY nsid "
                        "HAVING count(DISTINCT gid) > 1)").fetchone()[0]
    dupes = con.execute("SELECT count(*) FROM (SELECT 1 FROM links GROUP BY gid, view HAVING count(*) > 1)").fetchone()[0]
    return int(twice), int(dupes)


def _check_step(con: duckdb.DuckDBPyConnection, rng: random.Random, serial: list[int]) -> None:
    """A writer's change as in `_random_step`, or one that breaks or mends a check: a record linked a
    second time in another view to another entity, a record moved onto an entity that has one in its view,
    a duplicate removed."""
    op = rng.choice(["step", "step", "twice", "crowd", "mend"])
    existing = con.execute("SELECT view, nsid, gid FROM links ORDER BY view, nsid").fetchall()
    if op == "step" or not existing:
        _random_step(con, rng, serial)
    elif op == "twice":
        view, nsid, gid = rng.choice(existing)
        other = rng.choice([v for v in ("customcrm.customer", "shopify.customer", "poweroffice.customer") if v != view])
        if not con.execute("SELECT 1 FROM links WHERE view = ? AND nsid = ?", [other, nsid]).fetchall():
            _insert(con, other, nsid, f"{gid}-other")
    elif op == "crowd":
        (view, nsid, _), (_, _, gid) = rng.choice(existing), rng.choice(existing)
        con.execute("UPDATE links SET gid = ? WHERE view = ? AND nsid = ?", [gid, view, nsid])
        con.execute("INSERT INTO links_touched VALUES (?, ?)", [view, nsid])
    else:
        bad = con.execute("""SELECT view, nsid FROM links WHERE nsid IN (SELECT nsid FROM links GROUP BY nsid
                                 HAVING count(DISTINCT gid) > 1)
                             OR (gid, view) IN (SELECT (gid, view) FROM links GROUP BY gid, view HAVING count(*) > 1)
                             ORDER BY view, nsid""").fetchall()
        for view, nsid in rng.sample(bad, min(len(bad), 3)):
            con.execute("DELETE FROM links WHERE view = ? AND nsid = ?", [view, nsid])
            con.execute("INSERT INTO links_touched VALUES (?, ?)", [view, nsid])


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_the_link_checks_on_what_changed_find_exactly_what_a_whole_scan_finds(
        con: duckdb.DuckDBPyConnection, seed: int) -> None:
    """After each version both link checks give the verdict and count of a scan of every row, over random
    runs that break and mend them, while most of them read only the rows changed since the table passed."""
    from talk_assets.sync.checks import linked_once, records_per_system

    rng = random.Random(seed)
    serial = [0]
    scoped = failed = 0
    for _ in range(40):
        for _ in range(rng.randrange(0, 5)):
            _check_step(con, rng, serial)
        record_version(con, NOW)
        twice, dupes = _whole_violations(con)
        once, per_system = linked_once(con), records_per_system(con)
        assert (once.passed, per_system.passed) == (twice == 0, dupes == 0)
        assert once.metadata["records_linked_twice"].value == min(twice, 20)
        assert per_system.metadata["duplicates"].value == dupes
        scoped += once.metadata["checked"].value != "everything"
        failed += not once.passed or not per_system.passed
    assert scoped >= 10 and failed >= 5  # both ways taken, or the test proves nothing


def test_a_failed_link_check_keeps_failing_until_the_row_is_mended_whatever_else_changes(
        con: duckdb.DuckDBPyConnection) -> None:
    """A failure is not forgotten because later runs changed other rows: after a failure the whole table
    is read again, until it passes; then only the changes since are read."""
    from talk_assets.sync.checks import LINKS_SINCE, records_per_system

    for i in range(6):
        _insert(con, "customcrm.customer", f"crm:{i}", f"g{i}")
    record_version(con, NOW)
    first = records_per_system(con)
    assert first.passed and first.metadata["checked"].value == "everything"
    _insert(con, "customcrm.customer", "crm:dupe", "g1")  # a second CRM record on entity g1
    v = record_version(con, NOW)
    bad = records_per_system(con)
    assert not bad.passed and bad.metadata["checked"].value == LINKS_SINCE.format(v.version - 1)
    for i in range(3):  # runs that touch only other records
        _insert(con, "shopify.customer", f"gid://shopify/Customer/{i}", f"g{i + 3}")
        record_version(con, NOW)
        again = records_per_system(con)
        assert not again.passed and again.metadata["duplicates"].value == 1
        assert again.metadata["checked"].value == "everything"
    con.execute("DELETE FROM links WHERE nsid = 'crm:dupe'")
    con.execute("INSERT INTO links_touched VALUES ('customcrm.customer', 'crm:dupe')")
    mended = record_version(con, NOW)
    assert records_per_system(con).passed
    _insert(con, "shopify.customer", "gid://shopify/Customer/9", "g9")
    record_version(con, NOW)
    after = records_per_system(con)
    assert after.passed and after.metadata["checked"].value == LINKS_SINCE.format(mended.version)


def _members(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str]]) -> None:
    """The customer merge's members as a whole merge leaves them: (gid, view, record id)."""
    con.execute("CREATE OR REPLACE TABLE members_customer (gid VARCHAR, nsid VARCHAR, view VARCHAR, record_id VARCHAR)")
    for gid, view, rid in rows:
        con.execute("INSERT INTO members_customer VALUES (?, ?, ?, ?)", [gid, f"{view}:{rid}", view, rid])


def test_a_whole_merge_rewrites_only_the_links_that_differ(con: duckdb.DuckDBPyConnection) -> None:
    """A whole merge (orders, a full cycle) makes every link of its type again; only the rows that differ
    are written and noted, so the version after it reads those rows, not the type's every link. The table
    then holds what rewriting every row would have made: the members, what the sync remembers of each
    (origin, first link, last written payload) and its creates not collected back yet."""
    from talk_assets.sync.links import refresh_links

    rows = [(f"g{i % 7}", view, f"{i} Dødsbo-Ærlig 🙂") for i in range(40)
            for view in ("customcrm.customer", "shopify.customer") if (i + len(view)) % 3]
    _members(con, rows)
    refresh_links(con, NOW)
    first = record_version(con, NOW)
    con.execute("UPDATE links SET last_written_hash = 'h1' WHERE record_id LIKE '1%'")  # a push wrote to these
    con.execute("INSERT INTO links_touched SELECT view, nsid FROM links WHERE record_id LIKE '1%'")
    _insert(con, "customwebshop.customer", "customwebshop.customer:created-1", "g3")  # a create not read back
    con.execute("UPDATE links SET origin = 'created' WHERE nsid = 'customwebshop.customer:created-1'")
    record_version(con, NOW)
    before = _rows(con)

    refresh_links(con, datetime(2027, 1, 1, tzinfo=UTC))  # the same members: nothing differs
    assert con.execute("SELECT count(*) FROM links_touched").fetchone() == (0,)
    assert _same(_rows(con), before)
    assert not record_version(con, NOW).created

    moved, gone = rows[3], rows[5]
    new = ("g99", "shopify.customer", "new\nline")
    _members(con, [*(r if r != moved else ("g6", *moved[1:]) for r in rows if r != gone), new])
    refresh_links(con, datetime(2027, 1, 2, tzinfo=UTC))
    touched = set(con.execute("SELECT view, nsid FROM links_touched").fetchall())
    assert touched == {(v, f"{v}:{r}") for _, v, r in (moved, gone, new)}
    after = _rows(con).set_index(["view", "nsid"])
    assert after.loc[(moved[1], f"{moved[1]}:{moved[2]}"), "gid"] == "g6"
    assert (gone[1], f"{gone[1]}:{gone[2]}") not in after.index
    assert after.loc[(new[1], f"{new[1]}:{new[2]}"), "origin"] == "collected"
    assert ("customwebshop.customer", "customwebshop.customer:created-1") in after.index  # kept until read back
    kept = after.drop([(moved[1], f"{moved[1]}:{moved[2]}"), (new[1], f"{new[1]}:{new[2]}")])
    assert _same(kept.reset_index(), before[~before.nsid.isin([f"{v}:{r}" for _, v, r in (moved, gone)])])
    v = record_version(con, NOW)
    assert (v.added, v.removed, v.moved) == (1, 1, 1) and v.version == first.version + 2
    assert v.data_version == whole_data_version(con)
