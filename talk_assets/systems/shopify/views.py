"""Shopify's entities as the sync sees them: the API entities collected and the views read from them."""

from __future__ import annotations

from talk_assets.sync.conversions import (
    DEC,
    EMAIL,
    INT,
    NO_COMPANY,
    PHONE,
    PRICE_INCL_VAT,
    UPPER,
    VAT,
    lines,
    origin,
    ref,
)
from talk_assets.sync.model import Conversion, Source, View, record_field
from talk_assets.sync.model import Prop as P

SOURCES: tuple[Source, ...] = (
    Source("shopify", "customer", "Customers", "id", "updated_at"),
    Source("shopify", "product", "Products (with variants)", "id", "updated_at"),
    Source("shopify", "order", "Orders", "id", "updated_at"),
)

CUSTOMER = View(
    "shopify", "customer", "Customer", "customer",
    description="Shopify customers (Admin REST `customers.json`).",
    props=(
        P("email", "email", "string", EMAIL),
        P("first_name", "first_name", "string"),
        P("last_name", "last_name", "string"),
        P("default_address.company", "organization_name", "string"),
        P("default_address.company", "is_person", "boolean (no company: a person)", NO_COMPANY),
        P("default_address.phone", "phone", "string", PHONE),
        P("default_address.address1", "address_line1", "string"),
        P("default_address.address2", "address_line2", "string"),
        P("default_address.zip", "zip_code", "string"),
        P("default_address.city", "city", "string"),
        P("default_address.country_code", "country_code", "string", UPPER),
    ),
)
SESAMPRODUCT = View(
    "shopify", "product", "Sesamproduct", "product", flatten="variants", id_field="variants.id",
    description="One row per Shopify product variant (variants flattened out of `products.json`).",
    props=(
        P("variants.sku", "sku", "string"),
        P("title", "name", "string", Conversion(
            "nullif(trim(concat_ws(' ', {r}->>'$.title', CASE WHEN {r}->>'$.variants.title' NOT IN ('Default Title', '') "
            "THEN {r}->>'$.variants.title' END)), '')", None, record_fields=("title", "variants.title"))),
        P("variants.title", "variant_title", "string"),
        P("body_html", "description", "string", writes=False),
        P("variants.price", "price_ex_vat", "decimal (string, incl. VAT)", PRICE_INCL_VAT),
        P("variants.barcode", "gtin", "string"),
        P("variants.inventory_quantity", "stock", "integer", INT),
    ),
)
# staff users as they appear on orders (declared before the orders, which refer to them)
USER = View(
    "shopify", "order", "User", "user", key="shopify.user", ns="shopify-user",
    id_field="user_id", where=f"({record_field('user_id')}) IS NOT NULL", where_fields=("user_id",),
    description="Shopify staff users as they appear on orders (`user_id`); Shopify has no staff API for custom apps.",
    props=(P("user_id", "staff_number", "integer", INT),),
)
ORDER = View(
    "shopify", "order", "Order", "order",
    description="Shopify orders (`orders.json?status=any`).",
    props=(
        P("customer.id", "customer", "integer (customer id)", ref(CUSTOMER), on_update=False),
        P("user_id", "user", "integer (staff user id)", ref(USER), on_update=False),
        P("email", "email", "string", EMAIL),
        P("currency", "currency", "string", UPPER, on_update=False),
        P("total_price", "total_amount", "decimal (string)", DEC, writes=False),
        P("po_number", "po_number", "string"),
        P("line_items", "lines", "list of line items",
          lines("line_items", "sku", "quantity", f"TRY_CAST(l->>'$.price' AS DECIMAL(18,4)) / {VAT}",
                f"price := CAST(round(l.unit_price_ex_vat * {VAT}, 2) AS DECIMAL(18,2))::VARCHAR, "
                "title := coalesce(l.sku, 'Item')"), on_update=False),
        # "The ID of the order placed on the originating platform" (REST Order `source_identifier`, since
        # 2022-04: https://shopify.dev/changelog/attribute-orders-to-a-sales-channel; GraphQL
        # OrderCreateOrderInput.sourceIdentifier in the 2026-07 schema, /work/shared/reference/shopify)
        P("source_identifier", "origin", "string (the order's id on its originating platform)",
          origin("shopify-order"), on_update=False),
    ),
)

VIEWS: tuple[View, ...] = (CUSTOMER, SESAMPRODUCT, ORDER, USER)
