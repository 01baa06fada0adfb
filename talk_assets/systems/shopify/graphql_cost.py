"""Shopify's calculated query cost and its per-token leaky bucket, for the GraphQL sandbox.

Rules, from https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits ("Cost calculation"):
a field returning a scalar or enum costs 0, an object 1, an interface or union the maximum of its
possible selections, a connection 2 plus the objects it can return (its `first`/`last` times the
cost of one node), and a mutation 10. The requested cost is computed before running; the bucket
must hold it, and the difference to the actual cost (the same rules over what was really
returned) is refunded afterwards. A single query may request at most 1,000 points.

Where the docs are silent the sandbox says so here: `pageInfo`, `edges` and `cursor` are counted
as part of the connection's 2 (Shopify's published examples, `products(first: 10)` = 12, show no
extra point for them); a plain list of objects (no `first`) is counted as one object, as its
length is unknown before running.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
)

MAX_QUERY_COST = 1000  # "single query maximum": the rate-limits page above
MUTATION_COST = 10
CONNECTION_COST = 2
# Standard plan: 100 points/second restore (the rate-limits page's plan table). The bucket size is
# not in that table; 2,000 (20 seconds of restore) is what standard-plan shops report as
# `maximumAvailable` since Shopify doubled the limits in 2024. Both are sandbox settings.
DEFAULT_BUCKET_SIZE = 2000.0
DEFAULT_RESTORE_RATE = 100.0


def is_connection(t: Any) -> bool:
    return isinstance(t, GraphQLObjectType) and t.name.endswith("Connection") and (
        "edges" in t.fields or "nodes" in t.fields)


class CostCalculator:
    """Requested (before running) or actual (over the result `data`) cost of one operation."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def operation(self, op: OperationDefinitionNode, data: Any = None, actual: bool = False) -> int:
        root = self.schema.mutation_type if op.operation.value == "mutation" else self.schema.query_type
        if op.operation.value == "mutation":
            # "Mutations: 10" per mutation field, whatever its payload selection.
            return sum(MUTATION_COST for s in self._fields(op.selection_set, root) if s.name.value != "__typename")
        return self._selection(op.selection_set, root, data, actual)

    def _fields(self, sel: SelectionSetNode, parent: Any) -> list[FieldNode]:
        out: list[FieldNode] = []
        for s in sel.selections:
            if isinstance(s, FieldNode):
                out.append(s)
            elif isinstance(s, InlineFragmentNode):
                out.extend(self._fields(s.selection_set, parent))
            elif isinstance(s, FragmentSpreadNode) and s.name.value in self.fragments:
                out.extend(self._fields(self.fragments[s.name.value].selection_set, parent))
        return out

    def _selection(self, sel: SelectionSetNode | None, parent: Any, value: Any, actual: bool) -> int:
        """Unconditional fields add up; fragments on other types count their maximum."""
        if sel is None:
            return 0
        common = 0
        conditional: dict[str, int] = {}
        for s in sel.selections:
            if isinstance(s, FieldNode):
                common += self._field(s, parent, value, actual)
                continue
            if isinstance(s, InlineFragmentNode):
                cond, sub = (s.type_condition.name.value if s.type_condition else None), s.selection_set
            elif isinstance(s, FragmentSpreadNode) and s.name.value in self.fragments:
                frag = self.fragments[s.name.value]
                cond, sub = frag.type_condition.name.value, frag.selection_set
            else:
                continue
            cond_type = self.schema.get_type(cond) if cond else parent
            cost = self._selection(sub, cond_type or parent, value, actual)
            if cond is None or cond_type is parent:
                common += cost
            else:
                conditional[cond] = conditional.get(cond, 0) + cost
        return common + max(conditional.values(), default=0)

    def _arg(self, node: FieldNode, name: str) -> Any:
        for a in node.arguments or ():
            if a.name.value == name:
                v = a.value
                if isinstance(v, VariableNode):
                    return self.variables.get(v.name.value)
                if isinstance(v, IntValueNode):
                    return int(v.value)
                if isinstance(v, ListValueNode):
                    return list(v.values)
        return None

    def _field(self, node: FieldNode, parent: Any, value: Any, actual: bool) -> int:
        name = node.name.value
        if name.startswith("__") or not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        fdef = parent.fields.get(name)
        if fdef is None:
            return 0
        t = get_named_type(fdef.type)
        if is_leaf_type(t):
            return 0
        key = node.alias.value if node.alias else name
        sub = value.get(key) if isinstance(value, dict) else None
        if actual and sub is None:
            return 0  # not resolved (null, or an error): nothing was loaded
        if is_connection(t):
            node_type = get_named_type(t.fields["nodes"].type) if "nodes" in t.fields else None
            node_sels: list[SelectionSetNode] = []
            for f in self._fields(node.selection_set, t) if node.selection_set else []:
                if f.name.value == "nodes" and f.selection_set:
                    node_sels.append(f.selection_set)
                elif f.name.value == "edges" and f.selection_set:
                    for g in self._fields(f.selection_set, None):
                        if g.name.value == "node" and g.selection_set:
                            node_sels.append(g.selection_set)
            if actual:
                items = (sub.get("nodes") if isinstance(sub.get("nodes"), list) else
                         [e.get("node") for e in sub.get("edges") or [] if isinstance(e, dict)])
                per = [max((self._selection(s, node_type, it, True) for s in node_sels), default=0) + 1
                       for it in items if it is not None] if node_sels else []
                return CONNECTION_COST + sum(per)
            size = self._arg(node, "first") or self._arg(node, "last") or 0
            per_node = 1 + max((self._selection(s, node_type, None, False) for s in node_sels), default=0) \
                if node_sels else 0
            return CONNECTION_COST + int(size) * per_node
        if name == "nodes" and isinstance(t, GraphQLInterfaceType):
            ids = self._arg(node, "ids")
            n = len(sub) if actual and isinstance(sub, list) else (len(ids) if isinstance(ids, list) else 1)
            items = sub if actual and isinstance(sub, list) else [None] * n
            return sum(1 + self._selection(node.selection_set, t, it, actual) for it in items if not actual or it)
        if isinstance(t, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            if actual and isinstance(sub, list):
                return sum(1 + self._selection(node.selection_set, t, it, True) for it in sub) or 1
            return 1 + self._selection(node.selection_set, t, sub if not isinstance(sub, list) else None, actual)
        return 0


@dataclass
class _Level:
    available: float
    at: float


class CostBucket:
    """One leaky bucket of query-cost points per access token (Shopify: per app and store)."""

    def __init__(self, size: float = DEFAULT_BUCKET_SIZE, restore_rate: float = DEFAULT_RESTORE_RATE) -> None:
        self.size = size
        self.restore_rate = restore_rate
        self.levels: dict[str, _Level] = {}
        self.lock = threading.Lock()

    def _level(self, token: str, speed: float) -> _Level:
        now = time.monotonic()
        lv = self.levels.get(token)
        if lv is None:
            lv = self.levels[token] = _Level(self.size, now)
        lv.available = min(self.size, lv.available + (now - lv.at) * self.restore_rate * speed)
        lv.at = now
        return lv

    def take(self, token: str, cost: int, speed: float, enabled: bool) -> tuple[bool, float]:
        """Take `cost` points if the bucket holds them; return (taken, points left)."""
        with self.lock:
            lv = self._level(token, speed)
            if enabled and cost > lv.available:
                return False, lv.available
            lv.available = max(0.0, lv.available - cost)
            return True, lv.available

    def refund(self, token: str, points: float, speed: float) -> float:
        with self.lock:
            lv = self._level(token, speed)
            lv.available = min(self.size, lv.available + max(0.0, points))
            return lv.available

    def status(self, token: str, available: float, speed: float) -> dict[str, float]:
        """`throttleStatus` as Shopify reports it; the restore rate includes the speed factor."""
        return {"maximumAvailable": float(self.size), "currentlyAvailable": int(available),
                "restoreRate": float(self.restore_rate * speed)}

    def reset(self) -> None:
        with self.lock:
            self.levels.clear()
