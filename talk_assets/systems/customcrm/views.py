"""The Custom CRM's entities as the sync sees them: the API entities collected and the views read from them."""

from __future__ import annotations

from talk_assets.sync.conversions import (
    DATE,
    DEC,
    EMAIL,
    INT,
    ORG_NUMBER,
    PHONE,
    PRICE_CURRENCY,
    RATE,
    UPPER,
    lines,
    name_part,
    origin,
    ref,
)
from talk_assets.sync.model import Conversion, Source, View, record_field
from talk_assets.sync.model import Prop as P
from talk_assets.systems.customapi.writes import declare_writes
from talk_assets.systems.customcrm.spec import SPEC

SOURCES: tuple[Source, ...] = (
    Source("customcrm", "customers", "Customers", "id", "updated_at", "version"),
    Source("customcrm", "products", "Products", "id", "updated_at", "version"),
    Source("customcrm", "orders", "Orders", "id", "updated_at", "version"),
    Source("customcrm", "users", "Users", "id", "updated_at", "version"),
)

_IS_COMPANY = f"coalesce({record_field('customer_type')}, 'company') = 'company'"
# a person: said so, or (unknown) no organisation name
_PERSON = "coalesce({g.is_person} = 'true', {g.organization_name} IS NULL)"
CUSTOMER = View(
    "customcrm", "customers", "Customer", "customer",
    description="Custom CRM customers (companies and persons).",
    props=(
        P("email", "email", "string", EMAIL),
        P("name", "organization_name", "string", Conversion(
            f"CASE WHEN {_IS_COMPANY} THEN nullif(trim({{v}}), '') END",
            "CASE WHEN " + _PERSON + " THEN nullif(trim(concat_ws(' ', {g.first_name}, {g.last_name})), '') "
            "ELSE coalesce({g.organization_name}, nullif(trim(concat_ws(' ', {g.first_name}, {g.last_name})), '')) END",
            record_fields=("customer_type",))),
        P("name", "first_name", "string", Conversion(
            f"CASE WHEN NOT {_IS_COMPANY} THEN {name_part(1)} END", None, record_fields=("customer_type",))),
        P("name", "last_name", "string", Conversion(
            f"CASE WHEN NOT {_IS_COMPANY} THEN {name_part(2)} END", None, record_fields=("customer_type",))),
        P("customer_type", "is_person", "string (company | person)", Conversion(
            "CASE WHEN {v} = 'person' THEN 'true' WHEN {v} = 'company' THEN 'false' END",
            f"CASE WHEN {_PERSON} THEN 'person' ELSE 'company' END")),
        P("organization_number", "organization_number", "string", ORG_NUMBER),
        P("phone", "phone", "string", PHONE),
        P("website", "website", "string"),
        P("street_address1", "address_line1", "string"),
        P("street_address2", "address_line2", "string"),
        P("zip_code", "zip_code", "string"),
        P("city", "city", "string"),
        P("country", "country_code", "string", UPPER),
    ),
)
PRODUCT = View(
    "customcrm", "products", "Product", "product",
    description="Custom CRM products, one per SKU.",
    props=(
        P("sku", "sku", "string"),
        P("name", "name", "string"),
        P("description", "description", "string"),
        # ex. VAT, in the product's own `currency`: a price in another currency than the global one is no value
        P("unit_price", "price_ex_vat", "decimal (string, ex. VAT)", Conversion(
            f"CASE WHEN upper(trim(coalesce({record_field('currency')}, '{PRICE_CURRENCY}'))) = '{PRICE_CURRENCY}' "
            f"THEN {DEC.read} END", DEC.write, sql_type=DEC.sql_type, record_fields=("currency",))),
        P("vat_rate", "vat_rate", "decimal (string, a fraction)", RATE),
        P("cost_price", "cost", "decimal (string)", DEC),
        P("gtin", "gtin", "string"),
        P("stock_quantity", "stock", "integer", INT),
    ),
)
USER = View(
    "customcrm", "users", "User", "user",
    description="Custom CRM users (the staff who own orders).",
    props=(
        P("id", "staff_number", "integer", INT, writes=False),
        P("email", "email", "string", EMAIL),
        P("first_name", "first_name", "string"),
        P("last_name", "last_name", "string"),
        P("phone", "phone", "string", PHONE),
    ),
)
ORDER = View(
    "customcrm", "orders", "Order", "order",
    description="Custom CRM orders with their lines.",
    props=(
        P("customer_id", "customer", "integer (customer id)", ref(CUSTOMER)),
        P("user_id", "user", "integer (user id)", ref(USER)),
        P("currency", "currency", "string", UPPER),
        P("total_ex_vat", "net_amount", "decimal (string, computed from the lines)", DEC, writes=False),
        P("total_incl_vat", "total_amount", "decimal (string, computed from the lines)", DEC, writes=False),
        P("reference", "po_number", "string"),
        P("order_date", "order_date", "date", DATE),
        P("lines", "lines", "list of order lines",
          lines("lines", "sku", "quantity", "TRY_CAST(l->>'$.unit_price' AS DECIMAL(18,4))",
                "unit_price := l.unit_price_ex_vat::VARCHAR")),
        P("external_reference", "origin", "string (the order's id in the system it came from)",
          origin("customcrm-orders"), on_update=False),
    ),
)

# the fields the server keeps (readOnly in the system's OpenAPI document) are never written
CUSTOMER, PRODUCT, ORDER, USER = declare_writes(SPEC, (CUSTOMER, PRODUCT, ORDER, USER))
VIEWS: tuple[View, ...] = (CUSTOMER, PRODUCT, ORDER, USER)
