"""Shopify's calculated query cost: an estimate before sending, and a pacer fed by the server's answer.

Shopify rate-limits the GraphQL Admin API by a leaky bucket of cost points per app and shop: every
answer carries `extensions.cost` (`requestedQueryCost`, `actualQueryCost` and `throttleStatus` with
`maximumAvailable`, `currentlyAvailable`, `restoreRate`); a query whose requested cost exceeds what the
bucket holds is refused with a `THROTTLED` error, and one whose requested cost exceeds 1000 points is
refused outright (https://shopify.dev/docs/api/usage/limits#graphql-admin-api-rate-limits,
https://shopify.dev/docs/api/usage/limits#cost-calculation). No plan's numbers are kept here: the bucket
size and restore rate come from the server's last answer.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from graphql import FieldNode, OperationDefinitionNode, SelectionSetNode, parse
from graphql.language import FragmentSpreadNode, InlineFragmentNode, IntValueNode, VariableNode

from talk_assets.core.http import Pacer

SINGLE_QUERY_MAX = 1000  # "The maximum cost of a single query is 1,000 points" (limits page above)
MUTATION_COST = 10  # "Mutation: 10" (cost calculation table)


@functools.lru_cache(maxsize=128)
def _operation(document: str) -> OperationDefinitionNode:
    """The document's operation, parsed once per process: the client reads with a few fixed documents and
    `page_size` prices every page about eight times; parsing each time was the largest part of a quiet
    cycle's Shopify time (~10 ms a parse, measured with cProfile on a quiet cycle at the default size). The AST is only read."""
    return next(d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode))


def estimate_cost(document: str, variables: dict[str, Any] | None = None) -> int:
    """The requested cost by Shopify's documented rules: an object 1, a scalar or enum 0, a connection
    2 plus `first` times its node's cost, a mutation 10. An estimate to pace and size pages with; the
    server's `requestedQueryCost` is the truth and corrects it (see `CostPacer.calibrate`)."""
    variables = variables or {}
    op = _operation(document)

    def size(node: FieldNode) -> int | None:
        for arg in node.arguments:
            if arg.name.value in ("first", "last"):
                v = arg.value
                if isinstance(v, IntValueNode):
                    return int(v.value)
                if isinstance(v, VariableNode):
                    return int(variables.get(v.name.value) or 0)
        return None

    def selection(sel: SelectionSetNode | None) -> int:
        if sel is None:
            return 0
        total = 0
        for s in sel.selections:
            if isinstance(s, InlineFragmentNode):
                total += selection(s.selection_set)
            elif isinstance(s, FieldNode) and not isinstance(s, FragmentSpreadNode):
                total += field_cost(s)
        return total

    def field_cost(node: FieldNode) -> int:
        if node.selection_set is None or node.name.value == "pageInfo":
            return 0
        n = size(node)
        if n is None:
            # `nodes`/`edges`/`node` of a connection are priced by the connection itself
            if node.name.value in ("nodes", "edges", "node"):
                return selection(node.selection_set)
            return 1 + selection(node.selection_set)
        return 2 + n * (1 + _node_children(node))

    def _node_children(conn: FieldNode) -> int:
        total = 0
        for s in conn.selection_set.selections if conn.selection_set else ():
            if isinstance(s, FieldNode) and s.name.value == "nodes":
                total += selection(s.selection_set)
            elif isinstance(s, FieldNode) and s.name.value == "edges":
                for e in s.selection_set.selections if s.selection_set else ():
                    if isinstance(e, FieldNode) and e.name.value == "node":
                        total += selection(e.selection_set)
        return total

    body = selection(op.selection_set)
    if op.operation.value == "mutation":
        return MUTATION_COST + sum(selection(s.selection_set) for s in op.selection_set.selections
                                   if isinstance(s, FieldNode))
    return max(1, body)


@dataclass
class CostPacer(Pacer):
    """Waits before a query until the cost bucket, as the server last reported it and refilled since at
    its restore rate, holds the query's expected cost. Shared by the threads of one client."""

    maximum: float | None = None
    available: float | None = None
    restore_rate: float | None = None
    observed_at: float = 0.0
    waited: float = 0.0  # seconds spent waiting for the bucket (for benchmarks and tests)
    _cost_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _now_available(self, now: float) -> float | None:
        if self.available is None or self.restore_rate is None or self.maximum is None:
            return None
        return min(self.maximum, self.available + (now - self.observed_at) * self.restore_rate)

    def wait_for(self, cost: float) -> None:
        """Sleep until `cost` points are available, then take them (so concurrent callers queue)."""
        with self._cost_lock:
            now = time.monotonic()
            have = self._now_available(now)
            if have is None:
                return
            need = min(cost, self.maximum or cost)
            delay = max(0.0, (need - have) / self.restore_rate) if self.restore_rate else 0.0
            # book the cost now: the bucket after this query, as seen from its start
            self.available = have + delay * (self.restore_rate or 0) - need
            self.observed_at = now + delay
        if delay > 0:
            self.waited += delay
            time.sleep(delay)

    def observe_cost(self, cost: dict[str, Any] | None) -> None:
        """Take the server's bucket from an answer's `extensions.cost.throttleStatus`."""
        status = (cost or {}).get("throttleStatus")
        if not status:
            return
        with self._cost_lock:
            self.maximum = float(status["maximumAvailable"])
            self.available = float(status["currentlyAvailable"])
            self.restore_rate = float(status["restoreRate"])
            self.observed_at = time.monotonic()

    def seconds_until(self, cost: float) -> float:
        """How long the bucket needs to hold `cost` points (after a THROTTLED answer)."""
        with self._cost_lock:
            have = self._now_available(time.monotonic())
            if have is None or not self.restore_rate:
                return 1.0
            return max(0.0, (min(cost, self.maximum or cost) - have) / self.restore_rate)

    def budget_max(self) -> float:
        """The most the bucket holds (the server's `maximumAvailable`; the single-query maximum before
        the first answer)."""
        return float(self.maximum or SINGLE_QUERY_MAX)

    def budget(self) -> float:
        """The most one query may request: the single-query maximum, or the bucket if it is smaller."""
        return float(min(SINGLE_QUERY_MAX, self.maximum or SINGLE_QUERY_MAX))


def page_size(document: str, variables: dict[str, Any], key: str, budget: float, ratio: float = 1.0,
              cap: int = 250) -> int:
    """The largest `first` (variable `key`, at most `cap`: Shopify's page maximum) whose estimated cost,
    corrected by `ratio` (server's requested cost / our estimate, from the previous page), fits `budget`."""
    lo, hi = 1, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_cost(document, {**variables, key: mid}) * ratio <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def ceil_ratio(requested: float | None, estimate: float) -> float:
    """How far the server's requested cost is above our estimate (never below 1: we only ever shrink)."""
    if not requested or not estimate:
        return 1.0
    return max(1.0, math.ceil(requested * 100 / estimate) / 100)
