"""push: customer updates into the Shopify sandbox through the real writer, at the cost-based ceiling.

The client writes through the GraphQL Admin API: an update is a read of the customer (the writer's
optimistic lock compares its `updated_at`) and a `customerUpdate` mutation, both paced by the client's
`CostPacer` against the sandbox's cost bucket (Shopify's standard plan: 2,000 points restoring 100 per
second, talk_assets/systems/shopify/graphql_cost.py). The bucket is sped up by `speed`, like every
sandbox limit (`rate_limit_speed`); the sandbox reports the sped-up `restoreRate` in every answer's
`throttleStatus`, which is all the client knows of the bucket, so the client is told the same rate.

The ceiling is what the bucket allows in the run's time T: (B0 + R x T) / c updates, with B0 the full
bucket at the start, R the restore rate (points/s, sped up) and c the points one update costs (measured:
the answers' `actualQueryCost` over the updates made). Over a long run that is R / c updates/s.

THROTTLED answers come with HTTP 200, so the sandbox's status counts cannot show them: they are counted
on the wire (a response hook on the client's session reads every answer's errors and cost) and compared
with the retries the client made; none may be left unretried.

Baseline: drt-core's `rest_api` destination. The GraphQL endpoint is one fixed URL, so drt (whose `url`
is not templated per row) can send these updates: `customerUpdate` with the customer's id in the body,
at `requests_per_second` = its own ceiling R / 10 (a mutation alone costs 10 points; drt makes no
lookup). drt counts every 2xx as a success, THROTTLED answers included, so what really landed is read
back from the sandbox afterwards.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, Recorder, Result, Sandboxes, shopify_size_for, timer

# updates, speed of the cost bucket, drt updates
PROFILES = {"quick": (2_000, 2.0, 600), "full": (6_000, 3.0, 2_000)}
MUTATION_COST = 10  # "Mutation: 10" (https://shopify.dev/docs/apps/build/graphql/rate-limits, cost calculation)


class Wire:
    """Reads every GraphQL answer a client receives: answers, THROTTLED ones, points spent (the actual
    cost of each executed query) and mutations executed, with a time series of the points."""

    def __init__(self) -> None:
        self.answers = 0
        self.throttled = 0
        self.points = 0.0
        self.mutations = 0
        self.lock = threading.Lock()

    def __call__(self, resp: Any, *args: Any, **kwargs: Any) -> None:
        if not resp.request.url.endswith("/graphql.json"):
            return
        try:
            body = resp.json()
        except ValueError:
            return
        errors = body.get("errors") or []
        throttled = any(isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors)
        cost = (body.get("extensions") or {}).get("cost") or {}
        with self.lock:
            self.answers += 1
            if throttled:
                self.throttled += 1
                return
            self.points += float(cost.get("actualQueryCost") or 0)
            if "customerUpdate" in (body.get("data") or {}):
                self.mutations += 1


class Sampler:
    """Samples a cumulative counter of points into a time series (t, points) every `every` s."""

    def __init__(self, read: Any, every: float = 0.5) -> None:
        self.read, self.every = read, every
        self.series: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.series.append((time.perf_counter() - self.t0, self.read()))

    def __enter__(self) -> Sampler:
        self.t0 = time.perf_counter()
        self.series.append((0.0, self.read()))
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.series.append((time.perf_counter() - self.t0, self.read()))


def _customers(url: str, n: int) -> list[dict[str, Any]]:
    """The first `n` customers (a bulk read, with the limits off)."""
    from talk_assets.config import SHOPIFY
    from talk_assets.core.http import Pacer
    from talk_assets.systems.shopify.client import Client

    client = Client(url, SHOPIFY.value("access_token"), pacer=Pacer())
    out = []
    for rec in client.iter_records("customer"):
        if len(out) >= n:
            break
        out.append(rec)
    client.close()
    return out


def _rows(customers: list[dict[str, Any]]) -> list[Any]:
    from talk_assets.sync.declaration import VIEWS_BY_KEY
    from talk_assets.sync.push import Row

    view = VIEWS_BY_KEY["shopify.customer"]
    return [Row(view, f"customer:bench{c['id']}", "update", f"shopify-customer:{c['id']}", str(c["id"]), None,
                ["first_name"], {"first_name": f"Bench{c['id'] % 100000}"}, {}, {}, "", c.get("updated_at"))
            for c in customers]


def _bucket(sb: Sandboxes, speed: float) -> tuple[float, float]:
    """Limits on, at `speed`; the cost buckets refilled. (bucket size, restore rate in points/s, sped up)."""
    sb.faults({"rate_limit_enabled": True, "rate_limit_speed": speed}, ["shopify"])
    cfg = sb.control("shopify", "PUT", "graphql/cost", {})  # same settings; every bucket full again
    return float(cfg["bucket_size"]), float(cfg["restore_rate"]) * speed


def _landed(url: str, customers: list[dict[str, Any]], names: dict[str, str]) -> int:
    """How many of `customers` now have the first name `names[id]` (read back, limits off)."""
    from talk_assets.config import SHOPIFY
    from talk_assets.core.http import Pacer
    from talk_assets.systems.shopify.client import Client

    client = Client(url, SHOPIFY.value("access_token"), pacer=Pacer())
    now = {str(r["id"]): r.get("first_name") for r in client.iter_records("customer")}
    client.close()
    return sum(now.get(str(c["id"])) == names[str(c["id"])] for c in customers)


def ours(sb: Sandboxes, customers: list[dict[str, Any]], speed: float) -> dict[str, Any]:
    from talk_assets.config import SHOPIFY
    from talk_assets.core.http import Pacer
    from talk_assets.sync.push import execute
    from talk_assets.sync.writers import writer_for
    from talk_assets.systems.shopify.client import Client

    url = sb.urls["shopify"]
    rows = _rows(customers)
    b0, restore = _bucket(sb, speed)
    sb.reset_stats()
    client = Client(url, SHOPIFY.value("access_token"), pacer=Pacer())
    wire = Wire()
    client.session.hooks["response"].append(wire)
    with Sampler(lambda: wire.points) as sampler, timer() as t:
        outcomes = execute(writer_for("shopify", client), rows)
    client.close()
    st = sb.stats("shopify")
    sb.faults({"rate_limit_enabled": False}, ["shopify"])
    landed = _landed(url, customers, {str(c["id"]): f"Bench{c['id'] % 100000}" for c in customers})
    updated = sum(o.status == "updated" for o in outcomes)
    return {"seconds": t["s"], "requests": st["reads"] + st["writes"], "answers": wire.answers,
            "throttled": wire.throttled, "retried": client.throttled, "points": wire.points,
            "mutations": wire.mutations, "updated": updated, "landed": landed, "b0": b0, "restore": restore,
            "waited": client.cost_pacer.waited, "series": sampler.series,
            "other": sorted({o.status for o in outcomes} - {"updated"}), "statuses": st["statuses"]}


def drt(sb: Sandboxes, customers: list[dict[str, Any]], speed: float) -> dict[str, Any] | str:
    try:
        from drt.config.destinations_saas import RestApiDestinationConfig
        from drt.config.sync_options import SyncOptions
        from drt.destinations.rest_api import RestApiDestination
    except ImportError as exc:
        return f"drt-core not installed ({exc})"
    from talk_assets.config import SHOPIFY

    url = sb.urls["shopify"]
    query = ("mutation CustomerUpdate($input: CustomerInput!) { customerUpdate(input: $input) "
             "{ customer { id } userErrors { field message } } }")
    body = {"query": query, "variables": {"input": {"id": "gid://shopify/Customer/{{ row.id }}",
                                                    "firstName": "{{ row.first_name }}"}}}
    b0, restore = _bucket(sb, speed)
    config = RestApiDestinationConfig(
        type="rest_api", url=f"{url}/admin/api/{SHOPIFY.value('api_version')}/graphql.json", method="POST",
        headers={"X-Shopify-Access-Token": SHOPIFY.value("access_token"), "Content-Type": "application/json"},
        body_template=json.dumps(body),
        rate_limit={"requests_per_second": restore / MUTATION_COST},
        retry={"max_attempts": 5, "initial_backoff": 0.05},
    )
    names = {str(c["id"]): f"Drt{c['id'] % 100000}" for c in customers}
    records = [{"id": c["id"], "first_name": names[str(c["id"])]} for c in customers]
    sb.reset_stats()

    def requests_made() -> float:
        st = sb.stats("shopify")
        return float(st["reads"] + st["writes"])

    with Sampler(lambda: requests_made() * MUTATION_COST) as sampler, timer() as t:
        res = RestApiDestination().load(records, config, SyncOptions(on_error="skip"))
    requests = requests_made()
    sb.faults({"rate_limit_enabled": False}, ["shopify"])
    landed = _landed(url, customers, names)
    return {"seconds": t["s"], "requests": requests, "ok": res.success, "failed": res.failed, "landed": landed,
            "b0": b0, "restore": restore, "series": sampler.series}


def chart(restore: float, series: dict[str, list[tuple[float, float]]], path: Path) -> Path | None:
    """Cost points spent per second over time against the bucket's restore rate."""
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
    ax.axhline(restore, color="red", linestyle="--", label=f"restore rate {restore:g} points/s")
    ax.set_xlabel("seconds")
    ax.set_ylabel("cost points/s (0.5 s windows)")
    ax.set_title("Shopify sandbox: GraphQL push, points spent vs the cost bucket's restore rate")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(rec: Recorder, profile: str) -> None:
    n, speed, n_drt = PROFILES[profile]
    print(f"push: {n:,} customer updates via the Shopify writer (GraphQL read + customerUpdate), cost bucket "
          f"on, sped up x{speed:g}; drt-core: {n_drt:,} customerUpdate at its ceiling")
    with Sandboxes(["shopify"], shopify_size_for(n) + 100) as sb:
        sb.faults({"rate_limit_enabled": False}, ["shopify"])
        customers = _customers(sb.urls["shopify"], n)
        r = ours(sb, customers, speed)
        d = drt(sb, customers[:n_drt], speed)
    cost = r["points"] / max(r["updated"], 1)
    ceiling = (r["b0"] + r["restore"] * r["seconds"]) / cost
    share = r["updated"] / ceiling
    unretried = r["throttled"] - r["retried"]
    note = (f"{r['updated']:,} updated ({r['landed']:,} read back) in {r['seconds']:.1f}s, "
            f"{r['updated'] / r['seconds']:.1f} updates/s; {cost:.2f} points/update (read + mutation, actual "
            f"cost); bucket {r['b0']:g} points restoring {r['restore'] / speed:g}/s x{speed:g} = "
            f"{r['restore']:g}/s (the sandbox's speed factor, reported to the client in throttleStatus); "
            f"ceiling (B0 + R x T) / c = {ceiling:,.0f} updates, {r['restore'] / cost:.1f}/s steady; "
            f"{r['answers']:,} answers, {r['throttled']} THROTTLED, {r['retried']} retried by the client; "
            f"pacer waited {r['waited']:.1f}s" + (f"; other outcomes {r['other']}" if r["other"] else ""))
    if isinstance(d, str):
        rec.add(Result("push.rate_of_ceiling", share, "ratio", "target >= 0.9", 0.9, n, ratio=None,
                       note=note + f"; drt: {d}"))
        series = {"talk-assets writer (read + customerUpdate)": r["series"]}
    else:
        d_ceiling = (d["b0"] + d["restore"] * d["seconds"]) / MUTATION_COST
        d_share = d["landed"] / d_ceiling
        dnote = (f"; drt-core rest_api (customerUpdate to graphql.json at {d['restore'] / MUTATION_COST:g} req/s): "
                 f"{d['ok']:,} counted ok, {d['failed']:,} failed, {d['landed']:,} of {len(customers[:n_drt]):,} "
                 f"landed in {d['seconds']:.1f}s ({d['ok'] - d['landed']:,} answered THROTTLED or refused "
                 f"with HTTP 200 and counted ok), {d['landed'] / d['seconds']:.1f} updates/s = "
                 f"{d['landed'] / d['seconds'] / (d['restore'] / MUTATION_COST):.2f} of its steady ceiling (its "
                 f"fixed rate never spends the full bucket it starts with); ours "
                 f"{r['updated'] / r['seconds'] / (r['restore'] / cost):.2f} of R / c")
        rec.add(Result("push.rate_of_ceiling", share, "ratio", "drt-core rest_api", round(d_share, 3), n,
                       note=note + dnote))
        series = {"talk-assets writer (read + customerUpdate)": r["series"],
                  "drt-core rest_api (customerUpdate, points requested)": d["series"]}
    rec.add(Result("push.throttled_unretried", unretried, "answers", "target 0", 0, n, ratio=None,
                   note=f"{r['throttled']} THROTTLED answers on the wire, {r['retried']} retried by the client; "
                        f"HTTP statuses {r['statuses']}"))
    path = chart(r["restore"], series, RESULTS_DIR / "push_rate.png")
    if path:
        print(f"  chart: {path}")
