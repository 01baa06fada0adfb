"""Shopify's entities as the sync sees them: the API entities collected and the views read from them."""

from __future__ import annotations

from talk_assets.sync.conversions import (
    DATE,
    DEC,
    EMAIL,
    INT,
    NO_COMPANY,
    PHONE,
    STANDARD_VAT_RATE,
    UPPER,
    VAT,
    lines,
    origin,
    price_incl_vat,
    ref,
    vat_rate_of_g,
    without_label,
)
from talk_assets.sync.model import Conversion, Source, View, record_field
from talk_assets.sync.model import Prop as P

PROCESSED_AT = Conversion(DATE.read, "CASE WHEN nullif({g}, '') IS NOT NULL THEN {g} || 'T00:00:00Z' END",
                          sql_type=DATE.sql_type)

SOURCES: tuple[Source, ...] = (
    Source("shopify", "customer", "Customers", "id", "updated_at"),
    Source("shopify", "product", "Products (with variants)", "id", "updated_at"),
    Source("shopify", "order", "Orders", "id", "updated_at"),
    # staff have no change time in the API: a new version is dated when the sync sees it change
    Source("shopify", "staff", "Staff members (read-only; `read_users` scope, Plus/Advanced)", "id", ""),
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
        # the product's title is its variants' name without their own label; written after create too
        # (GraphQL `productUpdate` `title`, https://shopify.dev/docs/api/admin-graphql/2026-07/mutations/productUpdate)
        P("title", "name", "string", Conversion(
            "nullif(trim(concat_ws(' ', {r}->>'$.title', CASE WHEN {r}->>'$.variants.title' NOT IN ('Default Title', '') "
            "THEN {r}->>'$.variants.title' END)), '')", without_label(),
            record_fields=("title", "variants.title"))),
        # "Default Title" is Shopify's placeholder for a product without options: no label
        P("variants.title", "variant_title", "string", Conversion(
            "nullif(nullif({v}, 'Default Title'), '')", "{g}")),
        P("body_html", "description", "string", writes=False),
        # Shopify names no tax rate for a product (its taxes come from the shop's regional settings and
        # overrides, which the Admin API does not expose on a product: ProductVariant has only `taxable`,
        # https://shopify.dev/docs/api/admin-graphql/2026-07/objects/ProductVariant). The price includes
        # the tax (a Norwegian shop's default, `Shop.taxesIncluded`) and is written with the product's own
        # rate (a 15 % food product at 115 for 100 ex. VAT); read, a variant that is not taxable is at 0 %
        # and a taxable one at the standard rate, so the read takes part in the merge only when the price
        # was edited in Shopify (`composed`): an edit there of a product at another rate than 0 % or the
        # standard one is read at the standard rate (Shopify's data names no other). The price is in the
        # shop's currency (`price_currency`, added by the client from `Shop.currencyCode`): in another
        # currency than the global prices' it is no value, and the writer holds a price for such a shop.
        P("variants.price", "price_ex_vat", "decimal (string, incl. VAT)", price_incl_vat(
            f"CASE WHEN lower({record_field('variants.taxable')}) = 'false' THEN 0 ELSE {STANDARD_VAT_RATE} END",
            vat_rate_of_g(), currency_field="variants.price_currency", record_fields=("variants.taxable",),
            composed=True)),
        P("variants.taxable", "vat_rate", "boolean (false: not taxed, 0 %)", Conversion(
            "CASE WHEN lower({v}) = 'false' THEN '0.0000' END",
            "CASE WHEN TRY_CAST({g} AS DECIMAL(18,6)) = 0 THEN 'false' ELSE 'true' END")),
        P("variants.barcode", "gtin", "string"),
        P("variants.inventory_quantity", "stock", "integer", INT),
    ),
)
# Staff users: the shop's staff list (REST `users.json`, GraphQL `staffMembers`), read-only. An order's
# `user_id` is one of these ids: Shopify's own large numbers, unrelated to any other system's user ids, so
# users are merged on the staff e-mail (`StaffMember.email`), which both systems really hold. Reading staff
# needs the `read_users` scope, which Shopify grants only to custom apps on Plus or Advanced stores
# (https://shopify.dev/docs/api/admin-graphql/2026-07/objects/StaffMember); without it the list is empty
# and orders created in Shopify carry no staff user. Staff cannot be created or changed through the API.
USER = View(
    "shopify", "staff", "User", "user", key="shopify.user", ns="shopify-user", changed_field="",
    description="Shopify staff members (`users.json`; read-only, `read_users` scope on Plus/Advanced stores), "
                "merged with other systems' users on their e-mail.",
    props=(
        P("email", "email", "string", EMAIL, writes=False),
        P("first_name", "first_name", "string", writes=False),
        P("last_name", "last_name", "string", writes=False),
        P("phone", "phone", "string", PHONE, writes=False),
    ),
)
ORDER = View(
    "shopify", "order", "Order", "order",
    description="Shopify orders (`orders.json?status=any`).",
    props=(
        P("customer.id", "customer", "integer (customer id)", ref(CUSTOMER), on_update=False),
        # the staff member linked to the order's user (by e-mail); none when the user has no staff account
        P("user_id", "user", "integer (staff user id)", ref(USER), on_update=False),
        P("email", "email", "string", EMAIL),
        P("currency", "currency", "string", UPPER, on_update=False),
        P("total_price", "total_amount", "decimal (string)", DEC, writes=False),
        P("po_number", "po_number", "string"),
        # "the date that appears on your orders ... If you're importing orders from an app or another platform,
        # then you can set processed_at to a date and time in the past to match when the original order was
        # created" (OrderCreateOrderInput.processedAt, 2026-07 schema; REST Order `processed_at`): the order
        # day, written at create as that day's start in UTC (read back as the same UTC day: no echo)
        P("processed_at", "order_date", "datetime", PROCESSED_AT, on_update=False),
        # a line's price includes its tax when the order says so (`Order.taxesIncluded`: "When `true`, the
        # subtotal and line item prices include tax amounts"), then at the standard rate: a line's own rate
        # is in `LineItem.taxLines`, which the order reads do not ask for (a list per line would multiply
        # the query cost of every order page). Orders are created with net line prices, `taxesIncluded:
        # false` and the order's own tax (the writer), so they read back as written.
        P("line_items", "lines", "list of line items",
          lines("line_items", "sku", "quantity",
                f"CASE WHEN lower({record_field('taxes_included')}) = 'false' THEN TRY_CAST(l->>'$.price' AS DECIMAL(18,4)) "
                f"ELSE TRY_CAST(l->>'$.price' AS DECIMAL(18,4)) / {VAT} END",
                "price := CAST(round(l.unit_price_ex_vat, 2) AS DECIMAL(18,2))::VARCHAR, "
                "title := coalesce(l.sku, 'Item')", record_fields=("taxes_included",)), on_update=False),
        # "The ID of the order placed on the originating platform" (REST Order `source_identifier`, since
        # 2022-04: https://shopify.dev/changelog/attribute-orders-to-a-sales-channel; GraphQL
        # OrderCreateOrderInput.sourceIdentifier in the 2026-07 schema, /work/shared/reference/shopify)
        P("source_identifier", "origin", "string (the order's id on its originating platform)",
          origin("shopify-order"), on_update=False),
    ),
)

VIEWS: tuple[View, ...] = (CUSTOMER, SESAMPRODUCT, ORDER, USER)
