"""The library of conversions systems declare their fields with (part of the model: `model.Conversion`).

Each is typed: besides its read and write SQL it says the SQL type the read converts to (collect
rejects a value that does not convert), the JSON type written where it is not the field's declared
type, and the global type it references. The SQL text of each is what the engine has always run
(changing it changes every derived table's digest, so the state is rebuilt).
"""

from __future__ import annotations

from talk_assets.sync.model import TEXT, Conversion, View, record_field

__all__ = [
    "DATE", "DEC", "EMAIL", "INT", "MINOR_INCL_VAT", "MINOR_TO_DEC", "NO_COMPANY", "ORG_NUMBER", "PERCENT_RATE", "PHONE",
    "ORIGIN_PREFIX", "PRICE_CURRENCY", "PRICE_INCL_VAT", "RATE", "SAME", "STANDARD_VAT_RATE", "TEXT", "UPPER", "VAT",
    "lines", "origin", "own_origin", "price_incl_vat", "ref", "vat_rate_of_g",
]

# Norway's standard VAT rate (merverdiavgift, 25 %): used only where a system's data names no rate (the
# views say where: Squarespace's products and a webshop order's items carry none, Shopify tells only
# whether a variant is taxed). Each product's own rate is the global `vat_rate` (a fraction, "0.1500"),
# read from the CRM's `vat_rate` and the webshop's `tax_rate`.
STANDARD_VAT_RATE = "0.25"
VAT = "1.25"  # 1 + STANDARD_VAT_RATE
# The currency of the global product prices: the systems that keep no currency with a product's price
# (the Custom CRM, PowerOffice GO products) are in it. A price read in another currency is no value
# (never converted silently); a target store in another currency holds the write (`HeldBack`).
PRICE_CURRENCY = "NOK"
SAME = "{g}"  # the default write: the global value as it is

EMAIL = Conversion("nullif(lower(trim({v})), '')")
PHONE = Conversion(
    "nullif(CASE WHEN regexp_full_match(regexp_replace({v}, '[ \\-]', '', 'g'), '[0-9]{8}') "
    "THEN '+47' || regexp_replace({v}, '[ \\-]', '', 'g') ELSE regexp_replace({v}, '[ \\-]', '', 'g') END, '')"
)
DEC = Conversion("CAST(round(TRY_CAST({v} AS DECIMAL(18,4)), 2) AS DECIMAL(18,2))::VARCHAR", sql_type="DECIMAL(18,4)")
INT = Conversion("TRY_CAST(TRY_CAST({v} AS DOUBLE) AS BIGINT)::VARCHAR", sql_type="DOUBLE")
# a price stored including VAT, global ex. VAT
PRICE_INCL_VAT = Conversion(
    f"CAST(round(TRY_CAST({{v}} AS DECIMAL(18,4)) / {VAT}, 2) AS DECIMAL(18,2))::VARCHAR",
    f"CAST(round(TRY_CAST({{g}} AS DECIMAL(18,4)) * {VAT}, 2) AS DECIMAL(18,2))::VARCHAR",
    sql_type="DECIMAL(18,4)",
)


# a VAT rate as a fraction of the price ex. VAT ("0.25" = 25 %), canonical with four decimals
RATE = Conversion("CAST(round(TRY_CAST({v} AS DECIMAL(18,6)), 4) AS DECIMAL(18,4))::VARCHAR", sql_type="DECIMAL(18,6)")
# a VAT rate in percent (25.0), global as a fraction
PERCENT_RATE = Conversion(
    "CAST(round(TRY_CAST({v} AS DECIMAL(18,6)) / 100, 4) AS DECIMAL(18,4))::VARCHAR",
    "CAST(round(TRY_CAST({g} AS DECIMAL(18,6)) * 100, 2) AS DECIMAL(18,2))::VARCHAR",
    sql_type="DECIMAL(18,6)",
)


def vat_rate_of_g() -> str:
    """Write SQL: the product's own VAT rate (`{g.vat_rate}`), the standard rate when no system names one."""
    return f"coalesce(TRY_CAST({{g.vat_rate}} AS DECIMAL(18,6)), {STANDARD_VAT_RATE})"


def price_incl_vat(read_rate: str, write_rate: str, *, minor: bool = False, currency_field: str = "",
                   missing_currency: str | None = PRICE_CURRENCY, record_fields: tuple[str, ...] = (),
                   composed: bool = False) -> Conversion:
    """A price stored including VAT, global ex. VAT: read divided by 1 + `read_rate` (SQL over the record:
    its own rate, `record_fields` the fields it reads), written times 1 + `write_rate` (SQL over `{g...}`,
    `vat_rate_of_g`). `minor`: in minor units (øre). `currency_field`: a price in another currency than
    `PRICE_CURRENCY` reads as no value (no rate is known to convert it), so it never overwrites the global
    price; collect rejects only a price that is not a number, never the record of a price that is only in
    another currency. `missing_currency`: what a record without a currency is in, as its API documents it
    (our APIs: the default NOK); None where the API documents no price without one (Squarespace's Money
    always has its currency): such a price is no value. Read and write are inverse to the øre for the
    same rate, so a price written comes back equal. `composed`: the record names no rate (the read takes
    the standard one), so a price written at another rate would read back as another price: the read
    takes part in the merge only when the price was really edited there (`Conversion.composed`)."""
    scale = " / 100" if minor else ""
    read = (f"CAST(round(TRY_CAST({{v}} AS DECIMAL(18,4)){scale} / (1 + {read_rate}), 2) AS DECIMAL(18,2))::VARCHAR")
    fields = record_fields
    if currency_field:
        cur = record_field(currency_field)
        cur = f"coalesce({cur}, '{missing_currency}')" if missing_currency else cur
        read = f"CASE WHEN upper(trim({cur})) = '{PRICE_CURRENCY}' THEN {read} END"
        fields = (currency_field, *record_fields)
    write = (f"CAST(round(TRY_CAST({{g}} AS DECIMAL(18,4)) * (1 + {write_rate}) * 100) AS BIGINT)::VARCHAR" if minor
             else f"CAST(round(TRY_CAST({{g}} AS DECIMAL(18,4)) * (1 + {write_rate}), 2) AS DECIMAL(18,2))::VARCHAR")
    return Conversion(read, write, sql_type="DECIMAL(18,4)", record_fields=fields, composed=composed)


# a price in minor units (øre) including VAT
MINOR_INCL_VAT = Conversion(
    f"CAST(round(TRY_CAST({{v}} AS DECIMAL(18,4)) / 100 / {VAT}, 2) AS DECIMAL(18,2))::VARCHAR",
    f"CAST(round(TRY_CAST({{g}} AS DECIMAL(18,4)) * {VAT} * 100) AS BIGINT)::VARCHAR",
    sql_type="DECIMAL(18,4)",
)
# an amount in minor units (øre)
MINOR_TO_DEC = Conversion(
    "CAST(round(TRY_CAST({v} AS DECIMAL(18,4)) / 100, 2) AS DECIMAL(18,2))::VARCHAR",
    "CAST(round(TRY_CAST({g} AS DECIMAL(18,4)) * 100) AS BIGINT)::VARCHAR",
    sql_type="DECIMAL(18,4)",
)
DATE = Conversion("CAST(TRY_CAST({v} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS DATE)::VARCHAR", sql_type="TIMESTAMPTZ")
UPPER = Conversion("nullif(upper(trim({v})), '')")
# no company name: a person
NO_COMPANY = Conversion("CASE WHEN nullif(trim({v}), '') IS NULL THEN 'true' ELSE 'false' END", None)
ORG_NUMBER = Conversion("nullif(regexp_replace({v}, '[^0-9]', '', 'g'), '')")


def ref(view: View) -> Conversion:
    """A reference field: the referenced record's id, namespaced by `view` (whose global type it refers to)."""
    return Conversion(f"CASE WHEN nullif(trim({{v}}), '') IS NOT NULL THEN '{view.namespace}:' || trim({{v}}) END",
                      refers_to=view.global_type, namespace=view.namespace)


def lines(path: str, sku: str, qty: str, read_price: str, write_price: str, sku_fallback: str = "",
          record_fields: tuple[str, ...] = ()) -> Conversion:
    """Order lines: canonical JSON list of {sku, quantity, unit_price_ex_vat}, sorted by SKU; they refer
    to products by SKU.

    `read_price` is an SQL expression over `l` (one line as JSON) giving the unit price ex. VAT;
    `write_price` the target line's price field(s) as `struct_pack` arguments over `l.unit_price_ex_vat`;
    `sku_fallback` names the field that carries the SKU of a line without one (a custom line item);
    `record_fields` the order's own fields `read_price` uses (`record_field(path)`: its tax basis).
    """
    sku_expr = f"coalesce(nullif(l->>'$.{sku}', ''), l->>'$.{sku_fallback}')" if sku_fallback else f"l->>'$.{sku}'"
    read = (
        "to_json(list_sort(list_transform(json_extract({r}, '$." + path + "[*]'), lambda l: struct_pack("
        f"sku := trim({sku_expr}), quantity := TRY_CAST(l->>'$.{qty}' AS INTEGER), "
        f"unit_price_ex_vat := CAST(round({read_price}, 2) AS DECIMAL(18,2))))))::VARCHAR"
    )
    write = (
        "to_json(list_transform(from_json({g}, '[{\"sku\":\"VARCHAR\",\"quantity\":\"INTEGER\","
        "\"unit_price_ex_vat\":\"DECIMAL(18,2)\"}]'), lambda l: struct_pack("
        f"{sku} := l.sku, {qty} := l.quantity, {write_price})))::JSON"
    )
    return Conversion(read, write, json_type="list", refers_to="product", record_fields=record_fields)




# An order's origin: `talk:<namespace>:<id>` of the record it was first entered as (`talk:customcrm-orders:17`).
# The sync writes it into each order it creates (in the field the target's API documents for a
# reference to the order's source), so a copy names its origin without the state file: it is the
# global order property `origin`, a merge key. A copy of a copy names the first origin.
ORIGIN_PREFIX = "talk:"


def own_origin(namespace: str) -> Conversion:
    """The origin of an order read from its own id (`{v}`): a view with no reference field."""
    return Conversion(f"CASE WHEN nullif(trim({{v}}), '') IS NOT NULL THEN '{ORIGIN_PREFIX}{namespace}:' || trim({{v}}) END",
                      None)


def origin(namespace: str, id_field: str = "id") -> Conversion:
    """An order's origin, read from its reference field (`{v}`): the reference when it is one of ours
    (`talk:` prefix), else the record's own namespaced id (`namespace`, `id_field`), so a copy merges
    with its origin and an order whose field holds something else (a PO, another tool's id) is itself.
    Written as the global origin (on create only: declare the Prop with `on_update=False`)."""
    own = record_field(id_field)
    return Conversion(
        f"CASE WHEN starts_with(trim({{v}}), '{ORIGIN_PREFIX}') THEN trim({{v}}) "
        f"WHEN nullif(trim({own}), '') IS NOT NULL THEN '{ORIGIN_PREFIX}{namespace}:' || trim({own}) END",
        record_fields=(id_field,),
    )


# A person's whole name split in two (a CRM that keeps one `name`): the last name starts at the
# first particle (van der, de la, bin...) that is not the first word, else it is the last word; a
# single word is a first name. Newlines and tabs inside a name are kept; edge whitespace is not.
_PARTICLES = "van|von|der|den|de|del|della|di|da|dos|das|du|la|le|ter|ten|bin|binti|bint|ibn|al|el|af|zu"
_NAME_AT_PARTICLE = f"(?is)^(.*?\\S)\\s+((?:(?:{_PARTICLES})\\s+)+\\S.*)$"
_NAME_AT_LAST_WORD = "(?s)^(.*\\S)\\s+(\\S+)$"


def name_part(part: int) -> str:
    """SQL over `{v}`: part 1 (first name) or 2 (last name) of a whole name."""
    s = "regexp_replace({v}, '^\\s+|\\s+$', '', 'g')"
    whole = s if part == 1 else "NULL"
    return (f"nullif(CASE WHEN regexp_matches({s}, '{_NAME_AT_PARTICLE}') THEN regexp_extract({s}, '{_NAME_AT_PARTICLE}', {part}) "
            f"WHEN regexp_matches({s}, '{_NAME_AT_LAST_WORD}') THEN regexp_extract({s}, '{_NAME_AT_LAST_WORD}', {part}) "
            f"ELSE {whole} END, '')")


def without_label() -> str:
    """Write SQL over `{g}`: a variant's name without its own label (`{g.variant_title}`), the product
    title/name that systems keeping the label on the variant hold (Shopify `title`, Squarespace `name`).
    Shopify's placeholder label "Default Title" is no label. A name that does not end in the variant's
    label is not written (NULL: no write): read back it would gain the label and come back to the
    system it was edited in as another name, so the product title keeps its value and the docs say so."""
    label = "nullif(nullif({g.variant_title}, ''), 'Default Title')"
    return (f"CASE WHEN {label} IS NULL THEN {{g}} WHEN ends_with({{g}}, ' ' || {label}) "
            f"THEN nullif(rtrim(left({{g}}, length({{g}}) - length({label}) - 1)), '') END")
