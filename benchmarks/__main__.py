"""`python -m benchmarks [--quick|--full] [--only NAME ...]`: run the benchmarks, print, append JSON."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable

from benchmarks import collect, links, merge_map, push, sync_cycle
from benchmarks.common import LATEST, Recorder

BENCHMARKS: dict[str, Callable[[Recorder, str], None]] = {
    "merge_map": merge_map.run,
    "collect": collect.run,
    "push": push.run,
    "links": links.run,
    "incremental": sync_cycle.incremental,
    "latency": sync_cycle.latency,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", const="quick", dest="profile", help="small sizes (default)")
    g.add_argument("--full", action="store_const", const="full", dest="profile", help="up to 1M rows: scaling")
    ap.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark (repeatable)")
    ap.add_argument("--consistent", action="store_true",
                    help="incremental/latency: start from a consistent-seed sandbox (converged once per seed, "
                         "size and code, then restored from TALK_SANDBOX_CACHE) instead of converging each run")
    ap.add_argument("--incremental-size", type=int, metavar="N",
                    help="incremental: the sandbox size instead of the profile's (11,500 is ~100k linked records, "
                         "~115,000 ~1M)")
    ap.add_argument("--edits", metavar="N,N",
                    help="incremental: the edit cycles' sizes instead of the profile's (e.g. 1,100: a rerun without "
                         "the 10,000-edit cycle, ~12 minutes of the full run)")
    args = ap.parse_args(argv)
    if args.edits:
        os.environ["TALK_BENCH_EDITS"] = args.edits
    if args.incremental_size:
        os.environ["TALK_BENCH_INC_SIZE"] = str(args.incremental_size)
    if args.consistent:
        os.environ["TALK_BENCH_CONSISTENT"] = "1"
    profile = args.profile or "quick"
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")  # dlt's schema warnings
    logging.getLogger("dlt").setLevel(logging.ERROR)
    rec = Recorder()
    failed = []
    for name in args.only or list(BENCHMARKS):
        t0 = time.perf_counter()
        print(f"\n== {name} ({profile})", flush=True)
        try:
            BENCHMARKS[name](rec, profile)
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        print(f"   [{name}: {time.perf_counter() - t0:.0f}s]", flush=True)
    print(f"\n{len(rec.results)} results appended to {LATEST}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
