"""The contract suite: one check class reused per system, run through the project's own clients.

Each check says whether something the sync engine relies on holds for the account the
`TALK_<SYSTEM>_*` variables point at (the sandbox by default): PASS, FAIL, or SKIP with one line why.
Read-only unless `allow_writes`; then it creates, edits and deletes only records it tagged itself
(`talk-conformance-<random>` in an e-mail or SKU), never another record.

The shape follows the idea of a shared conformance test class (one class of checks, instantiated per
connector, each system adding what is its own), written for this project's uniform client interface
(`talk_assets/systems/README.md`): when a client changes (REST to GraphQL), the suite follows it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import requests

from talk_assets.core.http import ApiError, RetryPolicy, settings_hint, system_fault
from talk_assets.settings import environment
from talk_assets.sync.model import System, View

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass
class Result:
    system: str
    check: str
    status: str  # PASS | FAIL | SKIP
    why: str  # one line

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class Skip(Exception):
    """A check that cannot say anything for this account (with the reason)."""


class Fail(Exception):
    """A check that found what the engine relies on not to hold."""


def check(name: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Mark a method as a check; it returns the PASS line, raises Fail or Skip."""
    def mark(fn: Callable[..., str]) -> Callable[..., str]:
        fn.check_name = name  # type: ignore[attr-defined]
        return fn
    return mark


def get_path(record: Any, path: str) -> tuple[bool, Any]:
    """(whether the dotted path exists, its value); a list on the way is entered at its first item."""
    node = record
    for part in path.split("."):
        if isinstance(node, list):
            if not node:
                return True, None  # an empty list: the field's place exists, nothing to show
            node = node[0]
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


@dataclass
class Suite:
    """The checks every system gets. Subclasses name their rate-limit header, their deletable write
    sample and their own extra checks (methods marked `@check`)."""

    system: System
    allow_writes: bool = False
    tag: str = field(default_factory=lambda: f"talk-conformance-{uuid.uuid4().hex[:8]}")
    rate_limit_headers: tuple[str, ...] = ()  # headers the engine reads to pace itself
    rate_limit_note: str = ""  # why none is checked
    page_entity: str | None = None  # the entity paged and filtered (default: the first source's)

    def __post_init__(self) -> None:
        self._client: Any = None
        self.last_headers: dict[str, str] = {}

    # -- the client under test -----------------------------------------------------------------------
    @property
    def key(self) -> str:
        return self.system.key

    def new_client(self) -> Any:
        """The project's own client, from the environment, failing fast (few retries)."""
        client = self.system.client.from_env()
        client.retry = RetryPolicy(max_retries=1, backoff=0.2, max_backoff=1.0, max_rate_limit_wait=30.0)
        client.session.hooks["response"].append(self._keep_headers)
        return client

    def _keep_headers(self, resp: requests.Response, *args: Any, **kw: Any) -> None:
        if resp.status_code < 400:
            self.last_headers = dict(resp.headers)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def entity(self) -> str:
        return self.page_entity or self.system.sources[0].entity

    def source(self, entity: str) -> Any:
        return next(s for s in self.system.sources if s.entity == entity)

    # -- running ---------------------------------------------------------------------------------------
    def checks(self) -> list[tuple[str, Callable[[], str]]]:
        out, seen = [], set()
        for cls in type(self).__mro__:
            for name, fn in vars(cls).items():
                if hasattr(fn, "check_name") and name not in seen:
                    seen.add(name)
                    out.append((fn.check_name, getattr(self, name)))
        order = {n: i for i, n in enumerate(CHECK_ORDER)}
        return sorted(out, key=lambda c: order.get(c[0], len(order)))

    def run(self) -> list[Result]:
        results = []
        for name, fn in self.checks():
            started = time.monotonic()
            try:
                line = fn()
                results.append(Result(self.key, name, PASS, line))
            except Skip as s:
                results.append(Result(self.key, name, SKIP, str(s)))
            except Fail as f:
                results.append(Result(self.key, name, FAIL, str(f)))
            except ApiError as e:
                hint = settings_hint(self.key, e.status)
                results.append(Result(self.key, name, FAIL, f"{e}" + (f" [{hint}]" if hint and hint not in str(e) else "")))
            except Exception as e:  # noqa: BLE001 - a check's own bug is reported, not raised
                results.append(Result(self.key, name, FAIL, f"{type(e).__name__}: {e}"[:300]))
            results[-1].why = results[-1].why.replace("\n", " ")[:400]
            if time.monotonic() - started > 60:
                results[-1].why += f" (took {time.monotonic() - started:.0f}s)"
            if name == "auth" and results[-1].status == FAIL:
                results += [Result(self.key, n, SKIP, "authentication failed") for n, _ in self.checks() if n != "auth"]
                break
        return results

    # -- the generic checks ----------------------------------------------------------------------------
    @check("auth")
    def check_auth(self) -> str:
        """The credentials in force read one record of each source entity."""
        read = []
        for s in self.system.sources:
            n = sum(1 for _ in islice(self.client.iter_records(s.entity, page_size=1), 1))
            read.append(f"{s.entity}:{n}")
        return f"reads {', '.join(read)} with {', '.join(self.secret_vars()) or 'no credential'}"

    def secret_vars(self) -> list[str]:
        return [s.env for s in self.system.settings.values() if s.secret]

    @check("wrong credential")
    def check_wrong_credential(self) -> str:
        """A wrong secret is refused (401/403), and what the sync then says names the variable."""
        names = self.secret_vars()
        if not names:
            raise Skip("the system has no secret setting")
        said = []
        for name in names:
            with environment({name: "talk-conformance-wrong-" + uuid.uuid4().hex}):
                client = self.new_client()
            try:
                next(iter(client.iter_records(self.entity(), page_size=1)), None)
            except ApiError as e:
                if system_fault(e.status) is None:
                    raise Fail(f"a wrong {name} gave HTTP {e.status}, not 401/403: {e.message[:120]}") from None
                if name not in str(e):
                    raise Fail(f"a wrong {name} gave HTTP {e.status} but the error does not name {name}: {e}") from None
                said.append(f"{name}: HTTP {e.status}")
                continue
            finally:
                client.close()
            raise Fail(f"a wrong {name} was accepted")
        return "refused, naming the variable (" + "; ".join(said) + ")"

    @check("paging")
    def check_paging(self) -> str:
        """Small pages give the same records as one big read, each once."""
        entity = self.entity()
        small = [self.record_id(entity, r) for r in islice(self.client.iter_records(entity, page_size=2), 7)]
        if len(small) < 3:
            raise Skip(f"fewer than 3 {entity} records: paging not exercised")
        if len(set(small)) != len(small):
            raise Fail(f"pages of 2 repeat records: {small}")
        big = [self.record_id(entity, r) for r in islice(self.client.iter_records(entity), len(small))]
        if sorted(big) != sorted(small) and set(small) - set(self.all_ids(entity)):
            raise Fail(f"pages of 2 gave records a full read does not: {sorted(set(small) - set(big))}")
        return f"{len(small)} {entity} records over pages of 2, none repeated"

    def all_ids(self, entity: str) -> list[str]:
        return [self.record_id(entity, r) for r in self.client.iter_records(entity)]

    def record_id(self, entity: str, record: dict[str, Any]) -> str:
        return str(record[self.source(entity).id_field])

    @check("change filter")
    def check_change_filter(self) -> str:
        """A read `since` a time returns the records changed since then, not the older ones."""
        entity = self.entity()
        src = self.source(entity)
        if not src.changed_field:
            raise Skip(f"{entity} has no change time in the API (read whole every cycle)")
        records = list(islice(self.client.iter_records(entity), 500))
        stamps = sorted(t for t in (_time(r.get(src.changed_field)) for r in records) if t is not None)
        if len(stamps) < 2:
            raise Skip(f"fewer than 2 {entity} records with a {src.changed_field}")
        newest = stamps[-1]
        since = newest - timedelta(seconds=1)
        got = list(self.client.iter_records(entity, since=since))
        times = [_time(r.get(src.changed_field)) for r in got]
        if not got:
            raise Fail(f"since {since.isoformat()} returned nothing, though a record changed at {newest.isoformat()}")
        old = [t for t in times if t is not None and t < since - timedelta(seconds=1)]
        if old:
            raise Fail(f"since {since.isoformat()} returned {len(old)} records changed before it")
        future = list(islice(self.client.iter_records(entity, since=datetime.now(UTC) + timedelta(days=1)), 1))
        if future:
            raise Fail("a read since tomorrow returned records")
        return f"{entity} since the newest {src.changed_field} - 1 s: {len(got)} record(s), none older"

    @check("not found")
    def check_not_found(self) -> str:
        """A record that does not exist is a None from `get_record` (a 404 the client understands)."""
        entity = self.entity()
        got = self.client.get_record(entity, self.missing_id())
        if got is not None:
            raise Fail(f"a missing {entity} came back: {str(got)[:100]}")
        return f"a missing {entity} is a 404"

    def missing_id(self) -> str:
        return "999999999"

    @check("rate-limit headers")
    def check_rate_limit_headers(self) -> str:
        if not self.rate_limit_headers:
            raise Skip(self.rate_limit_note or "the engine reads no rate-limit header of this system")
        self.last_headers = {}
        next(iter(self.client.iter_records(self.entity(), page_size=1)), None)
        missing = [h for h in self.rate_limit_headers if h.lower() not in {k.lower() for k in self.last_headers}]
        if missing:
            raise Fail(f"no {', '.join(missing)} on a list response (the client paces itself by it)")
        shown = {k: v for k, v in self.last_headers.items() if k.lower() in {h.lower() for h in self.rate_limit_headers}}
        return ", ".join(f"{k}: {v}" for k, v in shown.items())

    @check("fields")
    def check_fields(self) -> str:
        """Every field the views read or write is a field of the records the API returns."""
        missing: list[str] = []
        counted = 0
        for view in self.system.views:
            rec = self.sample(view)
            if rec is None:
                continue
            for p in view.props:
                counted += 1
                present, _ = get_path(rec, p.field)
                if not present and not self.optional(view, p.field):
                    missing.append(f"{view.vkey}.{p.field}")
        if not counted:
            raise Skip("no records to look at")
        if missing:
            raise Fail(f"not in the records read: {', '.join(dict.fromkeys(missing))}")
        return f"{counted} view fields present in the records read"

    def optional(self, view: View, path: str) -> bool:
        """Fields an API leaves out when empty (documented as optional)."""
        return False

    def sample(self, view: View) -> dict[str, Any] | None:
        for r in islice(self.client.iter_records(view.entity), 50):
            if self.belongs(view, r):
                return r
        return None

    def belongs(self, view: View, record: dict[str, Any]) -> bool:
        return True

    @check("read-only fields")
    def check_read_only(self) -> str:
        """No field the engine writes is one the system declares read-only (its schema's `readOnly`)."""
        written = {(v.entity, p.field) for v in self.system.views for p in v.props if p.write is not None}
        never = sorted({f"{v.entity}.{p.field}" for v in self.system.views for p in v.props
                        if (v.entity, p.field) not in written})
        declared = self.declared_read_only()
        if declared is None:
            raise Skip("no machine-readable read-only declaration for this system in the repository; "
                       f"never written: {', '.join(never) or 'none'}")
        clash = sorted(f"{e}.{f}" for e, f in written if f.split(".")[0] in declared.get(e, set()))
        if clash:
            raise Fail(f"written but read-only in the schema: {', '.join(clash)}")
        return f"no written field is read-only in the schema; never written: {', '.join(never) or 'none'}"

    def declared_read_only(self) -> dict[str, set[str]] | None:
        """entity -> top-level fields the system's own schema declares read-only (the views' `read_only`
        declarations, derived from the schema: `model.writability`); None: no declaration."""
        out: dict[str, set[str]] = {}
        for v in self.system.views:
            if v.read_only:
                out.setdefault(v.entity, set()).update(f.split(".")[0] for f, _why in v.read_only)
        return out or None

    @check("writes")
    def check_writes(self) -> str:
        """Create, edit, read back and delete one record tagged as ours, with the bodies the writer sends."""
        if not self.allow_writes:
            raise Skip("read-only run (--allow-writes creates, edits and deletes one tagged record)")
        return self.write_cycle()

    def write_cycle(self) -> str:
        raise Skip("no deletable record kind: the suite does not write where it cannot clean up")


CHECK_ORDER = ("auth", "wrong credential", "paging", "change filter", "not found", "rate-limit headers",
               "fields", "read-only fields", "locks", "writes")


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
