"""The declaration's vocabulary: conversions, properties, views, sources, dataflows and systems.

A property maps one field of a system record to one global property through a `Conversion`: `read`
turns the field's text (`{v}`; `{r}` is the whole record as JSON, `{r}->>'$.<path>'` one of its
fields) into the global property's canonical text, and `write` turns the global value (`{g}`;
`{g.<prop>}` for other properties of the same global entity) into the field's value. Canonical
values are text: decimals with two places ("719.20"), integers, "true"/"false", lower-case e-mails,
phone numbers as "+4791234567". A property without `write` is read-only in that system (used for
merging and conflict resolution, never written back). What a conversion means beyond its SQL (the
SQL type it converts to, the JSON type written, the entity it references) is declared on it, never
read back out of the SQL.

This module imports nothing of the project when it loads (`Source.views` looks the views up in the
declaration when asked): systems declare themselves with it, the engine reads it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from talk_assets.settings import SystemInfo

_NUMBER_TYPES = ("DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL", "BIGINT", "INTEGER", "INT", "SMALLINT", "HUGEINT")
JSON_TYPES = ("string", "integer", "number", "boolean", "list")


@dataclass(frozen=True)
class Conversion:
    """How one field's value becomes a global property's canonical text and back.

    `sql_type`: the SQL type the read converts the value to (None: read as text); a non-empty value
    that does not convert is bad input, which collect rejects by name. `json_type`: the JSON type the
    write sends (None: as the field's declared type says). `refers_to`: the global type the value
    identifies (an id, or a SKU inside order lines); `namespace`: for an id, the namespace of the
    referenced view's ids (`shopify-customer`).
    """

    read: str | None  # SQL over {v} / {r}; None: write-only (derived from other properties)
    write: str | None = "{g}"  # SQL over {g} / {g.<prop>}; None: read-only
    sql_type: str | None = None
    json_type: str | None = None
    refers_to: str | None = None
    namespace: str | None = None
    record_fields: tuple[str, ...] = ()  # other fields of the record the read uses (`record_field(path)`), in order
    # the write makes the field from the property and others (`{g.<prop>}`) that the read cannot see (a price
    # incl. the product's VAT rate where the record names no rate): the read takes part in the merge only when
    # the field differs from what the write makes of the merged values, i.e. was really edited (merge.Composed)
    composed: bool = False

    def __post_init__(self) -> None:
        assert self.read is None or "{v}" in self.read or "{r}" in self.read, f"bad read {self.read!r}"
        assert self.json_type is None or self.json_type in JSON_TYPES, self.json_type
        if self.read is not None:
            check_record_fields(self.read, self.record_fields)

    def read_only(self) -> Conversion:
        return replace(self, write=None)

    def writing(self, write: str | None) -> Conversion:
        return replace(self, write=write)

    @property
    def expects(self) -> str:
        """What a converting read expects, in words ("a number", "a date")."""
        kind = (self.sql_type or "").split("(")[0]
        if kind in _NUMBER_TYPES:
            return "a number"
        if kind.startswith(("TIMESTAMP", "DATE")):
            return "a date"
        return f"a {kind.lower()}" if kind else "text"

    def sql(self) -> tuple[str | None, ...]:
        """Everything the conversion means, for digests."""
        return (self.read, self.write, self.sql_type, self.json_type, self.refers_to, self.namespace,
                *(("composed",) if self.composed else ()))


def record_field(path: str) -> str:
    """SQL of another field of the same record (`{r}->>'$.<path>'`), for a read or a view's `where`; the
    conversion declares the path in `record_fields` (the view in `where_fields`), so the engine extracts
    every field a view needs at once without reading the SQL back."""
    return "{r}->>'$." + path + "'"


_G_PROP = re.compile(r"\{g\.([a-z_]+)\}")


def write_uses(write: str) -> tuple[str, ...]:
    """The other global properties a write template names (`{g.<prop>}`): the template's own
    placeholders, not a reading of its SQL."""
    return tuple(dict.fromkeys(_G_PROP.findall(write)))


def fill_write(write: str, prop: str, column: Callable[[str], str]) -> str:
    """A write template as SQL: `{g}` (the property's own value) and each `{g.<other>}` become the
    columns `column(name)` names."""
    return _G_PROP.sub(lambda m: column(m.group(1)), write).replace("{g}", column(prop))


def check_record_fields(sql: str, fields: tuple[str, ...]) -> None:
    """The fields declared are the record fields `sql` looks up, in order of first appearance."""
    rest = sql
    for f in fields:
        if record_field(f) not in sql:
            raise ValueError(f"declares {f!r} but does not read it: {sql!r}")
        rest = rest.replace(record_field(f), "")
    if "{r}->>" in rest:
        raise ValueError(f"reads a record field it does not declare: {sql!r}")
    order = sorted(fields, key=lambda f: sql.index(record_field(f)))
    if list(fields) != order:
        raise ValueError(f"declare {order} in order of appearance: {sql!r}")


def json_type_of(type_text: str) -> str:
    """The JSON type of a field declared as `type_text` ("decimal (string, incl. VAT)": a string)."""
    t = type_text.lower()
    if t.startswith("list"):
        return "list"
    if t.startswith("integer"):
        return "integer"
    if t.startswith("decimal") and "string" not in t:
        return "number"
    if t.startswith("boolean"):
        return "boolean"
    return "string"


TEXT = Conversion("nullif(trim({v}), '')")


@dataclass(frozen=True, init=False)
class Prop:
    """One field of a system view mapped to one global property."""

    field: str  # dotted path in the record (in a flattened view, `<array>.<field>` is the item's)
    prop: str  # global property
    type: str  # the field's data type in the system, for the documents
    conversion: Conversion
    on_update: bool  # False: written when the record is created, never changed afterwards
    not_written: str  # why the system's API never takes this field (its read-only declaration), or ""

    def __init__(self, field: str, prop: str, type: str, conversion: Conversion = TEXT, *,
                 writes: bool = True, on_update: bool = True, not_written: str = "") -> None:
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "prop", prop)
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "conversion", conversion if writes and not not_written else conversion.read_only())
        object.__setattr__(self, "on_update", on_update)
        object.__setattr__(self, "not_written", not_written)

    @property
    def read(self) -> str | None:
        return self.conversion.read

    @property
    def write(self) -> str | None:
        return self.conversion.write

    @property
    def converts_to(self) -> str | None:
        """The SQL type the read converts the field's value to, None when read as text."""
        return self.conversion.sql_type

    @property
    def expects(self) -> str:
        return self.conversion.expects

    @property
    def json_type(self) -> str:
        """The JSON type this field is written as."""
        return self.conversion.json_type or json_type_of(self.type)

    @property
    def namespace(self) -> str | None:
        """For a reference field: the namespace of the ids it holds."""
        return self.conversion.namespace


@dataclass(frozen=True)
class View:
    """A system entity as Sesam names it (e.g. Shopify "Sesamproduct"), read from one API entity."""

    system: str  # system key
    entity: str  # the API entity the client reads (`Client.iter_records(entity)`)
    name: str  # the datatype name in the seed documents
    global_type: str
    props: tuple[Prop, ...]
    id_field: str = "id"
    changed_field: str = "updated_at"
    where: str | None = None  # SQL over {r}: which records of the entity belong to this view
    flatten: str | None = None  # array field whose items are this view's records (variants)
    key: str = ""  # unique view key, default "<system>.<name>"
    description: str = ""
    ns: str = ""  # namespace of the view's ids, default "<system>-<entity>"
    where_fields: tuple[str, ...] = ()  # the record fields `where` looks up (`record_field(path)`), in order
    # What the system's API does not let us write, declared by the system from its own schema (OpenAPI
    # `readOnly`, GraphQL input types), never by hand: (field, why). `read_only` fields are never
    # written (their props become read-only, the documents list them as not synchronized with the
    # reason); `create_only` fields are written when the record is created, never updated.
    read_only: tuple[tuple[str, str], ...] = ()
    create_only: tuple[tuple[str, str], ...] = ()
    # A record the API refuses to change (a confirmed PowerOffice order): SQL over {r} (`record_field`),
    # the fields it reads, and why. Such a record's properties flow one way, out of this system: the
    # mapping marks its differences `locked` instead of `update`, so nothing is attempted or retried.
    locked: str | None = None
    locked_fields: tuple[str, ...] = ()
    locked_reason: str = ""

    def __post_init__(self) -> None:
        if self.where:
            check_record_fields(self.where, self.where_fields)
        if self.locked:
            check_record_fields(self.locked, self.locked_fields)
        never, once = dict(self.read_only), dict(self.create_only)
        if never or once:
            object.__setattr__(self, "props", tuple(
                Prop(p.field, p.prop, p.type, p.conversion, on_update=p.on_update and p.field not in once,
                     not_written=p.not_written or never.get(p.field, ""))
                for p in self.props))

    @property
    def vkey(self) -> str:
        return self.key or f"{self.system}.{self.name.lower().replace(' ', '_')}"

    @property
    def namespace(self) -> str:
        """Prefix of this view's namespaced ids (`shopify-customer:123`)."""
        return self.ns or f"{self.system}-{self.entity}"

    def reader(self, name: str) -> Prop | None:
        """The property that reads global property `name` (the first one declared)."""
        return next((p for p in self.props if p.prop == name and p.read is not None), None)

    @property
    def read_props(self) -> list[str]:
        return list(dict.fromkeys(p.prop for p in self.props if p.read is not None))

    def props_for(self, name: str) -> list[Prop]:
        return [p for p in self.props if p.prop == name]


@dataclass(frozen=True)
class Source:
    """One API entity of a system: one source asset and one collect asset; views read its records."""

    system: str
    entity: str
    title: str
    id_field: str
    changed_field: str  # "" when the API keeps no change time (then: when we saw it change)
    version_field: str = ""  # what an update must still find to be allowed (default: changed_field)

    @property
    def version(self) -> str:
        return self.version_field or self.changed_field

    @property
    def key(self) -> str:
        return f"{self.system}.{self.entity}"

    @property
    def views(self) -> list[View]:
        from talk_assets.sync.declaration import VIEWS

        return [v for v in VIEWS if v.system == self.system and v.entity == self.entity]


LINK_MODES = ("merge-or-create", "always-insert", "merge-only", "create-if-referenced")


@dataclass(frozen=True)
class Dataflow:
    """One row of `shared/SYSTEMS.md`'s dataflow table: source view -> target view (two-way once linked)."""

    seed: str  # the seed document ("000".."004")
    source: View
    target: View
    link_mode: str = "merge-or-create"
    note: str = ""
    only: tuple[str, ...] = field(default=())  # restrict the property table to these global props

    def __post_init__(self) -> None:
        assert self.link_mode in LINK_MODES
        assert self.source.global_type == self.target.global_type or self.only, self

    @property
    def key(self) -> str:
        return f"{self.source.vkey}__to__{self.target.vkey}"

    def property_rows(self) -> list[tuple[Prop, Prop]]:
        """(source prop, target prop) for every global property both views map."""
        rows = []
        seen: set[tuple[str, str]] = set()
        for sp in self.source.props:
            if sp.read is None or (self.only and sp.prop not in self.only):
                continue
            for tp in self.target.props_for(sp.prop) if not self.only else self._target_for(sp):
                pair = (sp.field, tp.field)
                if pair not in seen:
                    seen.add(pair)
                    rows.append((sp, tp))
        return rows

    def _target_for(self, sp: Prop) -> list[Prop]:
        # a flow between different global types (User -> Order) maps the source entity itself
        # to the target's reference property named after the source type
        return [tp for tp in self.target.props if tp.prop == self.source.global_type] if sp.prop in self.only else []


# -- systems -----------------------------------------------------------------------------------------
@runtime_checkable
class SystemClient(Protocol):
    """The uniform interface the collect and push engines call (talk_assets/systems/README.md)."""

    system: str
    entities: tuple[str, ...]

    def iter_records(self, entity: str, since: datetime | None = None,
                     page_size: int | None = None) -> Iterator[dict[str, Any]]: ...

    def get_record(self, entity: str, record_id: str) -> dict[str, Any] | None: ...

    def create_record(self, entity: str, data: dict[str, Any], *,
                      idempotency_key: str | None = None) -> dict[str, Any]: ...

    def update_record(self, entity: str, record_id: str, changes: dict[str, Any], *,
                      expected_version: str | None = None) -> dict[str, Any]: ...

    def probe(self, entity: str, previous: str | None = None) -> str:
        """A token that changes when the entity's data changes. `previous`: the token this probe gave last
        (a hint, possibly stale or None) for an API that can neither count nor sort its changes
        (Squarespace) to search from; an API that can ignores it. The token must not depend on it."""
        ...


def paged_probe_part(previous: str | None, take: Callable[[], tuple[str, bool]]) -> str:
    """The part of a probe token that costs a read per page of records (a digest of a list without
    change times, a count by listing ids), taken again at most once per `TALK_PROBE_REFRESH_S`.

    `take()` gives (value, whether it read more than one page). A value of one page is cheap: it is
    taken every time and written bare. One of more pages is written `value~<period>`; while the period
    (time // TALK_PROBE_REFRESH_S) lasts, `previous` (this part of the probe's last token) is returned
    as it is, without a read. A new period takes it again, so the token moves once per period: the
    entity is read then (its collect is incremental) and a change the part alone shows (a staff edit,
    a deletion) is seen within one period, not at once."""
    from talk_assets.settings import settings  # this module imports nothing of the project at load

    period = int(time.time() // settings().probe_refresh_s)
    if previous and previous.rpartition("~")[2] == str(period):
        return previous
    value, paged = take()
    return f"{value}~{period}" if paged else value


@dataclass(frozen=True)
class System:
    """Everything the engine needs of one connected system, exported by the system's folder.

    `resource`: the Dagster resource class (fields `url` plus one per setting; `.client()` builds the
    client); `client`: the client class (`from_env()`, the `SystemClient` protocol); `writer`: how a
    mapped row becomes API calls (a subclass of `talk_assets.sync.writer.Writer`); `sandbox`: the
    sandbox app class (`App(seed=, size=)`); `dataflows`: a function of the views by key giving the
    system's own extra flows (a plugin system's; the five systems' flows are in the declaration).
    """

    info: SystemInfo
    resource: type[Any]
    client: type[Any]
    writer: type[Any]
    sandbox: type[Any]
    views: tuple[View, ...]
    sources: tuple[Source, ...]
    dataflows: Callable[[dict[str, View]], tuple[Dataflow, ...]] | None = None
    seed_titles: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for v in self.views:
            assert v.system == self.key, f"view {v.vkey} of system {v.system} declared by {self.key}"
            assert any(s.entity == v.entity for s in self.sources), f"view {v.vkey} reads no source of {self.key}"
        for s in self.sources:
            assert s.system == self.key, f"source {s.key} declared by {self.key}"

    # the SystemInfo interface, so `config.SYSTEMS[key]` keeps working with a System
    @property
    def key(self) -> str:
        return self.info.key

    @property
    def title(self) -> str:
        return self.info.title

    @property
    def port_offset(self) -> int:
        return self.info.port_offset

    @property
    def url_env(self) -> str:
        return self.info.url_env

    @property
    def settings(self) -> dict[str, Any]:
        return self.info.settings

    def sandbox_url(self, *args: Any, **kw: Any) -> str:
        return self.info.sandbox_url(*args, **kw)

    def url(self) -> str:
        return self.info.url()

    def value(self, name: str) -> str:
        return self.info.value(name)

    def secrets(self) -> list[str]:
        return self.info.secrets()

    def client_from_env(self) -> Any:
        return self.client.from_env()


# -- read-only fields from an OpenAPI document ---------------------------------------------------------
# Which fields of a view an API takes, read from the API's own OpenAPI document (`readOnly`). A system
# declares its views' read-only and create-only fields (`View.read_only`, `View.create_only`) from its
# vendor's schema with `writability`, never by hand: a field marked `readOnly` in the DTO the API answers
# with cannot be updated; it can still be sent on create when the create DTO (PowerOffice's `*PostDto`)
# has it. A view field the schema does not have is an error, so a renamed or misspelt field is found when
# the declaration loads, not as a dead letter. Another kind of schema (Shopify's GraphQL input types)
# plugs into the same two View fields with its own reader.
Schemas = Mapping[str, Any]


def _resolve(schemas: Schemas, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A property's schema with `$ref` and single-element `allOf` followed (readOnly kept from the outside)."""
    ro = bool(schema.get("readOnly"))
    while True:
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        elif len(schema.get("allOf") or ()) == 1:
            schema = schema["allOf"][0]
        elif "anyOf" in schema:  # pydantic's `X | None`
            schema = next((s for s in schema["anyOf"] if s.get("type") != "null"), {})
        else:
            break
        ro = ro or bool(schema.get("readOnly"))
    return {**schema, "readOnly": ro}


def _walk(schemas: Schemas, dto: str, path: list[str]) -> tuple[bool, bool]:
    """(exists, read-only) of the dotted `path` in schema `dto`; read-only if any step is."""
    schema: Mapping[str, Any] = schemas[dto]
    read_only = False
    for part in path:
        if schema.get("type") == "array" and "items" in schema:
            schema = _resolve(schemas, schema["items"])
        props = schema.get("properties") or {}
        if part not in props:
            return False, read_only
        schema = _resolve(schemas, props[part])
        read_only = read_only or bool(schema.get("readOnly"))
    return True, read_only


def writability(schemas: Schemas, fields: list[str], dto: str, create_dto: str | None = None, *,
                source: str, aliases: Mapping[str, str] | None = None,
                ) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(read_only, create_only) pairs (field, why) for a view's `fields` (dotted paths).

    `dto`: the schema the API answers with and updates apply to; `create_dto`: the create body's
    schema (default `dto`); `aliases`: a view field's name in the schema when the client renames it
    (PowerOffice's `Lines` are `SalesOrderLines`); `source`: the document, for the reasons.
    """
    aliases = aliases or {}
    read_only: list[tuple[str, str]] = []
    create_only: list[tuple[str, str]] = []
    for f in dict.fromkeys(fields):
        path = f.split(".")
        path[0] = aliases.get(path[0], path[0])
        exists, ro = _walk(schemas, dto, path)
        if not exists:
            raise ValueError(f"{f}: not a property of {dto} in {source}")
        if not ro:
            continue
        shown = ".".join(path)
        created, create_ro = _walk(schemas, create_dto, path) if create_dto else (True, ro)
        if created and not create_ro:
            create_only.append((f, f"{shown} is readOnly in {dto} ({source}): set on create ({create_dto}), "
                                   "never updated"))
        else:
            where = f", and not in {create_dto}" if create_dto else ""
            read_only.append((f, f"{shown} is readOnly in {dto} ({source}){where}: the API computes it"))
    return tuple(read_only), tuple(create_only)
