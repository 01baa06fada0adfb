"""What the assets show in Dagster's UI: readable Markdown tables of provenance and of differences.

Metadata is read by people on an asset page, so every cell is made readable here: no numpy or
list reprs, whole numbers without `.0`, long text shortened at a word boundary with an ellipsis
(never cut mid-word), newlines and pipes that would break a Markdown table escaped, and no column
twice. The tables come from DuckDB; this module only formats and selects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import dagster as dg
import duckdb
import pandas as pd

from talk_assets.config import SYSTEMS
from talk_assets.sync import explain as why
from talk_assets.sync.declaration import VIEWS
from talk_assets.sync.merge import table

NAMESPACES = {v.namespace: v for v in VIEWS}  # a record's view, by its id's namespace (first view wins)
CELL_CHARS = 60  # a cell longer than this is shortened at a word boundary
ELLIPSIS = "…"


def shorten(text: str, limit: int = CELL_CHARS) -> str:
    """`text` in at most `limit` characters: cut at the last word boundary before the limit, with an
    ellipsis; a single word longer than the limit (a token, a URL) is cut inside it, also marked."""
    text = " ".join(text.split())  # newlines, tabs and runs of spaces: one space
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    cut = head.rfind(" ")
    if cut >= limit // 3:
        head = head[:cut]
    return head.rstrip(" ,;:.-") + ELLIPSIS


def plain(value: Any) -> str:
    """One value as a person reads it: '' for nothing, 422 for 422.0, lists joined with ', ',
    JSON objects as compact JSON, times to the second."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else f"{value:g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays and scalars
        value = value.tolist()
        if not isinstance(value, list):
            return plain(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)


def cell(value: Any, limit: int = CELL_CHARS) -> str:
    """A Markdown table cell: readable, shortened, and unable to break the table."""
    return shorten(plain(value), limit).replace("\\", "\\\\").replace("|", "\\|")


def md_text(df: pd.DataFrame, limit: int | None = 8, widths: dict[str, int] | None = None) -> str:
    """`df` as a Markdown table (each column once), at most `limit` rows, with a line saying how
    many rows were left out."""
    df = df.loc[:, ~pd.Index(df.columns).duplicated()]
    if df.empty:
        return "_(no rows)_"
    shown = df if limit is None else df.head(limit)
    widths = widths or {}
    cols = [str(c) for c in shown.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v, widths.get(c, CELL_CHARS)) for c, v in zip(cols, row, strict=True))
                     + " |")
    if len(df) > len(shown):
        lines.append(f"\n_{len(df) - len(shown)} more rows not shown_")
    return "\n".join(lines)


def md(df: pd.DataFrame, limit: int | None = 8, widths: dict[str, int] | None = None) -> dg.MetadataValue:
    return dg.MetadataValue.md(md_text(df, limit, widths))


def source_label(nsid: str | None) -> str:
    """'Shopify customer 123' for a namespaced record id ('shopify-customer:123')."""
    if not nsid:
        return ""
    ns, _, rid = nsid.partition(":")
    v = NAMESPACES.get(ns)
    return f"{SYSTEMS[v.system].title} {v.name} {rid}" if v is not None else nsid


# -- provenance ------------------------------------------------------------------------------------
PROVENANCE_COLUMNS = ["gid", "property", "value", "from", "edited_at", "beaten"]


def provenance_rows(con: duckdb.DuckDBPyConnection, gtype: str, gids: Sequence[str]) -> pd.DataFrame:
    """Per entity of `gids` and property: the value that won, the record whose edit it is (the origin,
    not an echo the sync wrote), the time of that edit, and the other values it beat (with their
    records, times and why each lost). The rows are `explain.provenance_rows`, the one source of
    provenance for the UI and `talk-assets explain`; this only makes them a table."""
    out = []
    for r in why.provenance_rows(con, gtype, list(gids)):
        if r["property"] == "lines":
            continue
        lost = "; ".join(f"{plain(b['value'])} ({source_label(b['record'])}, {plain(b['edit_time']) or 'no time'}: "
                         f"{b['why']})" for b in r["beaten"])
        out.append((r["gid"], r["property"], r["value"], source_label(r["record"]), r["edit_time"], lost))
    return pd.DataFrame(out, columns=PROVENANCE_COLUMNS)


def provenance_md(df: pd.DataFrame, heading: str, entities: int = 5) -> str:
    """Provenance rows as Markdown under `heading`: one table per entity, at most `entities` of them."""
    if df.empty:
        return f"**{heading}**\n\n_(none)_"
    gids = list(dict.fromkeys(df["gid"]))
    parts = [f"**{heading}**"]
    for gid in gids[:entities]:
        rows = df[df["gid"] == gid].drop(columns=["gid"])
        rows = rows.rename(columns={"from": "from (system record)", "edited_at": "edited at", "beaten": "beat"})
        parts += [f"\n`{gid}`\n", md_text(rows, None, {"beat": 140})]
    if len(gids) > entities:
        parts.append(f"\n_{len(gids) - entities} more entities not shown_")
    return "\n".join(parts)


def changed_entities(con: duckdb.DuckDBPyConnection, gtype: str, gids: str | None = None) -> tuple[list[str], int, bool]:
    """The entities whose merged row differs from the one the last merge of `gtype` made: (a few of
    their ids, latest change first; how many; whether this is the first merge). Compared by a hash per entity kept in
    `merged_digests`, updated here; called only after a merge that rebuilt its tables (`gids`: a temp table
    of the only entities it redid or found changed, before and after, `merge.MergeResult.gids`; the others'
    merged rows are as they were, so their digests stand)."""
    merged = table("merged", gtype)
    con.execute("CREATE TABLE IF NOT EXISTS merged_digests (global_type VARCHAR, gid VARCHAR, h UBIGINT)")
    first_merge = not con.execute("SELECT 1 FROM merged_digests WHERE global_type = ? LIMIT 1", [gtype]).fetchall()
    within = f"AND gid IN (SELECT gid FROM {gids})" if gids else ""
    con.execute(f"CREATE OR REPLACE TEMP TABLE new_digests AS SELECT gid, changed_at, hash(m) AS h FROM {merged} m "
                f"WHERE true {within}")
    # the latest edits first: a person's edit shows before the echoes of the sync's own earlier writes
    changed = con.execute(
        """
        SELECT n.gid FROM new_digests n LEFT JOIN merged_digests o ON o.global_type = ? AND o.gid = n.gid
        WHERE o.h IS DISTINCT FROM n.h ORDER BY n.changed_at DESC NULLS LAST, n.gid
        """, [gtype]).fetchall()
    con.execute(f"DELETE FROM merged_digests WHERE global_type = ? {within}", [gtype])
    con.execute("INSERT INTO merged_digests SELECT ?, gid, h FROM new_digests", [gtype])
    con.execute("DROP TABLE new_digests")
    return [r[0] for r in changed[:50]], len(changed), first_merge


# -- what differs ------------------------------------------------------------------------------------
DIFF_COLUMNS = ["gid", "record", "action", "field", "old", "new"]


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return dict(value)


def diff_rows(rows: Iterable[tuple[Any, Any, str, Any, Any, Any]]) -> pd.DataFrame:
    """Old -> new per changed field, from mapped rows (gid, record id, action, changed fields, payload,
    current). A create shows every field it sets (old is empty); an update the fields that differ."""
    out = []
    for gid, record_id, action, changed, payload, current in rows:
        new, old = _as_dict(payload), _as_dict(current)
        fields = [f for f in (list(changed) if changed is not None else [])] if action == "update" else \
            [f for f, v in new.items() if v not in (None, "")]
        for f in fields:
            out.append((gid, plain(record_id) or "(new)", action, f, old.get(f) if action == "update" else None,
                        new.get(f)))
    return pd.DataFrame(out, columns=DIFF_COLUMNS)


def record_summary(payload: Any) -> str:
    """Who a pending record is, from its payload: its name or company, and its e-mail or SKU."""
    d = _as_dict(payload)
    name = " ".join(str(d[k]) for k in ("first_name", "last_name") if d.get(k)) or next(
        (str(v) for k, v in d.items() if v and ("company" in k.lower() or k.lower() in ("name", "title"))), "")
    key = next((str(v) for k, v in d.items() if v and k.lower() in ("email", "emailaddress", "sku")), "")
    return ", ".join(x for x in (name, key) if x) or "(no name)"
