"""Squarespace's entities as the sync sees them: the API entities collected and the views read from them."""

from __future__ import annotations

from talk_assets.sync.conversions import (
    DATE,
    DEC,
    EMAIL,
    INT,
    STANDARD_VAT_RATE,
    UPPER,
    VAT,
    lines,
    origin,
    price_incl_vat,
    vat_rate_of_g,
    without_label,
)
from talk_assets.sync.model import Conversion, Source, View, record_field
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
        # Products API 1.0 documents no tax rate per product (taxes are store settings the API does not
        # expose): the price is written with the product's own rate and read at the standard one, so the
        # read takes part only when the price was edited in Squarespace (`composed`); a price in another
        # currency than the global one is no value. A variant's price is a Money, `{"currency", "value"}`
        # (retrieve-specific-products, `pricing.basePrice`); the docs show none without its currency, so a
        # price without one is in an unknown currency: no value (`missing_currency=None`)
        P("variants.pricing.basePrice.value", "price_ex_vat", "decimal (string, incl. VAT)",
          price_incl_vat(STANDARD_VAT_RATE, vat_rate_of_g(), currency_field="variants.pricing.basePrice.currency",
                         missing_currency=None, composed=True)),
    ),
)
# The inventory item's `descriptor` ("a human-readable descriptor for identifying an item by its
# attributes", https://developers.squarespace.com/commerce-apis/inventory-overview; "Name [Variant: 42]")
# is not read as the product's name: Squarespace derives it from the product's name and the variant's
# attributes, and as a record without a change time its new value was dated when the sync saw it change,
# so after a name written to Squarespace it beat the very edit it came from and came back as the name
# with a second label. The name is read from the product (Sesamproducts).
INVENTORY = View(
    "squarespace", "inventory", "Inventory", "product", id_field="variantId", changed_field="",
    description="Squarespace stock per variant/SKU (`inventory`).",
    props=(
        P("sku", "sku", "string"),
        P("quantity", "stock", "integer", INT),
    ),
)
# A line's price ex. VAT from the order's own data: as it is when the order's prices exclude tax
# (`priceTaxInterpretation` EXCLUSIVE), else divided by 1 + the order's tax rate, taxTotal over what the
# grand total holds besides it (the API gives no rate per line: one rate for a mixed order is its average);
# the standard rate only for an order without a taxTotal.
_INTERPRETATION, _TAX, _GRAND = (record_field(f) for f in
                                 ("priceTaxInterpretation", "taxTotal.value", "grandTotal.value"))
_TAX_BASIS = ("priceTaxInterpretation", "grandTotal.value", "taxTotal.value")  # in order of appearance
_ORDER_RATE = (f"CASE WHEN TRY_CAST({_GRAND} AS DECIMAL(18,4)) - TRY_CAST({_TAX} AS DECIMAL(18,4)) > 0 "
               f"THEN round(TRY_CAST({_TAX} AS DECIMAL(18,4)) / (TRY_CAST({_GRAND} AS DECIMAL(18,4)) "
               f"- TRY_CAST({_TAX} AS DECIMAL(18,4))), 4) END")
_LINE_PRICE_EX_VAT = (f"CASE WHEN upper({_INTERPRETATION}) = 'EXCLUSIVE' "
                      "THEN TRY_CAST(l->>'$.unitPricePaid.value' AS DECIMAL(18,4)) "
                      "ELSE TRY_CAST(l->>'$.unitPricePaid.value' AS DECIMAL(18,4)) "
                      f"/ (1 + coalesce({_ORDER_RATE}, {VAT} - 1)) END")

ORDER = View(
    "squarespace", "orders", "Order", "order", changed_field="modifiedOn",
    description="Squarespace orders (`orders`).",
    props=(
        P("customerEmail", "email", "string", EMAIL, on_update=False),
        P("grandTotal.currency", "currency", "string", UPPER, on_update=False),
        P("grandTotal.value", "total_amount", "decimal (string)", DEC, on_update=False),
        P("createdOn", "order_date", "datetime", DATE, writes=False),
        P("lineItems", "lines", "list of line items",
          lines("lineItems", "sku", "quantity", _LINE_PRICE_EX_VAT,
                # written ex. VAT, with priceTaxInterpretation EXCLUSIVE and the order's tax as taxTotal (the
                # writer): no rate is assumed; the writer adds the order's currency
                "unitPricePaid := struct_pack(value := CAST(round(l.unit_price_ex_vat, 2) AS DECIMAL(18,2))::VARCHAR)",
                sku_fallback="productName", record_fields=_TAX_BASIS),
          on_update=False),
        # Create an order: `externalOrderReference`, required, 200 characters, the "order reference identifier
        # used by the third-party sales channel" (https://developers.squarespace.com/commerce-apis/create-order);
        # orders cannot be changed after import
        P("externalOrderReference", "origin", "string (the order's id in the external system)",
          origin("squarespace-orders"), on_update=False),
    ),
)

VIEWS: tuple[View, ...] = (SESAMPRODUCTS, INVENTORY, ORDER)
