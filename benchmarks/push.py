"""push: customer updates into the Shopify sandbox through the real writer, under the leaky bucket.

The sandbox's bucket (40 requests, leaking 2/s) is sped up by `speed`, so the ceiling is
`2 * speed` requests/s; the client is told the same leak rate (its pacer reads the call-limit
header). Each update is a lookup (optimistic lock) plus a PUT, both counted by the bucket.
Baseline: drt-core's rest_api destination with its rate limiter set to the ceiling. drt 1.2.1
sends every record to one fixed `url` (it is not templated per row), so it cannot address
`customers/{id}.json`; it is measured on creates (`POST customers.json`) against the same bucket.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, Recorder, Result, Sandboxes, shopify_size_for, timer

PROFILES = {"quick": (2_000, 60.0, 500), "full": (10_000, 150.0, 2_000)}  # updates, speed, drt creates


class RateSampler:
    """Polls the sandbox's request counters (control API, not rate limited) into a time series."""

    def __init__(self, sb: Sandboxes, system: str, every: float = 0.5) -> None:
        self.sb, self.system, self.every = sb, system, every
        self.series: list[tuple[float, int, int]] = []  # (t, requests, 429s)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        st = self.sb.stats(self.system)
        self.series.append((time.perf_counter() - self.t0, st["reads"] + st["writes"], st["statuses"].get("429", 0)))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> RateSampler:
        self.t0 = time.perf_counter()
        self._sample()
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self._sample()


def _rows(client: Any, n: int) -> list[Any]:
    from talk_assets.sync.declaration import VIEWS_BY_KEY
    from talk_assets.sync.push import Row

    view = VIEWS_BY_KEY["shopify.customer"]
    rows = []
    for rec in client.iter_records("customer"):
        if len(rows) >= n:
            break
        new = f"Bench{rec['id'] % 100000}"
        rows.append(Row(view, f"customer:bench{rec['id']}", "update", f"shopify-customer:{rec['id']}", str(rec["id"]),
                        None, ["first_name"], {"first_name": new}, {}, {}, "", rec.get("updated_at")))
    return rows


def ours(sb: Sandboxes, n: int, speed: float) -> dict[str, Any]:
    from talk_assets.config import SHOPIFY
    from talk_assets.core.http import Pacer
    from talk_assets.sync.push import execute
    from talk_assets.sync.writers import writer_for
    from talk_assets.systems.shopify.client import Client

    url = sb.urls["shopify"]
    sb.faults({"rate_limit_enabled": False}, ["shopify"])
    setup = Client(url, SHOPIFY.value("access_token"), pacer=Pacer())
    rows = _rows(setup, n)
    setup.close()
    sb.faults({"rate_limit_enabled": True, "rate_limit_speed": speed}, ["shopify"])
    sb.reset_stats()
    client = Client(url, SHOPIFY.value("access_token"), pacer=Pacer(leak_per_s=2.0 * speed))
    with RateSampler(sb, "shopify") as sampler, timer() as t:
        outcomes = execute(writer_for("shopify", client), rows)
    client.close()
    st = sb.stats("shopify")
    total = st["reads"] + st["writes"]
    return {"seconds": t["s"], "requests": total, "r429": st["statuses"].get("429", 0),
            "updated": sum(o.status == "updated" for o in outcomes), "series": sampler.series,
            "other": {o.status for o in outcomes} - {"updated"}}


def drt(sb: Sandboxes, n: int, speed: float) -> dict[str, Any] | str:
    try:
        from drt.config.destinations_saas import RestApiDestinationConfig
        from drt.config.sync_options import SyncOptions
        from drt.destinations.rest_api import RestApiDestination
    except ImportError as exc:
        return f"drt-core not installed ({exc})"
    from talk_assets.config import SHOPIFY

    url = f"{sb.urls['shopify']}/admin/api/{SHOPIFY.value('api_version')}/customers.json"
    config = RestApiDestinationConfig(
        type="rest_api", url=url, method="POST",
        headers={"X-Shopify-Access-Token": SHOPIFY.value("access_token"), "Content-Type": "application/json"},
        body_template='{"customer": {"email": "{{ row.email }}", "first_name": "{{ row.first_name }}"}}',
        rate_limit={"requests_per_second": 2.0 * speed},
        retry={"max_attempts": 5, "initial_backoff": 0.05},
    )
    records = [{"email": f"drt-bench-{i}@example.com", "first_name": f"Drt{i}"} for i in range(n)]
    sb.faults({"rate_limit_enabled": True, "rate_limit_speed": speed}, ["shopify"])
    sb.reset_stats()
    with RateSampler(sb, "shopify") as sampler, timer() as t:
        res = RestApiDestination().load(records, config, SyncOptions(on_error="skip"))
    st = sb.stats("shopify")
    return {"seconds": t["s"], "requests": st["reads"] + st["writes"], "r429": st["statuses"].get("429", 0),
            "ok": res.success, "failed": res.failed, "series": sampler.series}


def chart(speed: float, series: dict[str, list[tuple[float, int, int]]], path: Path) -> Path | None:
    """Request rate over time (per sampling interval) against the bucket's ceiling."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib not installed: no chart)")
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, s in series.items():
        xs = [b[0] for b in s[1:]]
        ys = [(b[1] - a[1]) / max(b[0] - a[0], 1e-6) for a, b in zip(s, s[1:], strict=False)]
        ax.plot(xs, ys, label=label)
    ax.axhline(2.0 * speed, color="red", linestyle="--", label=f"ceiling {2.0 * speed:g} req/s (leak 2/s x {speed:g})")
    ax.set_xlabel("seconds")
    ax.set_ylabel("requests/s (0.5 s windows)")
    ax.set_title("Shopify sandbox: push request rate vs leaky-bucket ceiling")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(rec: Recorder, profile: str) -> None:
    n, speed, n_drt = PROFILES[profile]
    ceiling = 2.0 * speed
    print(f"push: {n:,} customer updates via the Shopify writer, bucket 40 leaking 2/s x {speed:g} "
          f"= ceiling {ceiling:g} req/s")
    with Sandboxes(["shopify"], shopify_size_for(n) + 100) as sb:
        r = ours(sb, n, speed)
        d = drt(sb, n_drt, speed)
    rate = r["requests"] / r["seconds"]
    share = r["r429"] / max(r["requests"], 1)
    note = (f"{r['updated']:,} updated in {r['seconds']:.1f}s, {r['requests']:,} requests, "
            f"{r['updated'] / r['seconds']:.1f} updates/s" + (f", other outcomes {r['other']}" if r["other"] else ""))
    if isinstance(d, str):
        rec.add(Result("push.rate_of_ceiling", rate / ceiling, "ratio", "ceiling", 1.0, n, ratio=rate / ceiling,
                       note=note + f"; drt: {d}"))
        rec.add(Result("push.share_429", share, "share", "target <0.01", 0.01, n))
        series = {"talk-assets writer": r["series"]}
    else:
        drate = d["requests"] / d["seconds"]
        dnote = (f"; drt (creates, fixed url): {d['ok']:,} ok {d['failed']:,} failed, {drate:.1f} req/s, "
                 f"429 share {d['r429'] / max(d['requests'], 1):.3f}")
        rec.add(Result("push.rate_of_ceiling", rate / ceiling, "ratio", "drt-core rest_api (creates)",
                       round(drate / ceiling, 3), n, note=note + dnote))
        rec.add(Result("push.share_429", share, "share", "drt-core rest_api (creates)",
                       round(d["r429"] / max(d["requests"], 1), 4), n,
                       ratio=None if not d["r429"] else round(share / (d["r429"] / d["requests"]), 3)))
        series = {"talk-assets writer (updates)": r["series"], "drt-core rest_api (creates)": d["series"]}
    path = chart(speed, series, RESULTS_DIR / "push_rate.png")
    if path:
        print(f"  chart: {path}")
