"""Shopify's search syntax for the `query:` argument of GraphQL connections (the part the sync uses).

Syntax from https://shopify.dev/docs/api/usage/search-syntax: terms `field:value`, comparators
`field:>value`, `>=`, `<`, `<=`, quoted values (`'...'` or `"..."`), implicit AND between terms, `OR`,
`AND`, negation with `-` or `NOT`, and free text without a field. Timestamps compare as ISO 8601;
a date without a time means midnight in the shop's time zone.

An unknown field is not an error at Shopify: the search-syntax page says a term on an invalid field is
ignored (results are not narrowed by it). The reference does not show how this is reported; real
answers carry it in `extensions.search` as `[{"path": [...], "query": ..., "warnings": [{"field": ...,
"message": "Invalid search field for this query."}]}]` (observed shape, not documented), which is what
the sandbox answers (`Search.warnings`). Shopify also adds a `parsed` tree there; the sandbox omits it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

SHOP_TZ = ZoneInfo("Europe/Oslo")
TERM = re.compile(
    r"""\s*(?P<neg>-|NOT\s+)?(?:(?P<field>[A-Za-z_][\w.]*):(?P<op>>=|<=|>|<|=)?)?"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\(|\)|[^\s()]+)""")
INVALID_FIELD = "Invalid search field for this query."

# A field test gets (record, comparator, value) and answers whether the record matches.
FieldTest = Callable[[Any, str, str], bool]


@dataclass
class Term:
    field: str | None
    op: str
    value: str
    negated: bool = False


@dataclass
class Search:
    """A parsed `query:` string: OR-groups of AND-terms, plus warnings for ignored terms."""

    groups: list[list[Term]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    raw: str = ""

    def matcher(self, fields: dict[str, FieldTest], text: Callable[[Any], str] | None) -> Callable[[Any], bool] | None:
        """A record predicate, or None when the query filters nothing."""
        groups = []
        for g in self.groups:
            tests = []
            for t in g:
                if t.field is None:
                    if text is None:
                        continue
                    words = t.value.lower()
                    tests.append((lambda r, w=words: w in text(r), t.negated))
                else:
                    fn = fields[t.field]
                    tests.append((lambda r, fn=fn, t=t: fn(r, t.op, t.value), t.negated))
            if tests:
                groups.append(tests)
        if not groups:
            return None

        def match(r: Any) -> bool:
            return any(all(fn(r) != neg for fn, neg in g) for g in groups)

        return match

    def lower_bounds(self, name: str) -> tuple[datetime | None, datetime | None]:
        """(at or after, after): the bounds every match has on time field `name`, from `name:>=v` and
        `name:>v` terms of a query without OR, so a table's change index can narrow the records to test
        (the matcher still tests each). (None, None) when the query does not bound it."""
        at_least = after = None
        if len(self.groups) == 1:
            for t in self.groups[0]:
                if t.field != name or t.negated or t.op not in (">", ">="):
                    continue
                when = parse_time(t.value)
                if when is None:
                    continue
                if t.op == ">=":
                    at_least = when if at_least is None else max(at_least, when)
                else:
                    after = when if after is None else max(after, when)
        return at_least, after


def parse_search(raw: str | None, known: set[str]) -> Search:
    s = Search(raw=raw or "")
    if not raw or not raw.strip():
        return s
    group: list[Term] = []
    pos = 0
    while pos < len(raw):
        m = TERM.match(raw, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        value = m.group("value")
        if value in ("(", ")", "AND"):
            continue  # grouping is flattened: the sync never nests
        if value == "OR" and not m.group("field"):
            if group:
                s.groups.append(group)
            group = []
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        name = m.group("field")
        if name is not None and name not in known:
            s.warnings.append({"field": name, "message": INVALID_FIELD})
            continue
        group.append(Term(name, m.group("op") or "=", value, bool(m.group("neg"))))
    if group:
        s.groups.append(group)
    return s


def parse_time(value: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=SHOP_TZ)


def compare(have: Any, op: str, want: Any) -> bool:
    if have is None or want is None:
        return False
    if op == ">":
        return have > want
    if op == ">=":
        return have >= want
    if op == "<":
        return have < want
    if op == "<=":
        return have <= want
    return have == want


def time_test(get: Callable[[Any], datetime | None]) -> FieldTest:
    return lambda r, op, v: compare(get(r), op, parse_time(v))


def text_test(get: Callable[[Any], Any]) -> FieldTest:
    """Case-insensitive equality; a trailing `*` is a prefix match (Shopify's wildcard)."""

    def test(r: Any, op: str, v: str) -> bool:
        have = get(r)
        values = have if isinstance(have, list | tuple | set) else [have]
        want = v.lower()
        for h in values:
            if h is None:
                continue
            h = str(h).lower()
            if (want.endswith("*") and h.startswith(want[:-1])) or h == want:
                return True
        return False

    return test


def id_test(get: Callable[[Any], int]) -> FieldTest:
    def test(r: Any, op: str, v: str) -> bool:
        try:
            want = int(v.rsplit("/", 1)[-1])
        except ValueError:
            return False
        return compare(get(r), op, want)

    return test
