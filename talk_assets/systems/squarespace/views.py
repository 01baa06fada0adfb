"""Squarespace's entities as the sync sees them: the API entities collected and the views read from them."""

from __future__ import annotations

from talk_assets.sync.conversions import (
    DATE,
    DEC,
    EMAIL,
    INT,
    PRICE_INCL_VAT,
    UPPER,
    VAT,
    lines,
    origin,
    without_label,
)
from talk_assets.sync.model import Conversion, Source, View
from talk_assets.sync.model import Prop as P

SOURCES: tuple[Source, ...] = (
    Source("squarespace", "products", "Products (with variants)", "id", "modifiedOn"),
    Source("squarespace", "inventory", "Inventory", "variantId", "", "quantity"),
    Source("squarespace", "orders", "Orders", "id", "modifiedOn"),
)

SESAMPRODUCTS = View(
    "squarespace", "products", "Sesamproducts", "product", flatten="variants", id_field="variants.id",
    changed_field="modifiedOn",
    description="One row per Squarespace product variant (variants flattened out of `products`).",
    props=(
        P("variants.sku", "sku", "string"),
        # the product's name is its variants' name without their label; written after create too
        # (Update a product: `name`, https://developers.squarespace.com/commerce-apis/update-product)
        P("name", "name", "string", Conversion(
            "nullif(trim(concat_ws(' ', {r}->>'$.name', {r}->>'$.variants.attributes.Variant')), '')",
            without_label(), record_fields=("name", "variants.attributes.Variant"))),
        P("variants.attributes.Variant", "variant_title", "string"),
        P("description", "description", "string", writes=False),
        P("variants.pricing.basePrice.value", "price_ex_vat", "decimal (string, incl. VAT)", PRICE_INCL_VAT),
    ),
)
INVENTORY = View(
    "squarespace", "inventory", "Inventory", "product", id_field="variantId", changed_field="",
    description="Squarespace stock per variant/SKU (`inventory`).",
    props=(
        P("sku", "sku", "string"),
        P("descriptor", "name", "string", writes=False),
        P("quantity", "stock", "integer", INT),
    ),
)
ORDER = View(
    "squarespace", "orders", "Order", "order", changed_field="modifiedOn",
    description="Squarespace orders (`orders`).",
    props=(
        P("customerEmail", "email", "string", EMAIL, on_update=False),
        P("grandTotal.currency", "currency", "string", UPPER, on_update=False),
        P("grandTotal.value", "total_amount", "decimal (string)", DEC, on_update=False),
        P("createdOn", "order_date", "datetime", DATE, writes=False),
        P("lineItems", "lines", "list of line items",
          lines("lineItems", "sku", "quantity", f"TRY_CAST(l->>'$.unitPricePaid.value' AS DECIMAL(18,4)) / {VAT}",
                "unitPricePaid := struct_pack(currency := 'NOK', value := "
                f"CAST(round(l.unit_price_ex_vat * {VAT}, 2) AS DECIMAL(18,2))::VARCHAR)", sku_fallback="productName"),
          on_update=False),
        # Create an order: `externalOrderReference`, required, 200 characters, the "order reference identifier
        # used by the third-party sales channel" (https://developers.squarespace.com/commerce-apis/create-order);
        # orders cannot be changed after import
        P("externalOrderReference", "origin", "string (the order's id in the external system)",
          origin("squarespace-orders"), on_update=False),
    ),
)

VIEWS: tuple[View, ...] = (SESAMPRODUCTS, INVENTORY, ORDER)
