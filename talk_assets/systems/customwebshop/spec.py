"""The Custom Webshop's declaration: entities, rules and server-computed fields."""

from __future__ import annotations

from talk_assets.systems.customapi.spec import EntitySpec, Record, SystemSpec
from talk_assets.systems.customwebshop.info import INFO as CUSTOMWEBSHOP
from talk_assets.systems.customwebshop.models import Customer, Order, Product


def finalize_order(rec: Record) -> None:
    rec["total"] = sum(it["quantity"] * it["unit_price"] for it in rec["items"])
    if not rec.get("number"):
        rec["number"] = f"WS-{1000 + rec['id']}"


SPEC = SystemSpec(
    key="customwebshop",
    title="Custom Webshop",
    info=CUSTOMWEBSHOP,
    root="/api",
    auth="header",
    auth_header="X-Api-Key",
    entities=(
        EntitySpec("customers", Customer, "Shop accounts (persons; some buy for a company).", unique=("email",)),
        EntitySpec("products", Product, "One record per SKU; prices in øre incl. VAT.", unique=("sku",)),
        EntitySpec("orders", Order, "Web orders; total is computed by the server.", unique=("number",),
                   refs={"customer_id": "customers"}, computed=("total",), finalize=finalize_order),
    ),
)
