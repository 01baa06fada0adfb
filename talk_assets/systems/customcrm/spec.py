"""The Custom CRM's declaration: entities, rules and server-computed fields."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from talk_assets.systems.customapi.spec import EntitySpec, Record, SystemSpec
from talk_assets.systems.customcrm.info import INFO as CUSTOMCRM
from talk_assets.systems.customcrm.models import Contact, Customer, Order, Product, Quote, User

CENT = Decimal("0.01")


def line_totals(lines: list[Record]) -> tuple[str, str]:
    """(total ex VAT, total incl VAT) of order/quote lines, rounded half up to øre."""
    ex = sum((Decimal(ln["unit_price"]) * ln["quantity"] for ln in lines), Decimal(0))
    incl = sum((Decimal(ln["unit_price"]) * ln["quantity"] * (1 + Decimal(ln["vat_rate"])) for ln in lines),
               Decimal(0))
    return str(ex.quantize(CENT, ROUND_HALF_UP)), str(incl.quantize(CENT, ROUND_HALF_UP))


def finalize_order(rec: Record) -> None:
    rec["total_ex_vat"], rec["total_incl_vat"] = line_totals(rec["lines"])
    if not rec.get("order_number"):
        rec["order_number"] = str(1000 + rec["id"])


def finalize_quote(rec: Record) -> None:
    rec["total_ex_vat"] = line_totals(rec["lines"])[0]
    if not rec.get("quote_number"):
        rec["quote_number"] = f"Q-{1000 + rec['id']}"


SPEC = SystemSpec(
    key="customcrm",
    title="Custom CRM",
    info=CUSTOMCRM,
    root="/api/v1",
    auth="bearer",
    auth_header="Authorization",
    entities=(
        EntitySpec("customers", Customer, "Companies and persons the company sells to.", unique=("email",)),
        EntitySpec("contacts", Contact, "Contact persons of company customers.",
                   refs={"customer_id": "customers"}),
        EntitySpec("products", Product, "One record per sellable SKU; prices ex. VAT.", unique=("sku",)),
        EntitySpec("orders", Order, "Sales orders with lines; totals are computed by the server.",
                   unique=("order_number",), refs={"customer_id": "customers", "user_id": "users"},
                   computed=("total_ex_vat", "total_incl_vat"), finalize=finalize_order),
        EntitySpec("quotes", Quote, "Offers to customers.", unique=("quote_number",),
                   refs={"customer_id": "customers", "user_id": "users"}, computed=("total_ex_vat",),
                   finalize=finalize_quote),
        EntitySpec("users", User, "The company's staff (sales reps own orders).", unique=("email",)),
    ),
)
