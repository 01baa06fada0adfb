"""The one declaration of what is synced: system entity views, their properties, and the 16 dataflows.

Everything downstream is generated from this module: the collect assets (which API entities to
read), the SQL that normalises each view into global properties, the merge keys, the mapped
assets per target, the asset checks and the dataflow documents (`talk-assets docs`).

A property maps one field of a system record to one global property, with two SQL conversions:
`read` turns the field's text (`{v}`; `{r}` is the whole record as JSON) into the global
property's canonical text, and `write` turns the global value (`{g}`; `{g.<prop>}` for other
properties of the same global entity) into the field's value. Canonical values are text:
decimals with two places ("719.20"), integers, "true"/"false", lower-case e-mails, phone numbers
as "+4791234567". A property without `write` is read-only in that system (used for merging and
conflict resolution, never written back). A dataflow's property table is every global property
that both its source and target views map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# -- global types --------------------------------------------------------------------------------
GLOBAL_TYPES: dict[str, tuple[str, ...]] = {
    "customer": (
        "email", "first_name", "last_name", "organization_name", "organization_number", "is_person",
        "phone", "address_line1", "address_line2", "zip_code", "city", "country_code", "website",
    ),
    "product": ("sku", "name", "variant_title", "description", "price_ex_vat", "cost", "gtin", "stock"),
    "order": (
        "customer", "user", "email", "currency", "net_amount", "total_amount", "po_number", "order_date",
        "lines",
    ),
    "user": ("staff_number", "email", "first_name", "last_name", "phone"),
}

# Properties whose value is a reference to another global entity (the record's own id in the
# referenced view, resolved to a global id by the merge and back to the target's id when mapped).
REFERENCES: dict[str, str] = {"customer": "customer", "user": "user"}

# When a referenced entity has no record in the target yet, these global properties stand in for
# its id: Shopify identifies staff users by their staff number (orders' `user_id`).
REFERENCE_FALLBACK: dict[str, str] = {"user": "staff_number"}

# Mailboxes that name an organisation's shared inbox: they never merge persons.
GENERIC_MAILBOXES = ("post", "info", "firmapost", "kontakt", "admin", "office", "sales", "salg",
                     "support", "noreply", "no-reply", "ordre", "faktura", "kundeservice")

VAT = "1.25"  # Norwegian standard VAT (25 %), used where a system stores prices including VAT

# -- reusable conversions ------------------------------------------------------------------------
EMAIL = "nullif(lower(trim({v})), '')"
TEXT = "nullif(trim({v}), '')"
PHONE = ("nullif(CASE WHEN regexp_full_match(regexp_replace({v}, '[ \\-]', '', 'g'), '[0-9]{8}') "
         "THEN '+47' || regexp_replace({v}, '[ \\-]', '', 'g') ELSE regexp_replace({v}, '[ \\-]', '', 'g') END, '')")
DEC = "CAST(round(TRY_CAST({v} AS DECIMAL(18,4)), 2) AS DECIMAL(18,2))::VARCHAR"
INT = "TRY_CAST(TRY_CAST({v} AS DOUBLE) AS BIGINT)::VARCHAR"
INCL_TO_EX = f"CAST(round(TRY_CAST({{v}} AS DECIMAL(18,4)) / {VAT}, 2) AS DECIMAL(18,2))::VARCHAR"
EX_TO_INCL = f"CAST(round(TRY_CAST({{g}} AS DECIMAL(18,4)) * {VAT}, 2) AS DECIMAL(18,2))::VARCHAR"
MINOR_INCL_TO_EX = f"CAST(round(TRY_CAST({{v}} AS DECIMAL(18,4)) / 100 / {VAT}, 2) AS DECIMAL(18,2))::VARCHAR"
EX_TO_MINOR_INCL = f"CAST(round(TRY_CAST({{g}} AS DECIMAL(18,4)) * {VAT} * 100) AS BIGINT)::VARCHAR"
MINOR_TO_DEC = "CAST(round(TRY_CAST({v} AS DECIMAL(18,4)) / 100, 2) AS DECIMAL(18,2))::VARCHAR"
DEC_TO_MINOR = "CAST(round(TRY_CAST({g} AS DECIMAL(18,4)) * 100) AS BIGINT)::VARCHAR"
DATE = "CAST(TRY_CAST({v} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS DATE)::VARCHAR"
UPPER = "nullif(upper(trim({v})), '')"
NO_COMPANY = "CASE WHEN nullif(trim({v}), '') IS NULL THEN 'true' ELSE 'false' END"
SAME = "{g}"


def lines_read(path: str, sku: str, qty: str, price: str, sku_fallback: str = "") -> str:
    """Order lines as a canonical JSON list of {sku, quantity, unit_price_ex_vat}, sorted by SKU.

    `price` is an SQL expression over `l` (one line as JSON) giving the unit price ex. VAT;
    `sku_fallback` names the field that carries the SKU of a line without one (a custom line item).
    """
    sku_expr = f"coalesce(nullif(l->>'$.{sku}', ''), l->>'$.{sku_fallback}')" if sku_fallback else f"l->>'$.{sku}'"
    return (
        "to_json(list_sort(list_transform(json_extract({r}, '$." + path + "[*]'), lambda l: struct_pack("
        f"sku := trim({sku_expr}), quantity := TRY_CAST(l->>'$.{qty}' AS INTEGER), "
        f"unit_price_ex_vat := CAST(round({price}, 2) AS DECIMAL(18,2))))))::VARCHAR"
    )


def lines_write(sku: str, qty: str, price: str) -> str:
    """Canonical lines to a target's line list; `price` is an SQL expression over `l.unit_price_ex_vat`."""
    return (
        "to_json(list_transform(from_json({g}, '[{\"sku\":\"VARCHAR\",\"quantity\":\"INTEGER\","
        "\"unit_price_ex_vat\":\"DECIMAL(18,2)\"}]'), lambda l: struct_pack("
        f"{sku} := l.sku, {qty} := l.quantity, {price})))::JSON"
    )


def ref(view: str) -> str:
    """A reference field: the referenced record's namespaced id."""
    return f"CASE WHEN nullif(trim({{v}}), '') IS NOT NULL THEN '{view}:' || trim({{v}}) END"


# -- declarations ----------------------------------------------------------------------------------
_CONVERSION = re.compile(r"TRY_CAST\(\{v\} AS ([A-Z]+(?:\(\d+,\s*\d+\))?)\)")


@dataclass(frozen=True)
class Prop:
    """One field of a system view mapped to one global property."""

    field: str  # dotted path in the record (in a flattened view, `<array>.<field>` is the item's)
    prop: str  # global property
    type: str  # the field's data type in the system, for the documents
    read: str | None = TEXT  # None: write-only (the field is derived from other properties)
    write: str | None = SAME  # None: read-only in this system
    on_update: bool = True  # False: written when the record is created, never changed afterwards

    def __post_init__(self) -> None:
        assert self.read is None or "{v}" in self.read or "{r}" in self.read, f"bad read of {self.field}"

    @property
    def converts_to(self) -> str | None:
        """The SQL type the read converts the field's value to (`TRY_CAST({v} AS ...)`: DEC, INT, DATE...),
        None when the value is read as text. A non-empty value that does not convert is bad input: collect
        rejects the record by name instead of letting the read turn it into an empty value."""
        m = _CONVERSION.search(self.read or "")
        return m.group(1) if m else None

    @property
    def expects(self) -> str:
        """What a converting read expects, in words ("a number", "a date")."""
        kind = (self.converts_to or "").split("(")[0]
        if kind in ("DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL", "BIGINT", "INTEGER", "INT", "SMALLINT", "HUGEINT"):
            return "a number"
        if kind.startswith(("TIMESTAMP", "DATE")):
            return "a date"
        return f"a {kind.lower()}" if kind else "text"


@dataclass(frozen=True)
class View:
    """A system entity as Sesam names it (e.g. Shopify "Sesamproduct"), read from one API entity."""

    system: str  # config key
    entity: str  # the API entity the client reads (`Client.iter_records(entity)`)
    name: str  # the datatype name in the seed documents
    global_type: str
    props: tuple[Prop, ...]
    id_field: str = "id"
    changed_field: str = "updated_at"
    where: str | None = None  # SQL over {r}: which records of the entity belong to this view
    flatten: str | None = None  # array field whose items are this view's records (variants)
    key: str = ""  # unique view key, default "<system>.<name>"
    description: str = ""
    ns: str = ""  # namespace of the view's ids, default "<system>-<entity>"

    @property
    def vkey(self) -> str:
        return self.key or f"{self.system}.{self.name.lower().replace(' ', '_')}"

    @property
    def namespace(self) -> str:
        """Prefix of this view's namespaced ids (`shopify-customer:123`)."""
        return self.ns or f"{self.system}-{self.entity}"

    def reader(self, name: str) -> Prop | None:
        """The property that reads global property `name` (the first one declared)."""
        return next((p for p in self.props if p.prop == name and p.read is not None), None)

    @property
    def read_props(self) -> list[str]:
        return list(dict.fromkeys(p.prop for p in self.props if p.read is not None))

    def props_for(self, name: str) -> list[Prop]:
        return [p for p in self.props if p.prop == name]


P = Prop

# Shopify -----------------------------------------------------------------------------------------
SHOPIFY_CUSTOMER = View(
    "shopify", "customer", "Customer", "customer",
    description="Shopify customers (Admin REST `customers.json`).",
    props=(
        P("email", "email", "string", EMAIL),
        P("first_name", "first_name", "string"),
        P("last_name", "last_name", "string"),
        P("default_address.company", "organization_name", "string"),
        P("default_address.company", "is_person", "boolean (no company: a person)", NO_COMPANY, write=None),
        P("default_address.phone", "phone", "string", PHONE),
        P("default_address.address1", "address_line1", "string"),
        P("default_address.address2", "address_line2", "string"),
        P("default_address.zip", "zip_code", "string"),
        P("default_address.city", "city", "string"),
        P("default_address.country_code", "country_code", "string", UPPER),
    ),
)
SHOPIFY_SESAMPRODUCT = View(
    "shopify", "product", "Sesamproduct", "product", flatten="variants", id_field="variants.id",
    description="One row per Shopify product variant (variants flattened out of `products.json`).",
    props=(
        P("variants.sku", "sku", "string"),
        P("title", "name", "string",
          "nullif(trim(concat_ws(' ', {r}->>'$.title', CASE WHEN {r}->>'$.variants.title' NOT IN ('Default Title', '') "
          "THEN {r}->>'$.variants.title' END)), '')", write=None),
        P("variants.title", "variant_title", "string"),
        P("body_html", "description", "string", write=None),
        P("variants.price", "price_ex_vat", "decimal (string, incl. VAT)", INCL_TO_EX, EX_TO_INCL),
        P("variants.barcode", "gtin", "string"),
        P("variants.inventory_quantity", "stock", "integer", INT),
    ),
)
SHOPIFY_ORDER = View(
    "shopify", "order", "Order", "order",
    description="Shopify orders (`orders.json?status=any`).",
    props=(
        P("customer.id", "customer", "integer (customer id)", ref("shopify-customer"), on_update=False),
        P("user_id", "user", "integer (staff user id)", ref("shopify-user"), on_update=False),
        P("email", "email", "string", EMAIL),
        P("currency", "currency", "string", UPPER, on_update=False),
        P("total_price", "total_amount", "decimal (string)", DEC, write=None),
        P("po_number", "po_number", "string"),
        P("line_items", "lines", "list of line items",
          lines_read("line_items", "sku", "quantity", f"TRY_CAST(l->>'$.price' AS DECIMAL(18,4)) / {VAT}"),
          lines_write("sku", "quantity", f"price := CAST(round(l.unit_price_ex_vat * {VAT}, 2) AS DECIMAL(18,2))::VARCHAR, "
                      "title := coalesce(l.sku, 'Item')"), on_update=False),
    ),
)
SHOPIFY_USER = View(
    "shopify", "order", "User", "user", key="shopify.user", ns="shopify-user",
    id_field="user_id", where="({r}->>'$.user_id') IS NOT NULL",
    description="Shopify staff users as they appear on orders (`user_id`); Shopify has no staff API for custom apps.",
    props=(P("user_id", "staff_number", "integer", INT),),
)

# PowerOffice GO ----------------------------------------------------------------------------------
_PO_ADDRESS = (
    P("MailAddress.AddressLine1", "address_line1", "string"),
    P("MailAddress.AddressLine2", "address_line2", "string"),
    P("MailAddress.ZipCode", "zip_code", "string"),
    P("MailAddress.City", "city", "string"),
    P("MailAddress.CountryCode", "country_code", "string", UPPER),
)
POWEROFFICE_PERSON = View(
    "poweroffice", "customers", "Customers (human data)", "customer", key="poweroffice.customers_person",
    changed_field="LastChangedDateTimeOffset", id_field="Id", where="({r}->>'$.IsPerson') = 'true'",
    description="PowerOffice GO customers that are persons (`IsPerson` true).",
    props=(
        P("EmailAddress", "email", "string", EMAIL),
        P("FirstName", "first_name", "string"),
        P("LastName", "last_name", "string"),
        P("Name", "last_name", "string", None, "trim(concat_ws(' ', {g.first_name}, {g.last_name}))"),
        P("IsPerson", "is_person", "boolean", "lower({v})", None),
        P("PhoneNumber", "phone", "string", PHONE),
        *_PO_ADDRESS,
    ),
)
POWEROFFICE_ORGANISATION = View(
    "poweroffice", "customers", "Customers", "customer", key="poweroffice.customers_organisation",
    changed_field="LastChangedDateTimeOffset", id_field="Id", where="coalesce({r}->>'$.IsPerson', 'false') <> 'true'",
    description="PowerOffice GO customers that are organisations.",
    props=(
        P("EmailAddress", "email", "string", EMAIL),
        P("Name", "organization_name", "string"),
        P("OrganizationNumber", "organization_number", "string",
          "nullif(regexp_replace({v}, '[^0-9]', '', 'g'), '')"),
        P("IsPerson", "is_person", "boolean", "lower(coalesce({v}, 'false'))", None),
        P("PhoneNumber", "phone", "string", PHONE),
        *_PO_ADDRESS,
    ),
)
POWEROFFICE_PRODUCT = View(
    "poweroffice", "products", "Product", "product", changed_field="LastChangedDateTimeOffset", id_field="Id",
    description="PowerOffice GO products (`/v2/Products`), one per SKU (`Code`).",
    props=(
        P("Code", "sku", "string"),
        P("Name", "name", "string"),
        P("Description", "variant_title", "string"),
        P("UnitPrice", "price_ex_vat", "decimal (ex. VAT)", DEC),
        P("UnitCost", "cost", "decimal", DEC),
        P("Gtin", "gtin", "string"),
        P("StockOnHand", "stock", "decimal", INT),
    ),
)
POWEROFFICE_SALESORDER = View(
    "poweroffice", "salesorders", "Salesorders", "order", changed_field="LastChangedDateTimeOffset", id_field="Id",
    description="PowerOffice GO sales orders with their lines.",
    props=(
        P("CustomerId", "customer", "integer (customer id)", ref("poweroffice-customers")),
        P("CurrencyCode", "currency", "string", UPPER),
        P("NetAmount", "net_amount", "decimal", DEC),
        P("TotalAmount", "total_amount", "decimal", DEC),
        P("PurchaseOrderReference", "po_number", "string"),
        P("SalesOrderDate", "order_date", "date", DATE),
        P("Lines", "lines", "list of SalesOrderLine",
          lines_read("Lines", "ProductCode", "Quantity", "TRY_CAST(l->>'$.ProductUnitPrice' AS DECIMAL(18,4))",
                     sku_fallback="Description"),
          lines_write("ProductCode", "Quantity", "ProductUnitPrice := l.unit_price_ex_vat"),
          on_update=False),  # GO changes lines through the line endpoints, not the order
    ),
)

# Squarespace -------------------------------------------------------------------------------------
SQUARESPACE_SESAMPRODUCTS = View(
    "squarespace", "products", "Sesamproducts", "product", flatten="variants", id_field="variants.id",
    changed_field="modifiedOn",
    description="One row per Squarespace product variant (variants flattened out of `products`).",
    props=(
        P("variants.sku", "sku", "string"),
        P("name", "name", "string",
          "nullif(trim(concat_ws(' ', {r}->>'$.name', {r}->>'$.variants.attributes.Variant')), '')", write=None),
        P("variants.attributes.Variant", "variant_title", "string"),
        P("description", "description", "string", write=None),
        P("variants.pricing.basePrice.value", "price_ex_vat", "decimal (string, incl. VAT)", INCL_TO_EX, EX_TO_INCL),
    ),
)
SQUARESPACE_INVENTORY = View(
    "squarespace", "inventory", "Inventory", "product", id_field="variantId", changed_field="",
    description="Squarespace stock per variant/SKU (`inventory`).",
    props=(
        P("sku", "sku", "string"),
        P("descriptor", "name", "string", write=None),
        P("quantity", "stock", "integer", INT),
    ),
)
SQUARESPACE_ORDER = View(
    "squarespace", "orders", "Order", "order", changed_field="modifiedOn",
    description="Squarespace orders (`orders`).",
    props=(
        P("customerEmail", "email", "string", EMAIL, on_update=False),
        P("grandTotal.currency", "currency", "string", UPPER, on_update=False),
        P("grandTotal.value", "total_amount", "decimal (string)", DEC, on_update=False),
        P("createdOn", "order_date", "datetime", DATE, write=None),
        P("lineItems", "lines", "list of line items",
          lines_read("lineItems", "sku", "quantity",
                     f"TRY_CAST(l->>'$.unitPricePaid.value' AS DECIMAL(18,4)) / {VAT}", sku_fallback="productName"),
          lines_write("sku", "quantity",
                      f"unitPricePaid := struct_pack(currency := 'NOK', value := CAST(round(l.unit_price_ex_vat * {VAT}, 2) AS DECIMAL(18,2))::VARCHAR)"),
          on_update=False),
    ),
)

# Custom CRM --------------------------------------------------------------------------------------
# A person's one `name` split into first and last name: the last name starts at a particle (van der,
# de la, bin...) that is not the first word, else it is the last word; one word is a first name.
# Newlines and tabs inside are kept. The merge uses the split only for a real edit of the name
# (see merge.py, "derived" properties); a name the sync joined from the parts never splits back.
_PARTICLES = ("van|von|der|den|de|del|della|di|da|dos|das|du|la|le|ter|ten|bin|binti|bint|ibn|al|el|af|zu")
_NAME_AT_PARTICLE = f"(?is)^(.*?\\S)\\s+((?:(?:{_PARTICLES})\\s+)+\\S.*)$"
_NAME_AT_LAST_WORD = "(?s)^(.*\\S)\\s+(\\S+)$"


def split_name(part: int) -> str:
    """SQL over `{v}`: part 1 (first name) or 2 (last name) of a whole name."""
    s = "regexp_replace({v}, '^\\s+|\\s+$', '', 'g')"
    whole = s if part == 1 else "NULL"
    return (f"nullif(CASE WHEN regexp_matches({s}, '{_NAME_AT_PARTICLE}') THEN regexp_extract({s}, '{_NAME_AT_PARTICLE}', {part}) "
            f"WHEN regexp_matches({s}, '{_NAME_AT_LAST_WORD}') THEN regexp_extract({s}, '{_NAME_AT_LAST_WORD}', {part}) "
            f"ELSE {whole} END, '')")


_IS_COMPANY = "coalesce({r}->>'$.customer_type', 'company') = 'company'"
# a person: said so, or (unknown) no organisation name
_PERSON = "coalesce({g.is_person} = 'true', {g.organization_name} IS NULL)"
CUSTOMCRM_CUSTOMER = View(
    "customcrm", "customers", "Customer", "customer",
    description="Custom CRM customers (companies and persons).",
    props=(
        P("email", "email", "string", EMAIL),
        P("name", "organization_name", "string", f"CASE WHEN {_IS_COMPANY} THEN nullif(trim({{v}}), '') END",
          "CASE WHEN " + _PERSON + " THEN nullif(trim(concat_ws(' ', {g.first_name}, {g.last_name})), '') "
          "ELSE coalesce({g.organization_name}, nullif(trim(concat_ws(' ', {g.first_name}, {g.last_name})), '')) END"),
        P("name", "first_name", "string", f"CASE WHEN NOT {_IS_COMPANY} THEN {split_name(1)} END", None),
        P("name", "last_name", "string", f"CASE WHEN NOT {_IS_COMPANY} THEN {split_name(2)} END", None),
        P("customer_type", "is_person", "string (company | person)",
          "CASE WHEN {v} = 'person' THEN 'true' WHEN {v} = 'company' THEN 'false' END",
          f"CASE WHEN {_PERSON} THEN 'person' ELSE 'company' END"),
        P("organization_number", "organization_number", "string", "nullif(regexp_replace({v}, '[^0-9]', '', 'g'), '')"),
        P("phone", "phone", "string", PHONE),
        P("website", "website", "string"),
        P("street_address1", "address_line1", "string"),
        P("street_address2", "address_line2", "string"),
        P("zip_code", "zip_code", "string"),
        P("city", "city", "string"),
        P("country", "country_code", "string", UPPER),
    ),
)
CUSTOMCRM_PRODUCT = View(
    "customcrm", "products", "Product", "product",
    description="Custom CRM products, one per SKU.",
    props=(
        P("sku", "sku", "string"),
        P("name", "name", "string"),
        P("description", "description", "string"),
        P("unit_price", "price_ex_vat", "decimal (string, ex. VAT)", DEC),
        P("cost_price", "cost", "decimal (string)", DEC),
        P("gtin", "gtin", "string"),
        P("stock_quantity", "stock", "integer", INT),
    ),
)
CUSTOMCRM_ORDER = View(
    "customcrm", "orders", "Order", "order",
    description="Custom CRM orders with their lines.",
    props=(
        P("customer_id", "customer", "integer (customer id)", ref("customcrm-customers")),
        P("user_id", "user", "integer (user id)", ref("customcrm-users")),
        P("currency", "currency", "string", UPPER),
        P("total_ex_vat", "net_amount", "decimal (string, computed from the lines)", DEC, write=None),
        P("total_incl_vat", "total_amount", "decimal (string, computed from the lines)", DEC, write=None),
        P("reference", "po_number", "string"),
        P("order_date", "order_date", "date", DATE),
        P("lines", "lines", "list of order lines",
          lines_read("lines", "sku", "quantity", "TRY_CAST(l->>'$.unit_price' AS DECIMAL(18,4))"),
          lines_write("sku", "quantity", "unit_price := l.unit_price_ex_vat::VARCHAR")),
    ),
)
CUSTOMCRM_USER = View(
    "customcrm", "users", "User", "user",
    description="Custom CRM users (the staff who own orders).",
    props=(
        P("id", "staff_number", "integer", INT, None),
        P("email", "email", "string", EMAIL),
        P("first_name", "first_name", "string"),
        P("last_name", "last_name", "string"),
        P("phone", "phone", "string", PHONE),
    ),
)

# Custom Webshop ----------------------------------------------------------------------------------
CUSTOMWEBSHOP_CUSTOMER = View(
    "customwebshop", "customers", "Customer", "customer",
    description="Custom Webshop customers.",
    props=(
        P("email", "email", "string", EMAIL),
        P("first_name", "first_name", "string"),
        P("last_name", "last_name", "string"),
        P("company", "organization_name", "string"),
        P("company", "is_person", "boolean (no company: a person)", NO_COMPANY, write=None),
        P("phone", "phone", "string", PHONE),
        P("billing_address.street", "address_line1", "string"),
        P("billing_address.street2", "address_line2", "string"),
        P("billing_address.postal_code", "zip_code", "string"),
        P("billing_address.city", "city", "string"),
        P("billing_address.country_code", "country_code", "string", UPPER),
    ),
)
CUSTOMWEBSHOP_PRODUCT = View(
    "customwebshop", "products", "Product", "product",
    description="Custom Webshop products, one per SKU (prices in øre, VAT included).",
    props=(
        P("sku", "sku", "string"),
        P("title", "name", "string"),
        P("description", "description", "string"),
        P("price", "price_ex_vat", "integer (minor units, incl. VAT)", MINOR_INCL_TO_EX, EX_TO_MINOR_INCL),
        P("gtin", "gtin", "string"),
        P("stock", "stock", "integer", INT),
    ),
)
CUSTOMWEBSHOP_ORDER = View(
    "customwebshop", "orders", "Order", "order",
    description="Custom Webshop orders (amounts in øre, VAT included).",
    props=(
        P("customer_id", "customer", "integer (customer id)", ref("customwebshop-customers")),
        P("email", "email", "string", EMAIL),
        P("currency", "currency", "string", UPPER),
        P("total", "total_amount", "integer (minor units, computed from the items)", MINOR_TO_DEC, write=None),
        P("placed_at", "order_date", "datetime", DATE, write=None),
        P("items", "lines", "list of order items",
          lines_read("items", "sku", "quantity", f"TRY_CAST(l->>'$.unit_price' AS DECIMAL(18,4)) / 100 / {VAT}"),
          lines_write("sku", "quantity",
                      f"unit_price := CAST(round(l.unit_price_ex_vat * {VAT} * 100) AS BIGINT)")),
    ),
)

VIEWS: tuple[View, ...] = (
    SHOPIFY_CUSTOMER, SHOPIFY_SESAMPRODUCT, SHOPIFY_ORDER, SHOPIFY_USER,
    POWEROFFICE_PERSON, POWEROFFICE_ORGANISATION, POWEROFFICE_PRODUCT, POWEROFFICE_SALESORDER,
    SQUARESPACE_SESAMPRODUCTS, SQUARESPACE_INVENTORY, SQUARESPACE_ORDER,
    CUSTOMCRM_CUSTOMER, CUSTOMCRM_PRODUCT, CUSTOMCRM_ORDER, CUSTOMCRM_USER,
    CUSTOMWEBSHOP_CUSTOMER, CUSTOMWEBSHOP_PRODUCT, CUSTOMWEBSHOP_ORDER,
)
VIEWS_BY_KEY = {v.vkey: v for v in VIEWS}


# -- the API entities the views are read from (one source asset and one collect asset each) -------
@dataclass(frozen=True)
class Source:
    system: str
    entity: str
    title: str
    id_field: str
    changed_field: str  # "" when the API keeps no change time (then: when we saw it change)
    version_field: str = ""  # what an update must still find to be allowed (default: changed_field)

    @property
    def version(self) -> str:
        return self.version_field or self.changed_field

    @property
    def key(self) -> str:
        return f"{self.system}.{self.entity}"

    @property
    def views(self) -> list[View]:
        return [v for v in VIEWS if v.system == self.system and v.entity == self.entity]


SOURCES: tuple[Source, ...] = (
    Source("shopify", "customer", "Customers", "id", "updated_at"),
    Source("shopify", "product", "Products (with variants)", "id", "updated_at"),
    Source("shopify", "order", "Orders", "id", "updated_at"),
    Source("poweroffice", "customers", "Customers", "Id", "LastChangedDateTimeOffset"),
    Source("poweroffice", "products", "Products", "Id", "LastChangedDateTimeOffset"),
    Source("poweroffice", "salesorders", "Sales orders", "Id", "LastChangedDateTimeOffset"),
    Source("squarespace", "products", "Products (with variants)", "id", "modifiedOn"),
    Source("squarespace", "inventory", "Inventory", "variantId", "", "quantity"),
    Source("squarespace", "orders", "Orders", "id", "modifiedOn"),
    Source("customcrm", "customers", "Customers", "id", "updated_at", "version"),
    Source("customcrm", "products", "Products", "id", "updated_at", "version"),
    Source("customcrm", "orders", "Orders", "id", "updated_at", "version"),
    Source("customcrm", "users", "Users", "id", "updated_at", "version"),
    Source("customwebshop", "customers", "Customers", "id", "updated_at", "version"),
    Source("customwebshop", "products", "Products", "id", "updated_at", "version"),
    Source("customwebshop", "orders", "Orders", "id", "updated_at", "version"),
)
SOURCES_BY_KEY = {s.key: s for s in SOURCES}


def source_of(view: View) -> Source:
    return SOURCES_BY_KEY[f"{view.system}.{view.entity}"]


# -- the 16 dataflows ------------------------------------------------------------------------------
LINK_MODES = ("merge-or-create", "always-insert", "merge-only", "create-if-referenced")


@dataclass(frozen=True)
class Dataflow:
    """One row of `shared/SYSTEMS.md`'s dataflow table: source view -> target view (two-way once linked)."""

    seed: str  # the seed document ("000".."004")
    source: View
    target: View
    link_mode: str = "merge-or-create"
    note: str = ""
    only: tuple[str, ...] = field(default=())  # restrict the property table to these global props

    def __post_init__(self) -> None:
        assert self.link_mode in LINK_MODES
        assert self.source.global_type == self.target.global_type or self.only, self

    @property
    def key(self) -> str:
        return f"{self.source.vkey}__to__{self.target.vkey}"

    def property_rows(self) -> list[tuple[Prop, Prop]]:
        """(source prop, target prop) for every global property both views map."""
        rows = []
        seen: set[tuple[str, str]] = set()
        for sp in self.source.props:
            if sp.read is None or (self.only and sp.prop not in self.only):
                continue
            for tp in self.target.props_for(sp.prop) if not self.only else self._target_for(sp):
                pair = (sp.field, tp.field)
                if pair not in seen:
                    seen.add(pair)
                    rows.append((sp, tp))
        return rows

    def _target_for(self, sp: Prop) -> list[Prop]:
        # a flow between different global types (User -> Order) maps the source entity itself
        # to the target's reference property named after the source type
        return [tp for tp in self.target.props if tp.prop == self.source.global_type] if sp.prop in self.only else []


DATAFLOWS: tuple[Dataflow, ...] = (
    Dataflow("000", CUSTOMCRM_ORDER, SHOPIFY_ORDER, "always-insert"),
    Dataflow("000", CUSTOMCRM_PRODUCT, SHOPIFY_SESAMPRODUCT),
    Dataflow("000", CUSTOMCRM_USER, SHOPIFY_ORDER, "create-if-referenced", only=("staff_number",),
             note="A Custom CRM user reaches Shopify as the `user_id` (staff member) of the orders they own."),
    Dataflow("001", CUSTOMWEBSHOP_CUSTOMER, CUSTOMCRM_CUSTOMER),
    Dataflow("001", CUSTOMWEBSHOP_ORDER, CUSTOMCRM_ORDER, "always-insert"),
    Dataflow("001", CUSTOMWEBSHOP_PRODUCT, CUSTOMCRM_PRODUCT),
    Dataflow("002", CUSTOMCRM_PRODUCT, SQUARESPACE_INVENTORY, "merge-only",
             note="Stock levels reach the Squarespace variants that carry the same SKU."),
    Dataflow("002", CUSTOMCRM_ORDER, SQUARESPACE_ORDER, "always-insert"),
    Dataflow("002", CUSTOMCRM_PRODUCT, SQUARESPACE_SESAMPRODUCTS),
    Dataflow("003", CUSTOMWEBSHOP_PRODUCT, SQUARESPACE_INVENTORY, "merge-only",
             note="Stock levels reach the Squarespace variants that carry the same SKU."),
    Dataflow("003", CUSTOMWEBSHOP_ORDER, SQUARESPACE_ORDER, "always-insert"),
    Dataflow("003", CUSTOMWEBSHOP_PRODUCT, SQUARESPACE_SESAMPRODUCTS),
    Dataflow("004", POWEROFFICE_PERSON, SHOPIFY_CUSTOMER),
    Dataflow("004", POWEROFFICE_ORGANISATION, SHOPIFY_CUSTOMER),
    Dataflow("004", POWEROFFICE_PRODUCT, SHOPIFY_SESAMPRODUCT),
    Dataflow("004", POWEROFFICE_SALESORDER, SHOPIFY_ORDER, "always-insert"),
)

SEED_TITLES = {
    "000": ("Customcrm", "Shopify"),
    "001": ("Customwebshop", "Customcrm"),
    "002": ("Custom CRM", "Squarespace"),
    "003": ("Custom Webshop", "Squarespace"),
    "004": ("PowerOffice GO", "Shopify"),
}


def views_of_type(global_type: str) -> list[View]:
    return [v for v in VIEWS if v.global_type == global_type]


def counterparts(view: View) -> list[tuple[Dataflow, View, bool]]:
    """Flows touching `view`: (flow, the other view, whether `view` is the flow's target)."""
    out = []
    for f in DATAFLOWS:
        if f.target is view:
            out.append((f, f.source, True))
        elif f.source is view:
            out.append((f, f.target, False))
    return out


def synced_props(view: View) -> list[str]:
    """Global properties of `view` that some dataflow carries to or from it."""
    names: list[str] = []
    for f, _other, _is_target in counterparts(view):
        for sp, tp in f.property_rows():
            for p in (sp, tp):
                if p in view.props and p.prop not in names:
                    names.append(p.prop)
    return names

# Global properties a new record needs (a create without them is rejected before any API call).
REQUIRED: dict[str, tuple[str, ...]] = {
    "customer": ("email",),
    "product": ("sku",),
    "order": ("lines",),
    "user": (),
}

# Records of one global type are the same thing when they share a value of one of these
# properties (transitively; SKUs compared without case). Orders have none: they are linked only by
# the sync itself.
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "customer": ("email", "organization_number"),
    "product": ("sku", "gtin"),
    "order": (),
    "user": ("staff_number",),
}
