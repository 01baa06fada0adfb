"""PowerOffice GO v2 records as pydantic models, with the API's PascalCase names.

Only the properties the sync reads or writes are declared; the rest of each DTO is kept
(`extra="allow"`), so a record read and written back loses nothing. Money is a JSON number in
this API (doubles), so it is `float` here, as sent.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class PoModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ContactAddress(PoModel):
    """`ContactAddressDto` (a customer's MailAddress)."""

    Id: int | None = None
    AddressLine1: str | None = None
    AddressLine2: str | None = None
    ZipCode: str | None = None
    City: str | None = None
    CountryCode: str | None = None
    LastChangedDateTimeOffset: datetime | None = None


class Customer(PoModel):
    """`CustomerDto`: a person (`IsPerson`) or an organisation."""

    Id: int | None = None
    Number: int | None = None
    Name: str | None = None
    FirstName: str | None = None
    LastName: str | None = None
    IsPerson: bool | None = None
    EmailAddress: str | None = None
    PhoneNumber: str | None = None
    OrganizationNumber: str | None = None
    MailAddress: ContactAddress | None = None
    CurrencyCode: str | None = None
    WebsiteUrl: str | None = None
    IsArchived: bool | None = None
    ExternalImportReference: str | None = None
    CustomerCreatedDateTimeOffset: datetime | None = None
    LastChangedDateTimeOffset: datetime | None = None


class Product(PoModel):
    """`ProductDto`: one sellable item (one Shopify variant); UnitPrice is ex. VAT. Its VAT follows its
    standard sales account (its own, else its product group's): the account's VAT code has the rate."""

    Id: int | None = None
    Code: str | None = None
    Name: str | None = None
    Description: str | None = None
    UnitPrice: float | None = None
    UnitCost: float | None = None
    ProductType: Literal["Product", "Service"] | None = None
    Gtin: str | None = None
    StockOnHand: float | None = None
    IsArchived: bool | None = None
    ProductGroupId: int | None = None
    StandardSalesAccountId: int | None = None
    StandardSalesAccount: int | None = None  # the account's number (readOnly)
    CreatedDateTimeOffset: datetime | None = None
    LastChangedDateTimeOffset: datetime | None = None


class ProductGroup(PoModel):
    """`ProductGroupDto`: its products inherit its sales accounts when they name none."""

    Id: int
    Code: str | None = None
    StandardSalesAccountId: int | None = None
    StandardSalesAccount: int | None = None


class GeneralLedgerAccount(PoModel):
    """`GeneralLedgerAccountDto`: a sales account carries the VAT code its sales are posted with."""

    Id: int
    AccountNo: int
    VatCodeId: int | None = None
    VatCode: str | None = None


class VatCode(PoModel):
    """`VatCodeDto`: a SAF-T (or custom `C...`) code and its rate, "a value between 0 and 1"."""

    Id: int
    Code: str | None = None
    Rate: float


class SalesOrderLine(PoModel):
    """`SalesOrderLineDto`; amounts are ex. VAT except TotalAmount."""

    Id: str | None = None
    SalesOrderId: str | None = None
    ProductId: int | None = None
    ProductCode: str | None = None
    Description: str | None = None
    Quantity: float | None = None
    ProductUnitPrice: float | None = None
    NetAmount: float | None = None
    VatRate: float | None = None
    VatAmount: float | None = None
    TotalAmount: float | None = None
    SortOrder: int | None = None


class SalesOrder(PoModel):
    """`SalesOrderDto` (no lines; they are at /SalesOrders/{id}/Lines)."""

    Id: str | None = None
    SalesOrderNo: int | None = None
    CustomerId: int | None = None
    CustomerNo: int | None = None
    CurrencyCode: str | None = None
    NetAmount: float | None = None
    TotalAmount: float | None = None
    PurchaseOrderReference: str | None = None
    SalesOrderDate: date | None = None
    SalesOrderStatus: Literal["Draft", "Confirmed"] | None = None
    LineCount: int | None = None
    LastChangedDateTimeOffset: datetime | None = None


class SalesOrderComplete(SalesOrder):
    """`SalesOrderCompleteDto`: an order with its lines (what POST /SalesOrders/Complete returns)."""

    SalesOrderLines: list[SalesOrderLine] | None = None


class PatchOperation(PoModel):
    """One JSON Patch `Operation`."""

    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: str
    value: Any = None
    from_: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True,
                              alias_generator=lambda n: "from" if n == "from_" else n)


class ProblemDetails(PoModel):
    """An error body (RFC 7807), with the schema's properties only: no field-keyed `errors` map."""

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None


class Token(PoModel):
    access_token: str
    token_type: str
    expires_in: int
