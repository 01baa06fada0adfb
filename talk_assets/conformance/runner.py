"""`talk-assets conformance` (the runner): whether the accounts the `TALK_<SYSTEM>_*` variables point at behave as
the sync relies on (auth, paging, change filters, error shapes, rate-limit headers, fields, read-only
fields, locks, writes), one suite per system (`base.Suite`, specialised in `suites.py`).

A system whose URL variable is not set is checked against a fresh sandbox started for the run, so
`make conformance` works from a fresh clone and is part of `make test`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from talk_assets.conformance.base import FAIL, PASS, SKIP, Result, Suite
from talk_assets.conformance.suites import SUITES
from talk_assets.settings import environment
from talk_assets.systems import systems

__all__ = ["FAIL", "PASS", "SKIP", "Report", "Result", "run_conformance"]


@dataclass
class Report:
    targets: dict[str, str]  # system -> "sandbox" or the URL's variable
    results: list[Result] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(r.status == FAIL for r in self.results)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "targets": self.targets, "results": [r.as_dict() for r in self.results]}

    def text(self) -> str:
        lines = []
        for key, target in self.targets.items():
            mine = [r for r in self.results if r.system == key]
            counts = {s: sum(1 for r in mine if r.status == s) for s in (PASS, FAIL, SKIP)}
            lines.append(f"{key} ({target}): {counts[PASS]} pass, {counts[FAIL]} fail, {counts[SKIP]} skip")
            for r in mine:
                lines.append(f"  {r.status:<4}  {r.check:<20} {r.why}")
        lines.append("conformance: " + ("every check holds or is skipped" if self.ok else "FAILED"))
        return "\n".join(lines)


def run_conformance(only: list[str] | None = None, allow_writes: bool = False) -> Report:
    """Run the suites of `only` (default: every registered system) against what the environment names,
    starting a sandbox (free ports, torn down afterwards) for systems whose URL variable is unset."""
    registry = systems()
    keys = only or list(registry)
    unknown = [k for k in keys if k not in registry]
    if unknown:
        raise ValueError(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(registry)}")
    sandboxed = [k for k in keys if not os.environ.get(registry[k].url_env)]
    servers = {}
    if sandboxed:
        from talk_assets.sandbox.runner import start_all

        servers = start_all(systems=sandboxed, ephemeral_ports=True, size=60)
    report = Report({k: ("sandbox" if k in sandboxed else f"${registry[k].url_env}") for k in keys})
    try:
        with environment({registry[k].url_env: srv.url for k, srv in servers.items()}):
            for k in keys:
                suite_cls = SUITES.get(k, Suite)
                suite = suite_cls(registry[k], allow_writes=allow_writes)
                report.results += suite.run()
                if suite._client is not None:
                    suite._client.close()
    finally:
        for srv in servers.values():
            srv.stop()
    return report
