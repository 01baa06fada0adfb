"""Pydantic models of Shopify Admin REST records, with Shopify's own (snake_case) field names.

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


class StaffUser(ShopifyModel):
    """A staff member (REST User resource; GraphQL `StaffMember`): read-only, `read_users` scope, Plus/Advanced."""

    id: int | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    account_owner: bool | None = None
