"""The records the sync reads from Shopify (Shopify's REST field names), and their making from GraphQL answers.

Money stays a string as Shopify sends it ("899.00"), so no rounding happens between read and write;
unknown fields are kept (`extra="allow"`), so a newer API version's fields survive a round trip.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ShopifyModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Address(ShopifyModel):
    id: int | None = None
    customer_id: int | None = None
    first_name: str | None = None
    last_name: str | None = None
    name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province: str | None = None
    province_code: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    country_name: str | None = None
    phone: str | None = None
    default: bool | None = None


class Customer(ShopifyModel):
    id: int | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    note: str | None = None
    tags: str = ""
    state: str | None = None
    verified_email: bool | None = None
    currency: str | None = None
    default_address: Address | None = None
    addresses: list[Address] = []
    created_at: str | None = None
    updated_at: str | None = None


class Variant(ShopifyModel):
    id: int | None = None
    product_id: int | None = None
    title: str | None = None
    sku: str | None = None
    price: str | None = None
    compare_at_price: str | None = None
    barcode: str | None = None
    taxable: bool | None = None  # whether a tax is charged (Shopify names no rate per variant)
    price_currency: str | None = None  # the shop's currency, which `price` is in (added by the client)
    option1: str | None = None
    option2: str | None = None
    option3: str | None = None
    position: int | None = None
    inventory_item_id: int | None = None
    inventory_quantity: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class ProductOption(ShopifyModel):
    id: int | None = None
    product_id: int | None = None
    name: str | None = None
    position: int | None = None
    values: list[str] = []


class Product(ShopifyModel):
    id: int | None = None
    title: str | None = None
    body_html: str | None = None
    vendor: str | None = None
    product_type: str | None = None
    handle: str | None = None
    status: str | None = None
    tags: str = ""
    variants: list[Variant] = []
    options: list[ProductOption] = []
    created_at: str | None = None
    updated_at: str | None = None


class TaxLine(ShopifyModel):
    price: str | None = None
    rate: float | None = None
    title: str | None = None


class LineItem(ShopifyModel):
    id: int | None = None
    variant_id: int | None = None
    product_id: int | None = None
    sku: str | None = None
    title: str | None = None
    variant_title: str | None = None
    quantity: int = 1
    price: str | None = None
    tax_lines: list[TaxLine] = []


class OrderCustomer(ShopifyModel):
    id: int | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class Order(ShopifyModel):
    id: int | None = None
    name: str | None = None
    order_number: int | None = None
    email: str | None = None
    currency: str | None = None
    total_price: str | None = None
    subtotal_price: str | None = None
    total_tax: str | None = None
    taxes_included: bool | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None
    po_number: str | None = None
    source_identifier: str | None = None  # the order's id on its originating platform
    note: str | None = None
    tags: str = ""
    user_id: int | None = None
    customer: OrderCustomer | None = None
    line_items: list[LineItem] = []
    billing_address: dict[str, Any] | None = None
    shipping_address: dict[str, Any] | None = None
    created_at: str | None = None
    processed_at: str | None = None  # the order's date as the shop shows it (set to the original's on import)
    updated_at: str | None = None
    closed_at: str | None = None
    cancelled_at: str | None = None


class Location(ShopifyModel):
    id: int
    name: str | None = None
    address1: str | None = None
    city: str | None = None
    zip: str | None = None
    country_code: str | None = None
    active: bool | None = None


class InventoryLevel(ShopifyModel):
    inventory_item_id: int
    location_id: int
    available: int | None = None
    updated_at: str | None = None


# -- GraphQL answers -> the records the sync reads ------------------------------------------------
# The client reads Shopify through the GraphQL Admin API (2026-07) and hands the sync the same record
# shape it has always read (Shopify's REST field names, numeric ids), so the views, merge keys and
# stored raw records do not change with the transport. `admin_graphql_api_id` keeps the node id.

def gid_number(gid: Any) -> int | None:
    """`gid://shopify/Customer/123` (or `…/MailingAddress/5?model_name=CustomerAddress`) -> 123."""
    if gid is None:
        return None
    tail = str(gid).rsplit("/", 1)[-1].split("?", 1)[0]
    return int(tail) if tail.isdigit() else None


def gid(kind: str, number: Any) -> str:
    """123 -> `gid://shopify/<kind>/123`; an id that is already a gid is returned unchanged."""
    text = str(number)
    return text if text.startswith("gid://") else f"gid://shopify/{kind}/{int(text)}"


def _legacy(node: dict[str, Any]) -> int | None:
    value = node.get("legacyResourceId")
    return int(value) if value not in (None, "") else gid_number(node.get("id"))


def money(amount: Any) -> str | None:
    """A GraphQL `Decimal` amount ("899.0") as REST wrote money ("899.00"): at least two decimals."""
    if amount is None:
        return None
    text = str(amount)
    whole, _, frac = text.partition(".")
    return f"{whole}.{(frac + '00')[:max(2, len(frac))]}"


def _shop_money(bag: dict[str, Any] | None) -> str | None:
    return money(((bag or {}).get("shopMoney") or {}).get("amount"))


def _tags(tags: Any) -> str:
    return ", ".join(tags) if isinstance(tags, list) else str(tags or "")


def _nodes(conn: Any) -> list[dict[str, Any]]:
    if not conn:
        return []
    if "nodes" in conn:
        return list(conn["nodes"])
    return [e["node"] for e in conn.get("edges", [])]


def address_record(a: dict[str, Any] | None) -> dict[str, Any] | None:
    if not a:
        return None
    return {"id": gid_number(a.get("id")), "admin_graphql_api_id": a.get("id"), "first_name": a.get("firstName"),
            "last_name": a.get("lastName"), "name": a.get("name"), "company": a.get("company"),
            "address1": a.get("address1"), "address2": a.get("address2"), "city": a.get("city"),
            "province": a.get("province"), "province_code": a.get("provinceCode"), "zip": a.get("zip"),
            "country_code": a.get("countryCodeV2"), "phone": a.get("phone"), "default": True}


def customer_record(n: dict[str, Any]) -> dict[str, Any]:
    address = address_record(n.get("defaultAddress"))
    if address is not None:
        address["customer_id"] = _legacy(n)
    return {
        "id": _legacy(n), "admin_graphql_api_id": n.get("id"),
        "email": (n.get("defaultEmailAddress") or {}).get("emailAddress"),
        "first_name": n.get("firstName"), "last_name": n.get("lastName"),
        "phone": (n.get("defaultPhoneNumber") or {}).get("phoneNumber"), "note": n.get("note"),
        "tags": _tags(n.get("tags")), "state": (n.get("state") or "").lower() or None,
        "verified_email": n.get("verifiedEmail"), "default_address": address,
        "addresses": [address] if address else [], "created_at": n.get("createdAt"), "updated_at": n.get("updatedAt"),
    }


def variant_record(v: dict[str, Any], product_id: int | None, currency: str | None = None) -> dict[str, Any]:
    """A variant, REST-shaped; `price_currency` is the shop's currency (`Shop.currencyCode`), which
    ProductVariant.price is in ("the price of the product variant in the default shop currency")."""
    options = [o.get("value") for o in v.get("selectedOptions") or []]
    item = v.get("inventoryItem") or {}
    return {
        "id": _legacy(v), "admin_graphql_api_id": v.get("id"), "product_id": product_id, "title": v.get("title"),
        "sku": v.get("sku") or None, "price": money(v.get("price")), "price_currency": currency,
        "compare_at_price": money(v.get("compareAtPrice")),
        "barcode": v.get("barcode") or None, "position": v.get("position"), "taxable": v.get("taxable"),
        "option1": options[0] if options else None, "option2": options[1] if len(options) > 1 else None,
        "option3": options[2] if len(options) > 2 else None,
        "inventory_item_id": _legacy(item) if item else None, "inventory_quantity": v.get("inventoryQuantity"),
        "created_at": v.get("createdAt"), "updated_at": v.get("updatedAt"),
    }


def product_record(n: dict[str, Any], variants: list[dict[str, Any]] | None = None,
                   currency: str | None = None) -> dict[str, Any]:
    pid = _legacy(n)
    nodes = variants if variants is not None else _nodes(n.get("variants"))
    return {
        "id": pid, "admin_graphql_api_id": n.get("id"), "title": n.get("title"), "body_html": n.get("descriptionHtml"),
        "status": (n.get("status") or "").lower() or None, "tags": _tags(n.get("tags")),
        "variants": [variant_record(v, pid, currency) for v in nodes],
        "options": [{"id": gid_number(o.get("id")), "admin_graphql_api_id": o.get("id"), "product_id": pid,
                     "name": o.get("name"), "position": o.get("position"), "values": o.get("values") or []}
                    for o in n.get("options") or []],
        "created_at": n.get("createdAt"), "updated_at": n.get("updatedAt"),
    }


def line_item_record(li: dict[str, Any]) -> dict[str, Any]:
    return {"id": gid_number(li.get("id")), "admin_graphql_api_id": li.get("id"),
            "variant_id": _legacy(li["variant"]) if li.get("variant") else None,
            "product_id": _legacy(li["product"]) if li.get("product") else None,
            "sku": li.get("sku") or None, "title": li.get("title"), "variant_title": li.get("variantTitle"),
            "quantity": li.get("quantity"), "price": _shop_money(li.get("originalUnitPriceSet"))}


def order_record(n: dict[str, Any], lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    c = n.get("customer")
    staff = n.get("staffMember")
    nodes = lines if lines is not None else _nodes(n.get("lineItems"))
    return {
        "id": _legacy(n), "admin_graphql_api_id": n.get("id"), "name": n.get("name"), "email": n.get("email"),
        "currency": n.get("currencyCode"), "total_price": _shop_money(n.get("totalPriceSet")),
        "subtotal_price": _shop_money(n.get("subtotalPriceSet")), "total_tax": _shop_money(n.get("totalTaxSet")),
        "taxes_included": n.get("taxesIncluded"),
        "financial_status": (n.get("displayFinancialStatus") or "").lower() or None,
        "fulfillment_status": (n.get("displayFulfillmentStatus") or "").lower() or None,
        "po_number": n.get("poNumber"), "source_identifier": n.get("sourceIdentifier"),
        "source_name": n.get("sourceName"), "note": n.get("note"), "tags": _tags(n.get("tags")),
        "user_id": gid_number(staff.get("id")) if staff else None,
        "customer": None if not c else {"id": _legacy(c), "email": (c.get("defaultEmailAddress") or {}).get("emailAddress"),
                                        "first_name": c.get("firstName"), "last_name": c.get("lastName")},
        "line_items": [line_item_record(li) for li in nodes],
        "created_at": n.get("createdAt"), "processed_at": n.get("processedAt"), "updated_at": n.get("updatedAt"),
        "closed_at": n.get("closedAt"), "cancelled_at": n.get("cancelledAt"),
    }


def inventory_level_record(n: dict[str, Any]) -> dict[str, Any]:
    available = next((q["quantity"] for q in n.get("quantities") or [] if q.get("name") == "available"), None)
    return {"inventory_item_id": _legacy(n["item"]), "location_id": _legacy(n["location"]),
            "available": available, "updated_at": n.get("updatedAt"), "admin_graphql_api_id": n.get("id")}


def location_record(n: dict[str, Any]) -> dict[str, Any]:
    a = n.get("address") or {}
    return {"id": _legacy(n), "admin_graphql_api_id": n.get("id"), "name": n.get("name"),
            "address1": a.get("address1"), "city": a.get("city"), "zip": a.get("zip"),
            "country_code": a.get("countryCode"), "active": n.get("isActive")}


def staff_record(n: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL `StaffMember` as the REST User record the USER view reads."""
    return {"id": _legacy(n), "admin_graphql_api_id": n.get("id"), "email": n.get("email") or None,
            "first_name": n.get("firstName"), "last_name": n.get("lastName"), "phone": n.get("phone") or None,
            "account_owner": n.get("isShopOwner"), "active": n.get("active")}


class StaffUser(ShopifyModel):
    """A staff member (REST User resource; GraphQL `StaffMember`): read-only, `read_users` scope, Plus/Advanced."""

    id: int | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    account_owner: bool | None = None
