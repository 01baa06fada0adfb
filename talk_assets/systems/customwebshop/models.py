"""Custom Webshop records. Money is an integer in minor units (øre), VAT included; tax_rate a percent."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from talk_assets.systems.customapi.types import (
    ApiRecord,
    Country,
    Currency,
    Email,
    SubRecord,
    Timestamp,
    read_only,
)


class Address(SubRecord):
    street: str | None = None
    street2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country_code: Country | None = None


class Customer(ApiRecord):
    email: Email
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    company: str | None = None
    billing_address: Address | None = None
    accepts_marketing: bool = False


class Product(ApiRecord):
    sku: str = Field(min_length=1)
    title: str = Field(min_length=1)
    description: str | None = None
    price: int = Field(ge=0, description="Minor units (øre), VAT included: 89900 = NOK 899.00.")
    tax_rate: float = Field(default=25.0, ge=0, le=100, description="VAT in percent.")
    currency: Currency = "NOK"
    gtin: str | None = None
    stock: int = 0
    status: Literal["active", "draft", "archived"] = "active"
    category: str | None = None


class OrderItem(SubRecord):
    product_id: int | None = None
    sku: str | None = None
    name: str | None = None
    quantity: int = Field(ge=1)
    unit_price: int = Field(ge=0, description="Minor units, VAT included.")


class Order(ApiRecord):
    number: str | None = Field(default=None, description='"WS-1001"; assigned by the server when omitted.')
    customer_id: int | None = None
    email: Email | None = None
    status: Literal["pending", "paid", "shipped", "cancelled"] = "pending"
    currency: Currency = "NOK"
    placed_at: Timestamp | None = None
    items: list[OrderItem] = Field(default_factory=list)
    total: int | None = read_only(description="Sum of the items in minor units, VAT included (server-computed).")
    shipping_address: Address | None = None
