"""A lost or broken state file: orders carry their origin in each target, so the sync rebuilds its links
from the systems themselves and creates nothing twice; a corrupt file says what happened and how to
recover (`talk-assets state check|rebuild`), never a traceback.

Reproduces issue 17 ("Losing the state file duplicates every order"): with `data/talk.duckdb` moved
aside, the next cycle created 106 duplicate Shopify orders and 13 Squarespace ones.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets_tests.conftest import Worlds
from talk_assets_tests.reliability.support import REPO, Harness

SEED = 1717
V = VIEWS_BY_KEY
# the field each order target documents for a reference to the order's origin
ORIGIN_FIELDS = {
    "shopify.order": ("shopify", "order", "source_identifier"),
    "squarespace.order": ("squarespace", "orders", "externalOrderReference"),
    "customcrm.order": ("customcrm", "orders", "external_reference"),
}


def _lose_state(rel: Harness) -> Path:
    """Move the state file aside, as a user would after the corrupt-file error."""
    aside = rel.data / f"lost-{uuid.uuid4().hex[:6]}"
    aside.mkdir()
    for f in rel.data.glob("talk.duckdb*"):
        shutil.move(str(f), aside / f.name)
    assert not (rel.data / "talk.duckdb").exists()
    return aside


def _fresh(rel: Harness, worlds: Worlds) -> None:
    """A fresh world and a fresh state, synced until quiet (a state left from another world's records
    would link records that no longer exist); synced once per test process, a copy of it after that."""
    rel.reset()
    for f in rel.data.glob("talk.duckdb*"):
        f.unlink()
    worlds.converge(rel)


def _order_links(rel: Harness) -> set[tuple[str, str, str]]:
    return set(rel.sql("SELECT view, record_id, gid FROM links WHERE global_type = 'order'"))


def _refs(rel: Harness, view_key: str) -> Counter[str]:
    """How many orders of a target carry each `talk:` origin reference, read over HTTP."""
    system, entity, fld = ORIGIN_FIELDS[view_key]
    out: Counter[str] = Counter()
    for rec in rel.client(system).iter_records(entity):
        ref = rec.get(fld)
        if isinstance(ref, str) and ref.startswith("talk:"):
            out[ref] += 1
    return out


def _order_posts(rel: Harness) -> dict[str, int]:
    """POSTs to order endpoints per system since the last stats reset."""
    out = {}
    for s, st in rel.stats().items():
        out[s] = sum(n for k, n in st["requests"].items()
                     if k.startswith("POST") and ("rder" in k) and "OAuth" not in k)
    return out


def test_orders_the_sync_creates_carry_the_reference_of_their_first_origin(rel: Harness) -> None:
    rel.reset()
    for f in rel.data.glob("talk.duckdb*"):
        f.unlink()
    ws, crm = rel.client("customwebshop"), rel.client("customcrm")
    c = ws.create_record("customers", {"email": f"opphav.{uuid.uuid4().hex[:6]}@example.no", "first_name": "Åse",
                                       "last_name": "Opphav", "billing_address": {"city": "Oslo", "country_code": "NO"}})
    p = ws.create_record("products", {"sku": f"OR-{uuid.uuid4().hex[:6]}", "title": "Opphavsvare", "price": 12500,
                                      "stock": 5})
    o = ws.create_record("orders", {"customer_id": c["id"], "email": c["email"],
                                    "items": [{"sku": p["sku"], "quantity": 2, "unit_price": p["price"]}]})
    rel.until_quiet()
    origin = f"talk:customwebshop-orders:{o['id']}"
    # the chain webshop -> CRM -> Shopify: every copy names the first origin, not the record it was copied from
    crm_copies = [r for r in crm.iter_records("orders") if r.get("external_reference") == origin]
    assert len(crm_copies) == 1, crm_copies
    assert crm_copies[0].get("reference") in (None, ""), "the PO number field is not the origin's"
    for view_key in ORIGIN_FIELDS:
        assert _refs(rel, view_key)[origin] == 1, (view_key, origin)
    # every order the sync created in a target names an origin it links to
    created = rel.sql("SELECT view, record_id, gid FROM links WHERE global_type = 'order' AND origin = 'created'")
    assert created, "the sync created no orders"
    members = {}
    for nsid, gid in rel.sql("SELECT nsid, gid FROM links WHERE global_type = 'order'"):
        members.setdefault(gid, set()).add(nsid)
    for view, record_id, gid in created:
        system, entity, fld = ORIGIN_FIELDS[view]
        rec = rel.client(system).get_record(entity, record_id)
        assert rec is not None
        ref = rec.get(fld)
        assert isinstance(ref, str) and ref.startswith("talk:"), (view, record_id, ref)
        assert ref.removeprefix("talk:") in members[gid], (view, record_id, ref, members[gid])


def test_a_lost_state_file_is_rebuilt_from_the_systems_and_nothing_is_created_twice(rel: Harness, worlds: Worlds) -> None:
    _fresh(rel, worlds)
    before = _order_links(rel)
    before_all = set(rel.sql("SELECT view, record_id FROM links"))
    refs = {k: _refs(rel, k) for k in ORIGIN_FIELDS}
    assert sum(sum(c.values()) for c in refs.values()) >= 10, refs
    _lose_state(rel)
    rel.reset_stats()
    report = rel.cycle()
    assert not report.errors, report.errors
    created = {k: p.created for k, p in report.pushed.items() if p.created}
    assert created == {}, f"created after a lost state file: {created}"
    assert _order_posts(rel) == dict.fromkeys(rel.stats(), 0)
    after = _order_links(rel)
    assert {(v, r) for v, r, _g in after} == {(v, r) for v, r, _g in before}, "order links not rebuilt"
    assert set(rel.sql("SELECT view, record_id FROM links")) == before_all, "links not rebuilt"
    # the records of one order are one entity again
    gids = {}
    for v, r, g in before:
        gids.setdefault(g, set()).add((v, r))
    regrouped = {}
    for v, r, g in after:
        regrouped.setdefault(g, set()).add((v, r))
    assert sorted(map(sorted, gids.values())) == sorted(map(sorted, regrouped.values()))
    assert {k: _refs(rel, k) for k in ORIGIN_FIELDS} == refs
    n, detail = rel.try_quiet(1)
    assert n == 1, "the cycle after the rebuild still writes:\n" + "\n".join(detail)


def test_lost_state_files_between_random_creates_never_duplicate_an_order(rel: Harness, worlds: Worlds) -> None:
    """Seeded: new orders in every order source, the state file lost twice on the way (once right after
    the creates were written, once before they were collected back); bounded in time."""
    rng = random.Random(SEED)
    started = time.monotonic()
    _fresh(rel, worlds)
    ws, crm, po = rel.client("customwebshop"), rel.client("customcrm"), rel.client("poweroffice")
    customers = [r for r in crm.iter_records("customers") if r.get("email")][:5]
    products = [r for r in crm.iter_records("products") if r.get("sku")][:5]
    ws_customers = list(ws.iter_records("customers"))[:5]
    ws_products = [r for r in ws.iter_records("products") if r.get("sku")][:5]
    po_customers = [r for r in po.iter_records("customers") if r.get("IsPerson") and r.get("EmailAddress")][:3]
    po_products = [r for r in po.iter_records("products") if r.get("Code")][:3]
    for rnd in range(2):
        for _ in range(3):
            cp = rng.choice(products)
            crm.create_record("orders", {"customer_id": rng.choice(customers)["id"], "lines": [
                {"sku": cp["sku"], "quantity": rng.randint(1, 4), "unit_price": cp["unit_price"]}]})
            wp = rng.choice(ws_products)
            wc = rng.choice(ws_customers)
            ws.create_record("orders", {"customer_id": wc["id"], "email": wc["email"], "items": [
                {"sku": wp["sku"], "quantity": rng.randint(1, 4), "unit_price": wp["price"]}]})
        pp = rng.choice(po_products)
        po.create_record("salesorders", {"CustomerId": rng.choice(po_customers)["Id"], "Lines": [
            {"ProductCode": pp["Code"], "Quantity": rng.randint(1, 3), "ProductUnitPrice": pp["UnitPrice"]}]})
        report = rel.cycle()
        assert not report.errors, report.errors
        _lose_state(rel)  # round 0: the creates were written, the links with them are lost
        if rnd == 1:
            report = rel.cycle()  # round 1: a second cycle, then lost again before anything settled
            assert not report.errors, report.errors
            _lose_state(rel)
    rel.until_quiet()
    for view_key in ORIGIN_FIELDS:
        dups = {ref: n for ref, n in _refs(rel, view_key).items() if n > 1}
        assert dups == {}, f"{view_key}: orders copied twice: {dups}"
    took = time.monotonic() - started
    assert took < 240, f"took {took:.0f}s"
    print(f"\nlost state twice during random creates: no duplicate order, {took:.0f}s")


# -- a corrupt state file: the CLI -------------------------------------------------------------------
def _cli(rel: Harness, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "talk_assets.cli", *args], env=rel.env(), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _one_paragraph(text: str) -> bool:
    return "\n\n" not in text.strip() and "Traceback" not in text


def test_state_check_reports_a_readable_state_with_its_counts(rel: Harness, worlds: Worlds) -> None:
    _fresh(rel, worlds)
    res = _cli(rel, "state", "check")
    assert res.returncode == 0, res.stderr
    path = str(rel.data / "talk.duckdb")
    assert path in res.stdout and "readable" in res.stdout
    links = rel.sql("SELECT count(*) FROM links WHERE global_type = 'order'")[0][0]
    version = rel.sql("SELECT max(version) FROM link_versions")[0][0]
    assert f"order {links}" in res.stdout and f"link version {version}" in res.stdout, res.stdout


def _corrupt(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"\x00\xffnot a duckdb file\n" * 500)
    else:  # truncated in the middle
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])


def test_a_corrupt_state_file_says_what_happened_and_how_to_recover(rel: Harness, worlds: Worlds) -> None:
    _fresh(rel, worlds)
    path = rel.data / "talk.duckdb"
    for how in ("garbage", "truncated"):
        if not path.exists():
            rel.until_quiet()
        for wal in rel.data.glob("talk.duckdb.wal"):
            wal.unlink()
        _corrupt(path, how)
        res = _cli(rel, "sync", "--once", "--quiet")
        assert res.returncode == 2, (how, res.returncode, res.stderr[-3000:])
        err = res.stderr.strip()
        assert str(path) in err and "talk-assets state check" in err and "talk-assets state rebuild" in err, err
        assert _one_paragraph(err), err
        check = _cli(rel, "state", "check")
        assert check.returncode == 2 and str(path) in check.stdout + check.stderr, check
        assert "Traceback" not in check.stderr
        rebuilt = _cli(rel, "state", "rebuild")
        assert rebuilt.returncode == 0, rebuilt.stderr
        moved = sorted(rel.data.glob("talk.duckdb.broken-*"))
        assert moved and str(moved[-1]) in rebuilt.stdout, (moved, rebuilt.stdout)
        assert not path.exists() or _cli(rel, "state", "check").returncode == 0
        # the next cycle re-links from the systems and creates nothing
        rel.reset_stats()
        report = rel.cycle()
        assert not report.errors, report.errors
        assert {k: p.created for k, p in report.pushed.items() if p.created} == {}
        assert _cli(rel, "state", "check").returncode == 0
        for f in moved:
            f.unlink()


def test_a_missing_state_file_is_reported_and_the_check_says_the_next_cycle_relinks(rel: Harness) -> None:
    aside = _lose_state(rel) if (rel.data / "talk.duckdb").exists() else None
    res = _cli(rel, "state", "check")
    assert res.returncode == 1
    assert str(rel.data / "talk.duckdb") in res.stdout and "re-link" in res.stdout, res.stdout
    assert not (rel.data / "talk.duckdb").exists(), "a check must not create the state file"
    if aside:
        for f in aside.iterdir():
            shutil.move(str(f), rel.data / f.name)
