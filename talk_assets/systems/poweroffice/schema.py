"""PowerOffice GO's own OpenAPI document (`openapi.yaml`, the v2 Swagger's Customers, Products and
SalesOrders part, see /work/shared/reference/README.md) and what it says about writing each view's
fields: a `readOnly` property of the answer DTO is never patched, and written on create only when the
`*PostDto` has it. The views take their read-only and create-only fields from here, not from a list."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from talk_assets.sync.model import View, writability

SPEC = Path(__file__).with_name("openapi.yaml")
SOURCE = "PowerOffice GO v2 OpenAPI"
# entity -> (the DTO the API answers with and PATCH applies to, the create body's DTO, view field -> schema name)
DTOS: dict[str, tuple[str, str, dict[str, str]]] = {
    "customers": ("CustomerDto", "CustomerPostDto", {}),
    "products": ("ProductDto", "ProductPostDto", {}),
    # the client reads and creates an order with its lines (`/Complete`) and calls them `Lines`
    "salesorders": ("SalesOrderCompleteDto", "SalesOrderCompletePostDto", {"Lines": "SalesOrderLines"}),
}


@cache
def schemas() -> dict[str, Any]:
    # libyaml's parser where PyYAML has it (the same document, ~10x faster): this runs at every import of
    # the definitions, so in every run a daemon launches, before the run starts
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(SPEC.read_text(encoding="utf-8"), Loader=loader)["components"]["schemas"]  # noqa: S506 - a safe loader


def read_only_props(dto: str) -> frozenset[str]:
    """The top-level properties `dto` marks readOnly."""
    return frozenset(k for k, v in (schemas()[dto].get("properties") or {}).items() if v.get("readOnly"))


# Fields the client adds to PowerOffice's records (not in its schema), and why the sync never writes them.
CLIENT_FIELDS: dict[str, str] = {
    "StandardSalesAccountVatRate": (
        "not a PowerOffice field: the client derives it from the product's standard sales account (its own or its "
        "product group's) and that account's VAT code (GeneralLedgerAccounts, VatCodes; read only); a product's VAT "
        "is changed in PowerOffice GO by its sales account, which the sync does not choose"),
}


def declare_writes(view: View) -> View:
    """`view` with its read-only and create-only fields as PowerOffice's schema marks them (and the fields
    the client derives, `CLIENT_FIELDS`, as read-only)."""
    dto, create_dto, aliases = DTOS[view.entity]
    fields = [p.field for p in view.props if p.field not in CLIENT_FIELDS]
    ro, co = writability(schemas(), fields, dto, create_dto, source=SOURCE, aliases=aliases)
    derived = tuple((p.field, CLIENT_FIELDS[p.field]) for p in view.props if p.field in CLIENT_FIELDS)
    return replace(view, read_only=ro + derived, create_only=co)
