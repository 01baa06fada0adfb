"""The `talk-assets` command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from talk_assets.config import DEFAULT_PORT_BASE, SANDBOX_HOST, SYSTEMS

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
        servers = start_all(args.host, args.port_base, args.seed, args.size)
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
    """Sandbox + `dagster dev` together, the way `make run` starts the product."""
    from talk_assets.sandbox.runner import banner, start_all

    data_dir = Path(args.data_dir).resolve()
    home = data_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["DAGSTER_HOME"] = str(home)
    env.setdefault("TALK_DATA_DIR", str(data_dir))
    servers = {}
    if not args.no_sandbox:
        started = time.monotonic()
        try:
            servers = start_all(args.host, args.port_base, args.seed, args.size)
        except OSError as exc:
            print(f"talk-assets run: cannot start the sandbox: {exc}", file=sys.stderr)
            return 2
        for key, srv in servers.items():
            env.setdefault(SYSTEMS[key].url_env, srv.url)
        print(banner(servers, started), flush=True)
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(ROOT / "workspace.yaml"), "-h", args.ui_host, "-p", str(args.ui_port)]
    print(f"talk-assets run: Dagster UI on http://{args.ui_host}:{args.ui_port} (state in {data_dir})", flush=True)
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    finally:
        for s in servers.values():
            s.stop()
    print("talk-assets run: stopped", flush=True)
    return code


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
    sp.set_defaults(func=cmd_sandbox)

    sp = sub.add_parser("run", help="start the sandbox and the Dagster UI with the sync running (make run)")
    sandbox_opts(sp)
    sp.add_argument("--no-sandbox", action="store_true", help="talk to the systems the TALK_* variables name")
    sp.add_argument("--data-dir", default=os.environ.get("TALK_DATA_DIR", str(ROOT / "data")),
                    help="state location (default data/)")
    sp.add_argument("--ui-host", default="127.0.0.1")
    sp.add_argument("--ui-port", type=int, default=3000)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("docs", help="write the dataflow documents (.rst, one per seed) from the declaration")
    sp.add_argument("--out", default="docs/dataflows", help="output folder (default %(default)s)")
    sp.set_defaults(func=cmd_docs)

    sp = sub.add_parser("links", help="show the link table, now or at an earlier version or time")
    sp.add_argument("--at", help="a version number, a data version (or its prefix) or an ISO time; default: latest")
    sp.add_argument("--versions", action="store_true", help="list the versions instead")
    sp.add_argument("--system", choices=sorted(SYSTEMS), help="only this system's records")
    sp.add_argument("--format", choices=["table", "csv"], default="table")
    sp.add_argument("--limit", type=int, default=60, help="rows to print in table format (default %(default)s)")
    sp.add_argument("--data-dir", help="state location (default $TALK_DATA_DIR or data/)")
    sp.set_defaults(func=cmd_links)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
