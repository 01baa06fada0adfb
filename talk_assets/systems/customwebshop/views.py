"""The Custom Webshop's entities as the sync sees them: the API entities collected and the views read from them."""

from __future__ import annotations

from talk_assets.sync.conversions import (
    DATE,
    EMAIL,
    INT,
    MINOR_TO_DEC,
    NO_COMPANY,
    PERCENT_RATE,
    PHONE,
    STANDARD_VAT_RATE,
    UPPER,
    VAT,
    lines,
    own_origin,
    price_incl_vat,
    ref,
    vat_rate_of_g,
)
from talk_assets.sync.model import Prop as P
from talk_assets.sync.model import Source, View, record_field
from talk_assets.systems.customapi.writes import declare_writes
from talk_assets.systems.customwebshop.spec import SPEC

SOURCES: tuple[Source, ...] = (
    Source("customwebshop", "customers", "Customers", "id", "updated_at", "version"),
    Source("customwebshop", "products", "Products", "id", "updated_at", "version"),
    Source("customwebshop", "orders", "Orders", "id", "updated_at", "version"),
)

CUSTOMER = View(
    "customwebshop", "customers", "Customer", "customer",
    description="Custom Webshop customers.",
    props=(
        P("email", "email", "string", EMAIL),
        P("first_name", "first_name", "string"),
        P("last_name", "last_name", "string"),
        P("company", "organization_name", "string"),
        P("company", "is_person", "boolean (no company: a person)", NO_COMPANY),
        P("phone", "phone", "string", PHONE),
        P("billing_address.street", "address_line1", "string"),
        P("billing_address.street2", "address_line2", "string"),
        P("billing_address.postal_code", "zip_code", "string"),
        P("billing_address.city", "city", "string"),
        P("billing_address.country_code", "country_code", "string", UPPER),
    ),
)
PRODUCT = View(
    "customwebshop", "products", "Product", "product",
    description="Custom Webshop products, one per SKU (prices in øre, including the product's own `tax_rate`).",
    props=(
        P("sku", "sku", "string"),
        P("title", "name", "string"),
        P("description", "description", "string"),
        # the price includes the product's own `tax_rate` (percent) and is in its own `currency`: a price in
        # another currency than the global one is no value (never converted); written with the global rate
        P("price", "price_ex_vat", "integer (minor units, incl. VAT)", price_incl_vat(
            f"coalesce(TRY_CAST({record_field('tax_rate')} AS DECIMAL(18,6)) / 100, {STANDARD_VAT_RATE})",
            vat_rate_of_g(), minor=True, currency_field="currency", record_fields=("tax_rate",))),
        P("tax_rate", "vat_rate", "decimal (percent)", PERCENT_RATE),
        P("gtin", "gtin", "string"),
        P("stock", "stock", "integer", INT),
    ),
)
ORDER = View(
    "customwebshop", "orders", "Order", "order",
    description="Custom Webshop orders (amounts in øre, VAT included).",
    props=(
        P("customer_id", "customer", "integer (customer id)", ref(CUSTOMER)),
        P("email", "email", "string", EMAIL),
        P("currency", "currency", "string", UPPER),
        P("total", "total_amount", "integer (minor units, computed from the items)", MINOR_TO_DEC, writes=False),
        P("placed_at", "order_date", "datetime", DATE, writes=False),
        # an item names no tax rate (the webshop's OpenAPI has none on an order item; the rate is its
        # product's): its price is read and written at the standard rate
        P("items", "lines", "list of order items",
          lines("items", "sku", "quantity", f"TRY_CAST(l->>'$.unit_price' AS DECIMAL(18,4)) / 100 / {VAT}",
                f"unit_price := CAST(round(l.unit_price_ex_vat * {VAT} * 100) AS BIGINT)")),
        # orders reach the webshop from nowhere: its orders are their own origin
        P("id", "origin", "integer (the order's own id)", own_origin("customwebshop-orders")),
    ),
)

# the fields the server keeps (readOnly in the system's OpenAPI document) are never written
CUSTOMER, PRODUCT, ORDER = declare_writes(SPEC, (CUSTOMER, PRODUCT, ORDER))
VIEWS: tuple[View, ...] = (CUSTOMER, PRODUCT, ORDER)
