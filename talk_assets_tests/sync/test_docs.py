"""`talk-assets docs`: the seed documents with their property tables filled from the declaration."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from talk_assets.sync.declaration import DATAFLOWS

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "seeds"


def section_titles(text: str) -> list[str]:
    lines = text.splitlines()
    return [lines[i - 1] for i in range(1, len(lines)) if re.fullmatch(r"-{4,}", lines[i]) and lines[i - 1] != "Introduction"]


def test_docs_command_writes_one_rst_per_seed_with_filled_tables(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    proc = subprocess.run([sys.executable, "-m", "talk_assets.cli", "docs", "--out", str(out)],
                          capture_output=True, text=True, check=True)
    files = sorted(out.glob("*.rst"))
    assert [f.name[:3] for f in files] == ["000", "001", "002", "003", "004"], proc.stdout
    total_sections = 0
    for f in files:
        text = f.read_text()
        titles = section_titles(text)
        assert len(titles) == len(set(titles)), f"{f.name} repeats a section"
        total_sections += len(titles)
        # every table has at least one property row after its three header cells
        for table in text.split(".. list-table::")[1:]:
            rows = re.findall(r"^   \* - ", table, flags=re.M)
            assert len(rows) >= 2, f"{f.name}: a property table is empty"
    assert total_sections == len(DATAFLOWS) == 16


@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"the seed documents are not at {SEEDS} (shared/ beside the clone)")
def test_docs_cover_every_section_of_the_seed_documents() -> None:
    from talk_assets.sync.docs import render_seed

    for seed_file in sorted(SEEDS.glob("*.txt")):
        seed = seed_file.name[:3]
        wanted = {t.replace("  ", " Squarespace ").strip() for t in section_titles(seed_file.read_text())}
        got = set(section_titles(render_seed(seed)))
        assert wanted == got, (seed, wanted ^ got)


def test_po_customers_table_matches_the_known_sesam_mapping() -> None:
    from talk_assets.sync.docs import render_seed

    text = render_seed("004")
    section = text.split("PowerOffice GO Customers (human data) to Shopify Customer")[1].split("PowerOffice GO Customers to")[0]
    pairs = re.findall(r"\* - (\S+)\n\s+- (\S+)\n\s+- (.+)", section)
    assert ("EmailAddress", "email", "string") in pairs
    assert ("FirstName", "first_name", "string") in pairs
    assert ("PhoneNumber", "default_address.phone", "string") in pairs
    assert ("MailAddress.City", "default_address.city", "string") in pairs


def _without_stamp(text: str) -> str:
    return re.sub(r"^Generated: .*$", "Generated: -", text, flags=re.M)


def test_the_committed_dataflow_documents_are_what_talk_assets_docs_writes(tmp_path: Path) -> None:
    """docs/dataflows/ is generated: a declaration change without `make docs` fails here (issue 12)."""
    committed = Path(__file__).resolve().parents[2] / "docs" / "dataflows"
    subprocess.run([sys.executable, "-m", "talk_assets.cli", "docs", "--out", str(tmp_path)],
                   capture_output=True, text=True, check=True)
    written = {f.name: _without_stamp(f.read_text(encoding="utf-8")) for f in tmp_path.glob("*.rst")}
    held = {f.name: _without_stamp(f.read_text(encoding="utf-8")) for f in committed.glob("*.rst")}
    assert sorted(written) == sorted(held), "run `make docs` (talk-assets docs --out docs/dataflows)"
    stale = [name for name in written if written[name] != held[name]]
    assert not stale, f"stale: {stale}; run `make docs` (talk-assets docs --out docs/dataflows)"


def test_read_only_target_fields_are_not_listed_as_synchronized() -> None:
    """A target field the sync never writes (no `write`) is not in a flow's "synchronized" table."""
    from talk_assets.sync.docs import render_flow

    checked = 0
    for flow in DATAFLOWS:
        text = "\n".join(render_flow(flow))
        table = text.split(".. list-table::")[1].split("\n\n", 2)[1]
        listed = re.findall(r"^     - (\S+)$", table, flags=re.M)
        written = {tp.field for _sp, tp in flow.property_rows() if tp.write is not None}
        for _sp, tp in flow.property_rows():
            if tp.field not in written:
                checked += 1
                assert tp.field not in listed, (flow.key, tp.field)
                # listed apart: derived/computed ones in a sentence, those the API declares read-only
                # (`not_written`) in the table of properties that are not synchronized, with the reason
                derived = text.split("never written to it")[1] if "never written to it" in text else ""
                reasons = text.split("not synchronized to the system named")[1] if tp.not_written else ""
                assert f"``{tp.field}``" in derived or f"     - {tp.field}\n" in reasons, (flow.key, tp.field)
    assert checked, "some flow has a read-only target field (Shopify total_price, Squarespace createdOn)"
