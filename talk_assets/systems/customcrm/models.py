"""Custom CRM records (snake_case). Money is a decimal string ex. VAT ("719.20"), VAT a fraction ("0.25")."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from talk_assets.systems.customapi.types import (
    ApiRecord,
    Country,
    Currency,
    Email,
    Money,
    Rate,
    SubRecord,
    read_only,
)


class Customer(ApiRecord):
    name: str = Field(min_length=1)
    email: Email | None = None
    phone: str | None = None
    fax: str | None = None
    website: str | None = None
    description: str | None = None
    street_address1: str | None = None
    street_address2: str | None = None
    city: str | None = None
    zip_code: str | None = None
    country: Country | None = None
    organization_number: str | None = None
    customer_type: Literal["company", "person"] = "company"


class Contact(ApiRecord):
    customer_id: int
    first_name: str | None = None
    last_name: str = Field(min_length=1)
    email: Email | None = None
    phone: str | None = None
    title: str | None = None


class Product(ApiRecord):
    sku: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str | None = None
    unit_price: Money = Field(description="Price ex. VAT.")
    vat_rate: Rate = "0.25"
    cost_price: Money | None = None
    currency: Currency = "NOK"
    gtin: str | None = None
    stock_quantity: int = 0
    active: bool = True


class OrderLine(SubRecord):
    product_id: int | None = None
    sku: str | None = None
    description: str | None = None
    quantity: int = Field(ge=1)
    unit_price: Money = Field(description="Price ex. VAT.")
    vat_rate: Rate = "0.25"


class Order(ApiRecord):
    order_number: str | None = Field(default=None, description="Assigned by the server when omitted.")
    customer_id: int
    user_id: int | None = Field(default=None, description="The responsible sales rep (a user).")
    status: Literal["open", "completed", "cancelled"] = "open"
    currency: Currency = "NOK"
    order_date: date | None = None
    reference: str | None = Field(default=None, description="The customer's PO number.")
    external_reference: str | None = Field(
        default=None, max_length=200,
        description="The order's id in the system it was first entered in, set by the integration that created it "
                    "(talk-assets writes `talk:<system>-<entity>:<id>`), so a copy is recognised without its state.")
    note: str | None = None
    lines: list[OrderLine] = Field(default_factory=list)
    total_ex_vat: Money | None = read_only(description="Sum of the lines ex. VAT (server-computed).")
    total_incl_vat: Money | None = read_only(description="Sum of the lines incl. VAT (server-computed).")


class Quote(ApiRecord):
    quote_number: str | None = Field(default=None, description="Assigned by the server when omitted.")
    customer_id: int
    user_id: int | None = None
    status: Literal["draft", "sent", "accepted", "rejected"] = "draft"
    valid_until: date | None = None
    lines: list[OrderLine] = Field(default_factory=list)
    total_ex_vat: Money | None = read_only(description="Sum of the lines ex. VAT (server-computed).")


class User(ApiRecord):
    email: Email
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    role: str | None = None
    active: bool = True
