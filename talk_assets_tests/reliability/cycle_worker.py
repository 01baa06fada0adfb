"""A sync process the reliability tests can kill: runs sync cycles through the one runner (Dagster's
`sync_job` in process, talk_assets/sync/runner.py), or holds the state file.

Run as `python -m talk_assets_tests.reliability.cycle_worker --cycles N` with the TALK_* variables of
the sandbox; prints one JSON line per finished cycle so the parent sees how far it got before a
SIGKILL. `--hold-lock S` opens the state file read-write and sleeps, to test the single-writer lock.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from typing import Any

from talk_assets.core.http import RetryPolicy


def fast_client(system: str, timeout: float = 2.0) -> Any:
    """A client with small timeouts and short backoff, for the tests' own calls (the cycles get the same
    through the `http` resource)."""
    cls = importlib.import_module(f"talk_assets.systems.{system}.client").Client
    return cls.from_env(timeout=(timeout, timeout), retry=RetryPolicy(backoff=0.02, max_backoff=0.2,
                                                                      default_retry_after=0.1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cycles", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--hold-lock", type=float, default=0.0)
    ap.add_argument("--release-on-stdin", action="store_true",
                    help="with --hold-lock: release as soon as a line arrives on stdin (at most after S s)")
    args = ap.parse_args(argv)
    if args.hold_lock:
        from talk_assets.sync.store import connect

        with connect() as con:
            con.execute("SELECT count(*) FROM links").fetchall()
            print(json.dumps({"locked": os.getpid()}), flush=True)
            if args.release_on_stdin:  # the parent says when it has seen enough of the waiting
                import select
                import sys

                select.select([sys.stdin], [], [], args.hold_lock)
            else:
                time.sleep(args.hold_lock)
        print(json.dumps({"released": os.getpid()}), flush=True)
        return 0
    import dagster as dg

    from talk_assets.sync.assets import HttpTuning
    from talk_assets.sync.push import PushSettings
    from talk_assets.sync.runner import run_cycle

    # the same job as every cycle, its clients tuned like `fast_client` through the `http` resource
    http = HttpTuning(timeout_s=args.timeout, backoff_s=0.02, max_backoff_s=0.2, default_retry_after_s=0.1)
    with dg.DagsterInstance.ephemeral() as instance:
        for i in range(args.cycles):
            report = run_cycle(settings=PushSettings(confirm_large=True), http=http, instance=instance)
            print(json.dumps({"cycle": i, "writes": report.writes, "errors": report.errors[:10],
                              "breaker": report.breaker, "run_id": report.run_id,
                              "held": {**report.held, **{k: p.held_reason for k, p in report.pushed.items()
                                                         if p.held_reason}}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
