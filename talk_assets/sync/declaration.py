"""The one declaration of what is synced: the global rules and the 16 dataflows between the systems' views.

Each system declares its own views and sources in its folder (`talk_assets/systems/<key>/views.py`,
exported by its `System`); this module assembles them from the registry and adds what is global:
the global types and their properties, merge keys, required properties, generic mailboxes,
references, and the dataflows of the seed documents. Everything downstream is generated from it:
the collect assets, the SQL that normalises each view into global properties, the merge, the
mapped assets per target, the asset checks and the dataflow documents (`talk-assets docs`). The
vocabulary (Prop, View, Source, Dataflow, Conversion) is in `model.py`, the conversions in
`conversions.py`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from talk_assets.sync.conversions import VAT
from talk_assets.sync.model import LINK_MODES, Conversion, Dataflow, Prop, Source, View
from talk_assets.systems import systems

__all__ = [
    "DATAFLOWS", "GENERIC_MAILBOXES", "GLOBAL_TYPES", "LINK_MODES", "MATCH_KEYS", "MERGE_KEYS", "REFERENCES", "REFERENCE_FALLBACK",
    "REQUIRED", "SEED_TITLES", "SOURCES", "SOURCES_BY_KEY", "VAT", "VIEWS", "VIEWS_BY_KEY", "Conversion", "Dataflow",
    "Prop", "Source", "View", "content_digest", "counterparts", "referenced_types", "source_of", "synced_props",
    "views_of_type",
]

# -- global types --------------------------------------------------------------------------------
GLOBAL_TYPES: dict[str, tuple[str, ...]] = {
    "customer": (
        "email", "first_name", "last_name", "organization_name", "organization_number", "is_person",
        "phone", "address_line1", "address_line2", "zip_code", "city", "country_code", "website",
    ),
    "product": ("sku", "name", "variant_title", "description", "price_ex_vat", "vat_rate", "cost", "gtin", "stock"),
    "order": (
        "customer", "user", "email", "currency", "net_amount", "total_amount", "po_number", "order_date",
        "lines", "origin",
    ),
    "user": ("staff_number", "email", "first_name", "last_name", "phone"),
}

# Properties whose value is a reference to another global entity (the record's own id in the
# referenced view, resolved to a global id by the merge and back to the target's id when mapped).
REFERENCES: dict[str, str] = {"customer": "customer", "user": "user"}

# When a referenced entity has no record in the target yet, these global properties stand in for
# its id. None do: a value from another system is never written as the target's id (a CRM user's
# number is no Shopify staff id); an order whose user has no record in the target is written without one.
REFERENCE_FALLBACK: dict[str, str] = {}

# Mailboxes that name an organisation's shared inbox: they never merge persons.
GENERIC_MAILBOXES = ("post", "info", "firmapost", "kontakt", "admin", "office", "sales", "salg",
                     "support", "noreply", "no-reply", "ordre", "faktura", "kundeservice")

# Global properties a new record needs (a create without them is rejected before any API call).
REQUIRED: dict[str, tuple[str, ...]] = {
    "customer": ("email",),
    "product": ("sku",),
    "order": ("lines",),
    "user": (),
}

# Records of one global type are the same thing when they share a value of one of these
# properties (transitively; SKUs compared without case). Orders share their origin: the sync writes
# the origin's reference (`talk:customcrm-orders:17`, `conversions.origin`) into every order it
# creates, so a copy merges with its origin even when the state file is lost; orders entered
# separately merge only by the derived key below (`MATCH_KEYS`).
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "customer": ("email", "organization_number"),
    "product": ("sku", "gtin"),
    "order": ("origin",),
    # staff numbers are each system's own (the CRM's user id); users of two systems share their e-mail
    "user": ("email",),
}

# A derived merge key: records of a type that agree on *all* of these properties are one thing, when
# that evidence is unambiguous. For orders that carry no origin reference of ours (entered in two
# systems by hand, or copied by an older tool before the first sync): the same customer entity (the
# merged customer's global id; an order that names no customer, as Squarespace's, by the one customer
# entity with its e-mail), the same lines by SKU (without case) and quantity (prices may differ by tax
# and rounding) and the same order day (UTC). It joins only records not yet linked to another (an
# entity of one record), and never when two records of one view share it (which one is meant cannot
# be told): then the new record is held from the views holding a candidate (`merge.match_held_sql`).
MATCH_KEYS: dict[str, tuple[str, ...]] = {
    "order": ("customer", "lines", "order_date"),
}

# -- the systems' views and sources, from the registry ---------------------------------------------
_SYSTEMS = systems()
VIEWS: tuple[View, ...] = tuple(v for s in _SYSTEMS.values() for v in s.views)
VIEWS_BY_KEY = {v.vkey: v for v in VIEWS}
SOURCES: tuple[Source, ...] = tuple(src for s in _SYSTEMS.values() for src in s.sources)
SOURCES_BY_KEY = {s.key: s for s in SOURCES}
assert len(VIEWS_BY_KEY) == len(VIEWS) and len(SOURCES_BY_KEY) == len(SOURCES), "duplicate view or source keys"


def source_of(view: View) -> Source:
    return SOURCES_BY_KEY[f"{view.system}.{view.entity}"]


# -- the 16 dataflows ------------------------------------------------------------------------------


def _flow(seed: str, source: str, target: str, *args: Any, **kw: Any) -> Dataflow | None:
    """A dataflow between two views; None when either system is not in use (`TALK_SYSTEMS`)."""
    if source not in VIEWS_BY_KEY or target not in VIEWS_BY_KEY:
        return None
    return Dataflow(seed, VIEWS_BY_KEY[source], VIEWS_BY_KEY[target], *args, **kw)


DATAFLOWS: tuple[Dataflow, ...] = tuple(f for f in (
    _flow("000", "customcrm.order", "shopify.order", "always-insert"),
    _flow("000", "customcrm.product", "shopify.sesamproduct"),
    _flow("000", "customcrm.user", "shopify.order", "create-if-referenced", only=("email",),
         note="A Custom CRM user reaches Shopify as the `user_id` of the orders they own: the id of the "
              "Shopify staff member with the same e-mail (the staff list needs the `read_users` scope, "
              "Shopify Plus or Advanced). Staff cannot be created through the API, so a user without a "
              "staff account leaves the order's `user_id` empty; another system's user id is never written."),
    _flow("001", "customwebshop.customer", "customcrm.customer"),
    _flow("001", "customwebshop.order", "customcrm.order", "always-insert"),
    _flow("001", "customwebshop.product", "customcrm.product"),
    _flow("002", "customcrm.product", "squarespace.inventory", "merge-only",
         note="Stock levels reach the Squarespace variants that carry the same SKU."),
    _flow("002", "customcrm.order", "squarespace.order", "always-insert"),
    _flow("002", "customcrm.product", "squarespace.sesamproducts"),
    _flow("003", "customwebshop.product", "squarespace.inventory", "merge-only",
         note="Stock levels reach the Squarespace variants that carry the same SKU."),
    _flow("003", "customwebshop.order", "squarespace.order", "always-insert"),
    _flow("003", "customwebshop.product", "squarespace.sesamproducts"),
    _flow("004", "poweroffice.customers_person", "shopify.customer"),
    _flow("004", "poweroffice.customers_organisation", "shopify.customer"),
    _flow("004", "poweroffice.product", "shopify.sesamproduct"),
    _flow("004", "poweroffice.salesorders", "shopify.order", "always-insert"),
) if f is not None) + tuple(f for s in _SYSTEMS.values() if s.dataflows for f in s.dataflows(VIEWS_BY_KEY))

SEED_TITLES = {
    "000": ("Customcrm", "Shopify"),
    "001": ("Customwebshop", "Customcrm"),
    "002": ("Custom CRM", "Squarespace"),
    "003": ("Custom Webshop", "Squarespace"),
    "004": ("PowerOffice GO", "Shopify"),
    **{seed: titles for s in _SYSTEMS.values() for seed, titles in s.seed_titles.items()},
}


def views_of_type(global_type: str) -> list[View]:
    return [v for v in VIEWS if v.global_type == global_type]


def counterparts(view: View) -> list[tuple[Dataflow, View, bool]]:
    """Flows touching `view`: (flow, the other view, whether `view` is the flow's target)."""
    out = []
    for f in DATAFLOWS:
        if f.target is view:
            out.append((f, f.source, True))
        elif f.source is view:
            out.append((f, f.target, False))
    return out


def synced_props(view: View) -> list[str]:
    """Global properties of `view` that some dataflow carries to or from it."""
    names: list[str] = []
    for f, _other, _is_target in counterparts(view):
        for sp, tp in f.property_rows():
            for p in (sp, tp):
                if p in view.props and p.prop not in names:
                    names.append(p.prop)
    return names


def referenced_types(global_type: str) -> set[str]:
    """The global types an entity of `global_type` refers to, from the views' typed conversions (an
    order refers to its customer and user by id and to products by its lines' SKUs): what must be
    pushed before it."""
    return {p.conversion.refers_to for v in views_of_type(global_type) for p in v.props
            if p.conversion.refers_to and p.conversion.refers_to != global_type}


def _check() -> None:
    """The global rules and the views agree (a new system's declaration is checked when it loads)."""
    for gtype, keys in MATCH_KEYS.items():
        assert set(keys) <= set(GLOBAL_TYPES[gtype]), f"MATCH_KEYS[{gtype}]: {keys}"
    for v in VIEWS:
        assert v.global_type in GLOBAL_TYPES, f"{v.vkey}: unknown global type {v.global_type}"
        for p in v.props:
            assert p.prop in GLOBAL_TYPES[v.global_type], f"{v.vkey}.{p.field}: {p.prop} is no {v.global_type} property"
            if p.prop in REFERENCES and p.read is not None:
                assert p.conversion.refers_to == REFERENCES[p.prop], f"{v.vkey}.{p.field} must be a ref()"


_check()


def content_digest() -> str:
    """A digest of everything the declaration means: views (fields, conversions' SQL and types), sources,
    flows and the global rules. Derived state built under another declaration is rebuilt."""
    def view(v: View) -> list:
        return [v.vkey, v.system, v.entity, v.global_type, v.id_field, v.changed_field, v.where, v.flatten,
                v.namespace, [[p.field, p.prop, p.type, p.on_update, *p.conversion.sql()] for p in v.props]]

    doc = {
        "views": [view(v) for v in VIEWS],
        "sources": [[s.key, s.id_field, s.changed_field, s.version] for s in SOURCES],
        "flows": [[f.key, f.seed, f.link_mode, list(f.only)] for f in DATAFLOWS],
        "rules": [GLOBAL_TYPES, REFERENCES, REFERENCE_FALLBACK, GENERIC_MAILBOXES, REQUIRED, MERGE_KEYS, MATCH_KEYS],
    }
    return hashlib.md5(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
