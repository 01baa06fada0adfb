"""Pydantic models of Squarespace Commerce API 1.0 records, with the API's camelCase names.

Unknown fields are kept (`extra="allow"`) so a record read and written back loses nothing the
models do not know about; money stays a string as the API sends it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SqspModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Money(SqspModel):
    currency: str = "NOK"
    value: str = "0.00"


class Pricing(SqspModel):
    basePrice: Money
    onSale: bool = False
    salePrice: Money | None = None


class Stock(SqspModel):
    quantity: int = 0
    unlimited: bool = False


class Variant(SqspModel):
    id: str | None = None
    sku: str | None = None
    pricing: Pricing
    stock: Stock = Field(default_factory=Stock)
    attributes: dict[str, str] = Field(default_factory=dict)
    shippingMeasurements: dict[str, Any] | None = None


class Product(SqspModel):
    id: str | None = None
    type: str = "PHYSICAL"
    storePageId: str | None = None
    name: str | None = None
    description: str | None = None
    url: str | None = None
    urlSlug: str | None = None
    tags: list[str] = Field(default_factory=list)
    isVisible: bool = False
    variantAttributes: list[str] = Field(default_factory=list)
    variants: list[Variant] = Field(default_factory=list)
    images: list[dict[str, Any]] = Field(default_factory=list)
    createdOn: str | None = None
    modifiedOn: str | None = None


class StorePage(SqspModel):
    id: str
    title: str | None = None
    isEnabled: bool = True


class InventoryItem(SqspModel):
    variantId: str
    sku: str | None = None
    descriptor: str | None = None
    isUnlimited: bool = False
    quantity: int = 0


class QuantityOperation(SqspModel):
    variantId: str
    quantity: int


class InventoryAdjustment(SqspModel):
    """Body of POST inventory/adjustments; at most 50 operations, one per variant."""

    incrementOperations: list[QuantityOperation] = Field(default_factory=list)
    decrementOperations: list[QuantityOperation] = Field(default_factory=list)
    setFiniteOperations: list[QuantityOperation] = Field(default_factory=list)
    setUnlimitedOperations: list[str] = Field(default_factory=list)


class Address(SqspModel):
    firstName: str | None = None
    lastName: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    state: str | None = None
    countryCode: str | None = None
    postalCode: str | None = None
    phone: str | None = None


class VariantOption(SqspModel):
    optionName: str | None = None
    value: str | None = None


class LineItem(SqspModel):
    id: str | None = None
    variantId: str | None = None
    sku: str | None = None
    productId: str | None = None
    productName: str | None = None
    quantity: int
    unitPricePaid: Money
    variantOptions: list[VariantOption] = Field(default_factory=list)
    lineItemType: str | None = None


class Order(SqspModel):
    id: str
    orderNumber: str
    createdOn: str
    modifiedOn: str
    channel: str | None = None
    testmode: bool = False
    customerEmail: str | None = None
    billingAddress: Address | None = None
    shippingAddress: Address | None = None
    fulfillmentStatus: str
    lineItems: list[LineItem] = Field(default_factory=list)
    subtotal: Money | None = None
    shippingTotal: Money | None = None
    taxTotal: Money | None = None
    grandTotal: Money


class NewLineItem(SqspModel):
    """A line of an imported order: an existing product variant (the create-order docs: an order whose
    products do not exist in Squarespace results in an error, so there is no free-text line)."""

    lineItemType: str = "PHYSICAL_PRODUCT"
    variantId: str
    quantity: int
    unitPricePaid: Money


class OrderImport(SqspModel):
    """Body of POST orders (importing an order from another sales channel), with every field the
    create-order documentation marks Required (https://developers.squarespace.com/commerce-apis/create-order)."""

    channelName: str
    externalOrderReference: str
    createdOn: str
    customerEmail: str | None = None
    billingAddress: Address | None = None
    shippingAddress: Address | None = None
    lineItems: list[NewLineItem]
    priceTaxInterpretation: str = "INCLUSIVE"
    fulfillmentStatus: str = "PENDING"
    fulfilledOn: str | None = None
    fulfillments: list[dict[str, Any]] = Field(default_factory=list)
    inventoryBehavior: str = "SKIP"
    subtotal: Money
    shippingTotal: Money
    discountTotal: Money
    taxTotal: Money
    grandTotal: Money


class Pagination(SqspModel):
    hasNextPage: bool = False
    nextPageCursor: str | None = None
    nextPageUrl: str | None = None
