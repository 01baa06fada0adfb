"""PowerOffice GO's entities as the sync sees them: the API entities collected and the views read from them."""

from __future__ import annotations

from talk_assets.sync.conversions import (
    DATE,
    DEC,
    EMAIL,
    INT,
    ORG_NUMBER,
    PHONE,
    RATE,
    UPPER,
    lines,
    origin,
    ref,
)
from talk_assets.sync.model import Conversion, Source, View, record_field
from talk_assets.sync.model import Prop as P
from talk_assets.systems.poweroffice.client import VAT_RATE_FIELD
from talk_assets.systems.poweroffice.schema import declare_writes

SOURCES: tuple[Source, ...] = (
    Source("poweroffice", "customers", "Customers", "Id", "LastChangedDateTimeOffset"),
    Source("poweroffice", "products", "Products", "Id", "LastChangedDateTimeOffset"),
    Source("poweroffice", "salesorders", "Sales orders", "Id", "LastChangedDateTimeOffset"),
)

_ADDRESS = (
    P("MailAddress.AddressLine1", "address_line1", "string"),
    P("MailAddress.AddressLine2", "address_line2", "string"),
    P("MailAddress.ZipCode", "zip_code", "string"),
    P("MailAddress.City", "city", "string"),
    P("MailAddress.CountryCode", "country_code", "string", UPPER),
)
PERSON = View(
    "poweroffice", "customers", "Customers (human data)", "customer", key="poweroffice.customers_person",
    changed_field="LastChangedDateTimeOffset", id_field="Id", where=f"({record_field('IsPerson')}) = 'true'", where_fields=("IsPerson",),
    description="PowerOffice GO customers that are persons (`IsPerson` true).",
    props=(
        P("EmailAddress", "email", "string", EMAIL),
        P("FirstName", "first_name", "string"),
        P("LastName", "last_name", "string"),
        P("Name", "last_name", "string", Conversion(None, "trim(concat_ws(' ', {g.first_name}, {g.last_name}))")),
        P("IsPerson", "is_person", "boolean", Conversion("lower({v})", None)),
        P("PhoneNumber", "phone", "string", PHONE),
        *_ADDRESS,
    ),
)
ORGANISATION = View(
    "poweroffice", "customers", "Customers", "customer", key="poweroffice.customers_organisation",
    changed_field="LastChangedDateTimeOffset", id_field="Id", where=f"coalesce({record_field('IsPerson')}, 'false') <> 'true'", where_fields=("IsPerson",),
    description="PowerOffice GO customers that are organisations.",
    props=(
        P("EmailAddress", "email", "string", EMAIL),
        P("Name", "organization_name", "string"),
        P("OrganizationNumber", "organization_number", "string", ORG_NUMBER),
        P("IsPerson", "is_person", "boolean", Conversion("lower(coalesce({v}, 'false'))", None)),
        P("PhoneNumber", "phone", "string", PHONE),
        *_ADDRESS,
    ),
)
PRODUCT = View(
    "poweroffice", "products", "Product", "product", changed_field="LastChangedDateTimeOffset", id_field="Id",
    description="PowerOffice GO products (`/v2/Products`), one per SKU (`Code`); the VAT rate is the one of the "
                "product's standard sales account's VAT code (`/v2/GeneralLedgerAccounts`, `/v2/VatCodes`).",
    props=(
        P("Code", "sku", "string"),
        P("Name", "name", "string"),
        P("Description", "variant_title", "string"),
        P("UnitPrice", "price_ex_vat", "decimal (ex. VAT)", DEC),
        # ProductDto names no VAT rate: a product's VAT follows its standard sales account (its own, else its
        # product group's) and that account's VAT code, whose rate the client adds to the record (client.py,
        # `VAT_RATE_FIELD`); null (no value, the other systems' rate or the standard one) where the client's
        # general sales settings decide, which the v2 API does not expose. Read only (schema.CLIENT_FIELDS).
        P(VAT_RATE_FIELD, "vat_rate", "decimal (fraction: the VAT code's rate of the product's standard sales "
          "account)", RATE),
        P("UnitCost", "cost", "decimal", DEC),
        P("Gtin", "gtin", "string"),
        P("StockOnHand", "stock", "decimal", INT),
    ),
)
SALESORDER = View(
    "poweroffice", "salesorders", "Salesorders", "order", changed_field="LastChangedDateTimeOffset", id_field="Id",
    # OrderStatus (v2 schema): "Confirmed - ... Used to confirm and lock the order from edit. Can be unlocked by
    # changing state to draft again."
    locked=f"{record_field('SalesOrderStatus')} = 'Confirmed'", locked_fields=("SalesOrderStatus",),
    locked_reason="a Confirmed PowerOffice GO sales order is locked from edit until it is set back to Draft; "
                  "its values flow out of PowerOffice only",
    description="PowerOffice GO sales orders with their lines. NetAmount and TotalAmount are computed by Go from "
                "the lines (readOnly in its schema) and never written. Sesam's known mapping sent NetAmount to "
                "Shopify's `total_price`; talk-assets does not: NetAmount is ex. VAT and `total_price` includes "
                "taxes (Shopify computes it from the lines too), so NetAmount is the global `net_amount` and "
                "TotalAmount (incl. VAT) the `total_amount` that `total_price` is compared with.",
    props=(
        P("CustomerId", "customer", "integer (customer id)", ref(PERSON)),
        P("CurrencyCode", "currency", "string", UPPER),
        P("NetAmount", "net_amount", "decimal", DEC),
        P("TotalAmount", "total_amount", "decimal", DEC),
        P("PurchaseOrderReference", "po_number", "string"),
        P("SalesOrderDate", "order_date", "date", DATE),
        P("Lines", "lines", "list of SalesOrderLine",
          lines("Lines", "ProductCode", "Quantity", "TRY_CAST(l->>'$.ProductUnitPrice' AS DECIMAL(18,4))",
                "ProductUnitPrice := l.unit_price_ex_vat", sku_fallback="Description"),
          on_update=False),  # GO changes lines through the line endpoints, not the order
        # SalesOrderDto.ExternalImportReference: "set by integrations creating sales orders, in order to
        # reference the external system and ensure a duplicate check" (poweroffice-go-v2.openapi.yaml)
        P("ExternalImportReference", "origin", "string (the order's reference in the external system)",
          origin("poweroffice-salesorders", "Id"), on_update=False),
    ),
)

# what the API does not take (NetAmount and TotalAmount of an order, computed by Go from the lines), from
# PowerOffice's own schema's `readOnly` flags (schema.py), never listed by hand
PERSON, ORGANISATION, PRODUCT, SALESORDER = (declare_writes(v) for v in (PERSON, ORGANISATION, PRODUCT, SALESORDER))
VIEWS: tuple[View, ...] = (PERSON, ORGANISATION, PRODUCT, SALESORDER)
