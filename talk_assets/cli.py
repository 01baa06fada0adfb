"""The `talk-assets` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from talk_assets.config import DEFAULT_PORT_BASE, SANDBOX_HOST, SYSTEMS
from talk_assets.settings import settings

ROOT = Path(__file__).resolve().parent.parent


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def cmd_sandbox(args: argparse.Namespace) -> int:
    from talk_assets.sandbox.runner import banner, start_all

    started = time.monotonic()
    try:
        servers = start_all(args.host, args.port_base, args.seed, args.size,
                            consistent=bool(getattr(args, "consistent", False)))
    except OSError as exc:
        print(f"talk-assets sandbox: cannot listen: {exc} (is another sandbox running? try --port-base)", file=sys.stderr)
        return 2
    print(banner(servers, started), flush=True)
    _wait_for_interrupt()
    for s in servers.values():
        s.stop()
    print("talk-assets sandbox: stopped", flush=True)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Sandbox + `dagster dev` together, the way `make run` starts the product (see devserver.py)."""

    fresh = bool(getattr(args, "fresh_sandbox", False)) or settings().sandbox_fresh
    receiver = None
    if not args.no_webhooks and (not args.no_sandbox or settings().webhooks_on):
        from talk_assets.webhooks.service import start_receiver

        os.environ["TALK_DATA_DIR"] = str(Path(args.data_dir).resolve())  # the inbox lives beside the state
        urls = None if args.no_sandbox else {k: i.sandbox_url(args.host, args.port_base) for k, i in SYSTEMS.items()}
        try:
            receiver = start_receiver(sandbox_urls=urls)
        except OSError as exc:
            print(f"talk-assets run: webhook receiver not started ({exc}; TALK_WEBHOOK_PORT); polling only",
                  file=sys.stderr)
    try:
        return _run_dev(args, fresh)
    finally:
        if receiver is not None:
            receiver.stop()


def _run_dev(args: argparse.Namespace, fresh: bool) -> int:
    from talk_assets.devserver import run_dev

    return run_dev(data_dir=Path(args.data_dir), ui_host=args.ui_host, ui_port=args.ui_port,
                   sandbox=not args.no_sandbox, host=args.host, port_base=args.port_base, seed=args.seed,
                   size=args.size, fresh_sandbox=fresh)


def cmd_conformance(args: argparse.Namespace) -> int:
    """PASS/FAIL/SKIP per system and check; exit 1 when a check fails."""
    from talk_assets.conformance.runner import run_conformance

    report = run_conformance(args.system, allow_writes=args.allow_writes)
    print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) if args.json else report.text())
    return 0 if report.ok else 1


def cmd_webhooks(args: argparse.Namespace) -> int:
    """Serve the webhook receiver (and keep the subscriptions) until Ctrl-C: for deployments where
    the UI and the sensors run elsewhere but share the data directory (the inbox)."""
    from talk_assets.webhooks.service import start_receiver

    _use_data_dir(args)
    try:
        receiver = start_receiver(host=args.host, port=args.port)
    except OSError as exc:
        print(f"talk-assets webhooks: cannot listen: {exc} (TALK_WEBHOOK_HOST/TALK_WEBHOOK_PORT)", file=sys.stderr)
        return 2
    _wait_for_interrupt()
    receiver.stop()
    print(f"talk-assets webhooks: stopped ({dict(receiver.counts) or 'nothing received'})", flush=True)
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from talk_assets.sync.docs import write_docs

    for path in write_docs(Path(args.out)):
        print(path)
    return 0


def cmd_links(args: argparse.Namespace) -> int:
    """Print the link table as it was at a version (number or data version) or a time."""
    from talk_assets.sync.links import links_at, resolve_version
    from talk_assets.sync.store import connect, db_path

    if args.data_dir:
        os.environ["TALK_DATA_DIR"] = args.data_dir
    if not db_path().exists():
        print(f"talk-assets links: no state at {db_path()} yet: run a sync first", file=sys.stderr)
        return 1
    with connect() as con:
        if args.versions:
            df = con.execute("SELECT version, data_version, created_at, row_count, added, removed FROM link_versions "
                             "ORDER BY version").df()
        else:
            version = resolve_version(con, args.at)
            if version is None:
                print(f"talk-assets links: no link table version matches {args.at!r}", file=sys.stderr)
                return 1
            df = links_at(con, version)
            if args.system:
                df = df[df["system"] == args.system]
            print(f"# link table version {version}: {len(df)} rows", flush=True)
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
    else:
        print(df.to_string(index=False, max_rows=args.limit))
    return 0


def _use_data_dir(args: argparse.Namespace) -> None:
    if getattr(args, "data_dir", None):
        os.environ["TALK_DATA_DIR"] = args.data_dir


def _print_table(rows: list[dict], empty: str = "(nothing)") -> None:
    if not rows:
        print(empty)
        return
    cols = list(rows[0])
    widths = {c: max(len(str(c)), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(str(c).ljust(widths[c]) for c in cols))
    print("  ".join("-" * widths[c] for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def _print_dead_letters(letters: list[dict], indent: str = "") -> None:
    """Open dead letters: a table (system, record, key, where the values came from), then per letter its
    reason on one line and what to do."""
    if not letters:
        print(f"{indent}no dead letters")
        return
    rows = [{"id": d["id"], "target": d["view"], "action": d["action"], "record": d["record"], "key": d["key"],
             "from": d["from"], "attempts": d["attempts"]} for d in letters]
    for line in _table_lines(rows):
        print(indent + line)
    for d in letters:
        print(f"{indent}#{d['id']} {d['reason']}")
        print(f"{indent}    what to do: {d['what_to_do']}")


def _table_lines(rows: list[dict]) -> list[str]:
    cols = list(rows[0])
    widths = {c: max(len(str(c)), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    return (["  ".join(str(c).ljust(widths[c]) for c in cols).rstrip(),
             "  ".join("-" * widths[c] for c in cols)]
            + ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols).rstrip() for r in rows])


def _cycle_dead_letters() -> list[dict]:
    """The open dead letters after a cycle (what `sync --once` lists under its table)."""
    from talk_assets.sync.explain import dead_letter_rows
    from talk_assets.sync.store import connect, db_path

    if not db_path().exists():
        return []
    with connect() as con:
        return dead_letter_rows(con)


def cmd_explain(args: argparse.Namespace) -> int:
    """One entity across all systems: links, each property's winner and why, pending writes, dead letters,
    history across link versions."""
    from talk_assets.sync.explain import explain, find_entities, render, to_json
    from talk_assets.sync.store import connect, db_path

    _use_data_dir(args)
    if not db_path().exists():
        print(f"talk-assets explain: no state at {db_path()} yet: run a sync first", file=sys.stderr)
        return 1
    with connect() as con:
        found = find_entities(con, args.key)
        docs = [explain(con, t, g) for t, g in found]
    if not docs:
        print(f"talk-assets explain: nothing matches {args.key!r} (try an e-mail, a SKU, system:record-id such as "
              "shopify:1042, or a global id)", file=sys.stderr)
        return 1
    if args.json:
        print(to_json(docs))
        return 0
    if len(docs) > 1:
        print(f"{len(docs)} entities match {args.key!r}: " + ", ".join(f"{d['global_type']} {d['gid']}" for d in docs)
              + " (system:entity:record-id names one)\n")
    print("\n\n".join(render(d) for d in docs))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Run Dagster's `sync_job` in this process (the job the UI and the sensors run), recorded in the
    UI's instance ($DAGSTER_HOME, else <data dir>/dagster_home), and print what it did."""
    from talk_assets.sync.push import PushSettings
    from talk_assets.sync.runner import dagster_home, run_cycle

    _use_data_dir(args)
    settings = PushSettings(confirm_large=args.confirm, dry_run=args.dry_run)
    cycles = 0
    while True:
        cycles += 1
        report = run_cycle(full=args.full, settings=settings, scratch_state=args.dry_run,
                           log_level="CRITICAL" if args.quiet else "INFO",  # --quiet: only our own lines
                           tags={"talk/command": "dlq replay" if getattr(args, "replay", False) else "sync"})
        plan = report.plan
        if plan is not None and plan.quiet:
            print(f"nothing changed in {len(plan.probes)} entities (probed) and nothing is pending: no run")
        elif plan is not None and not args.quiet:
            print(plan.summary(), file=sys.stderr)
        rows = report.rows()
        for r in rows:  # what waited (a dead letter's unchanged payload, an unconfirmed create, a missing reference)
            p = report.pushed.get(r["system entity"].removesuffix(" (push)")) if r["system entity"].endswith(
                " (push)") else None
            r["skipped"] = (p.skipped + p.pending_refs) if p is not None else "-"
        if rows or plan is None or not plan.quiet:
            _print_table(rows)
        letters = [] if args.dry_run else _cycle_dead_letters()
        if letters:
            print(f"\ndead letters ({len(letters)} open; `talk-assets dlq list` for what to do):")
            for d in letters:
                print(f"  #{d['id']} {d['view']} {d['record']} {d['key']}: {d['reason']}")
        for line in report.rejected:
            print(f"rejected: {line}", file=sys.stderr)
        for b in report.breaker:
            print(f"stopped by the circuit breaker: {b}", file=sys.stderr)
        for c in report.failed_checks:
            print(f"blocking check failed: {c}", file=sys.stderr)
        for view, why in report.held.items():
            print(f"held: {view} push did not run: {why}", file=sys.stderr)
        for view, p in report.pushed.items():
            if p.held_reason:
                print(f"held: {view}: {p.held} write(s) not made: {p.held_reason}" if p.held else
                      f"waiting: {view}: {p.held_reason}", file=sys.stderr)
            if p.not_confirmed:
                print(f"not confirmed: {view}: {p.not_confirmed} create(s) sent without an answer; the next "
                      "cycle verifies them", file=sys.stderr)
        if args.dry_run:
            calls = [c for p in report.pushed.values() for c in p.calls]
            print(f"\n{len(calls)} write call(s) would be made (the state file was not changed):")
            for c in calls:
                print(f"  {c}")
        for e in report.errors:
            print(f"error: {e}", file=sys.stderr)
        if not args.quiet and report.run_ids:
            print(f"dagster run {', '.join(report.run_ids)} (instance {dagster_home()})", file=sys.stderr)
        if args.once or args.dry_run:
            break
        time.sleep(args.interval)
    not_written = any(p.not_written for p in report.pushed.values())
    return 3 if report.breaker else 1 if report.errors or report.held or not_written else 0


def cmd_dlq(args: argparse.Namespace) -> int:
    """Inspect and replay records a target rejected."""
    from talk_assets.sync.store import connect, db_path

    _use_data_dir(args)
    if not db_path().exists():
        print(f"talk-assets dlq: no state at {db_path()} yet", file=sys.stderr)
        return 1
    with connect() as con:
        if args.dlq_command == "list":
            from talk_assets.sync.explain import dead_letter_rows, to_json

            letters = dead_letter_rows(con)
            if args.json:
                print(to_json(letters))
                return 0
            _print_dead_letters(letters)
            return 0
        ids = [int(i) for i in args.ids]
        where = "resolved_at IS NULL" + (f" AND id IN ({', '.join(str(i) for i in ids)})" if ids else "")
        chosen = [r[0] for r in con.execute(f"SELECT id FROM dead_letters WHERE {where} ORDER BY id").fetchall()]
        if chosen:
            con.execute(f"UPDATE dead_letters SET replay = true WHERE id IN ({', '.join(map(str, chosen))})")
    if not chosen:
        print("no open dead letters" + (f" among {', '.join(args.ids)}" if ids else "") + ": nothing to replay")
        return 0
    print(f"replaying {len(chosen)} dead letter(s) in one sync cycle")
    started = datetime.now(UTC)
    ns = argparse.Namespace(data_dir=None, confirm=False, dry_run=False, full=False, once=True, quiet=True,
                            interval=0, replay=True)
    code = cmd_sync(ns)
    return _replay_report(chosen, started) or code


def _replay_report(ids: list[int], started: datetime) -> int:
    """What the replay did to each dead letter: written (a call succeeded), already present (the
    record was found in the target as intended, no call needed) or still failing, and why."""
    from talk_assets.sync.store import connect

    with connect() as con:
        rows = con.execute(
            f"SELECT id, view, coalesce(record_id, gid), resolved_at IS NOT NULL, resolution, status, error, "
            f"last_failed_at >= ? "
            f"FROM dead_letters WHERE id IN ({', '.join(map(str, ids))}) ORDER BY id", [started]).fetchall()
    counts = {"written": 0, "present": 0, "failing": 0}
    for did, view, record, resolved, resolution, status, error, tried in rows:
        if resolved and resolution == "present":
            counts["present"] += 1
            print(f"  {did} {view} {record}: already present in the target as intended, no call needed")
        elif resolved:
            counts["written"] += 1
            print(f"  {did} {view} {record}: written")
        else:
            counts["failing"] += 1
            why = "failed again" if tried else "not sent this cycle (its system held, a reference missing or not pending)"
            print(f"  {did} {view} {record}: still failing, {why}: "
                  f"{status if status is not None else 'no status'} {(error or '')[:200]}")
    print(f"replayed {len(rows)}: {counts['written']} written, {counts['present']} already present, "
          f"{counts['failing']} still failing (see `talk-assets dlq list`)")
    return 1 if counts["failing"] else 0


_RELINK = ("The next cycle (`talk-assets sync --once`, or the sensors' next run) re-links every record from the "
           "systems (customers and products by their keys, orders by the origin reference in each copy) before it "
           "creates anything, so nothing is created twice.")


def _state_report(con: object) -> list[str]:
    """What the state holds, read through every table the sync keeps (a damaged block fails the read)."""
    q = con.execute  # type: ignore[attr-defined]
    links = dict(q("SELECT global_type, count(*) FROM links GROUP BY ALL").fetchall())
    version = q("SELECT version, data_version, strftime(created_at, '%Y-%m-%d %H:%M:%S') FROM link_versions "
                "ORDER BY version DESC LIMIT 1").fetchall()
    records, versions, size = q("SELECT (SELECT count(*) FROM raw_current), count(*), "
                                "coalesce(sum(strlen(payload::VARCHAR)), 0) FROM raw_versions").fetchall()[0]
    dead = q("SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL").fetchall()[0][0]
    pending = q("SELECT count(*) FROM push_intents WHERE status <> 'done'").fetchall()[0][0]
    out = ["links: " + ", ".join(f"{t} {links.get(t, 0)}" for t in ("customer", "product", "order", "user"))
           + (f" (link version {version[0][0]}, data version {version[0][1]}, {version[0][2]} UTC)" if version
              else " (no link version yet)")]
    out.append(f"records: {records} current, {versions} versions ({size} bytes of payload); "
               f"dead letters: {dead} unresolved; creates awaiting confirmation: {pending}")
    return out


def cmd_state(args: argparse.Namespace) -> int:
    """`state check`: is the state file readable, what it holds (exit 0 readable, 1 missing, 2 unreadable).
    `state rebuild`: move an unreadable file aside; the next cycle re-links from the systems."""
    import duckdb

    from talk_assets.sync.store import StateFileError, connect, db_path

    _use_data_dir(args)
    path = db_path()
    if not path.exists():
        print(f"no sync state at {path}: a first run, or a lost file. {_RELINK}")
        return 1
    try:
        with connect(path, read_only=True) as con:
            report = _state_report(con)
        problem = None
    except StateFileError as exc:
        problem = str(exc)
    except duckdb.Error as exc:  # readable header, damaged or foreign content
        problem = str(StateFileError(path, exc))
    if args.state_command == "check":
        if problem:
            print(problem)
            return 2
        print(f"sync state {path}: readable")
        for line in report:
            print(f"  {line}")
        return 0
    if problem is None and not args.force:
        print(f"sync state {path} is readable: nothing to rebuild (--force moves it aside anyway)")
        return 1
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for f in sorted(path.parent.glob(path.name + "*")):
        if f.name in (path.name, path.name + ".wal"):
            dest = f.with_name(f.name.replace(path.name, f"{path.name}.broken-{stamp}", 1))
            f.rename(dest)
            moved.append(dest)
    for dest in moved:
        print(f"moved aside: {dest}")
    print(_RELINK)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="talk-assets",
        description="Two-way data sync between business systems as a Dagster asset graph.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = p.add_subparsers(dest="command", required=True)

    def sandbox_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--host", default=SANDBOX_HOST, help="interface to listen on (default %(default)s)")
        sp.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE,
                        help="Shopify's port; PowerOffice GO, Squarespace, Custom CRM and Custom Webshop "
                             "follow (default %(default)s)")
        sp.add_argument("--seed", type=int, default=1, help="seed of the generated data (default %(default)s)")
        sp.add_argument("--size", type=int, default=200, help="records per entity (default %(default)s)")

    sp = sub.add_parser("sandbox", help="serve local fakes of all five systems' APIs until Ctrl-C")
    sandbox_opts(sp)
    sp.add_argument("--consistent", action="store_true",
                    help="start with the records the sync itself makes of this seed and size (already linked: "
                         "a first cycle writes nothing); made once by real sync cycles, then kept in "
                         "TALK_SANDBOX_CACHE (default ~/.cache/talk-assets/sandbox)")
    sp.set_defaults(func=cmd_sandbox)

    sp = sub.add_parser("run", help="start the sandbox and the Dagster UI with the sync running (make run)")
    sandbox_opts(sp)
    sp.add_argument("--no-sandbox", action="store_true", help="talk to the systems the TALK_* variables name")
    sp.add_argument("--fresh-sandbox", action="store_true",
                    help="seed the sandbox anew instead of restoring its records from data/sandbox/")
    sp.add_argument("--data-dir", default=os.environ.get("TALK_DATA_DIR", str(ROOT / "data")),
                    help="state location (default data/)")
    sp.add_argument("--ui-host", default="127.0.0.1")
    sp.add_argument("--ui-port", type=int, default=3000)
    sp.add_argument("--no-webhooks", action="store_true", help="poll only: no webhook receiver")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("webhooks", help="serve the webhook receiver and keep the subscriptions until Ctrl-C "
                                         "(TALK_WEBHOOK_PUBLIC_URL is the URL the systems call)")
    sp.add_argument("--host", default=None, help="interface (default $TALK_WEBHOOK_HOST or 127.0.0.1)")
    sp.add_argument("--port", type=int, default=None, help="port (default $TALK_WEBHOOK_PORT or 8710)")
    sp.add_argument("--data-dir", help="where the inbox (webhooks.sqlite) is kept: the state's data dir")
    sp.set_defaults(func=cmd_webhooks)

    sp = sub.add_parser("sync", help="run the sync job without the UI (recorded in the UI's Runs): one cycle with "
                                     "--once, else every --interval s")
    sp.add_argument("--once", action="store_true", help="one complete cycle, then a summary table per system entity")
    sp.add_argument("--dry-run", action="store_true", help="run the job with writes off against a copy of the state, print the write "
                         "calls; changes nothing")
    sp.add_argument("--full", action="store_true", help="full sync: re-read every record, not only changes")
    sp.add_argument("--confirm", action="store_true", help="let through a cycle the circuit breaker stopped")
    sp.add_argument("--interval", type=float, default=300, help="seconds between cycles without --once")
    sp.add_argument("--quiet", action="store_true", help="no progress lines")
    sp.add_argument("--data-dir", help="state location (default $TALK_DATA_DIR or data/)")
    sp.set_defaults(func=cmd_sync)

    sp = sub.add_parser("dlq", help="the dead-letter table: records a target rejected")
    dsub = sp.add_subparsers(dest="dlq_command", required=True)
    d = dsub.add_parser("list", help="list unresolved dead letters: system, record, e-mail or SKU, reason, what to do")
    d.add_argument("--json", action="store_true", help="JSON for scripts")
    d.add_argument("--data-dir")
    d = dsub.add_parser("replay", help="retry dead letters (all, or the given ids) in one sync cycle")
    d.add_argument("ids", nargs="*", help="dead letter ids (default: all)")
    d.add_argument("--data-dir")
    sp.set_defaults(func=cmd_dlq)

    sp = sub.add_parser("explain", help="one entity across all systems: links, why each value won, pending "
                                        "writes, dead letters, link history")
    sp.add_argument("key", help="an e-mail, a SKU, system:record-id (shopify:1042; every entity with that record id), "
                                "system:entity:record-id (customcrm:orders:12) or a global id")
    sp.add_argument("--json", action="store_true", help="JSON for scripts")
    sp.add_argument("--data-dir", help="state location (default $TALK_DATA_DIR or data/)")
    sp.set_defaults(func=cmd_explain)

    sp = sub.add_parser("docs", help="write the dataflow documents (.rst, one per seed) from the declaration")
    sp.add_argument("--out", default="docs/dataflows", help="output folder (default %(default)s)")
    sp.set_defaults(func=cmd_docs)

    sp = sub.add_parser("conformance", help="check that the accounts the TALK_<SYSTEM>_* variables name behave as the "
                                            "sync relies on (a fresh sandbox for systems whose URL is unset)")
    sp.add_argument("--system", action="append", choices=sorted(SYSTEMS), help="only this system (repeatable)")
    sp.add_argument("--allow-writes", action="store_true",
                    help="also create, edit and delete one record tagged talk-conformance-<random> per system")
    sp.add_argument("--json", action="store_true", help="the report as JSON")
    sp.set_defaults(func=cmd_conformance)

    sp = sub.add_parser("links", help="show the link table, now or at an earlier version or time")
    sp.add_argument("--at", help="a version number, a data version (or its prefix) or an ISO time; default: latest")
    sp.add_argument("--versions", action="store_true", help="list the versions instead")
    sp.add_argument("--system", choices=sorted(SYSTEMS), help="only this system's records")
    sp.add_argument("--format", choices=["table", "csv"], default="table")
    sp.add_argument("--limit", type=int, default=60, help="rows to print in table format (default %(default)s)")
    sp.add_argument("--data-dir", help="state location (default $TALK_DATA_DIR or data/)")
    sp.set_defaults(func=cmd_links)

    sp = sub.add_parser("state", help="the sync state file: check it, or rebuild it from the systems")
    ssub = sp.add_subparsers(dest="state_command", required=True)
    s = ssub.add_parser("check", help="whether the state is readable, its link counts and versions "
                                      "(exit 0 readable, 1 missing, 2 unreadable)")
    s.add_argument("--data-dir", help="state location (default $TALK_DATA_DIR or data/)")
    s = ssub.add_parser("rebuild", help="move an unreadable state file aside; the next cycle re-links every "
                                        "record from the systems before it creates anything")
    s.add_argument("--force", action="store_true", help="move the file aside even if it is readable")
    s.add_argument("--data-dir", help="state location (default $TALK_DATA_DIR or data/)")
    sp.set_defaults(func=cmd_state)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from talk_assets.sync.store import StateFileError

    try:
        return int(args.func(args) or 0)
    except StateFileError as exc:  # what happened and how to recover, not a traceback
        print(f"talk-assets: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
