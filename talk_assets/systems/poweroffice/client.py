"""Typed client for PowerOffice GO API v2 (Customers, Products, SalesOrders).

PowerOffice needs two credentials on every call: a bearer token from the client-credentials
token endpoint (about 20 minutes) and the `Ocp-Apim-Subscription-Key` header. The token is
cached and renewed shortly before it expires, and once more on a 401 (the server's clock or a
revoked token can end it early). Lists are paged with `PageNumber` until a short page or
`204 No Content`; updates are JSON Patch documents of `replace` operations.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from talk_assets.core.http import ApiClient, ApiError, Pacer, RetryPolicy
from talk_assets.sync.model import paged_probe_part
from talk_assets.systems.poweroffice.info import INFO as POWEROFFICE
from talk_assets.systems.poweroffice.models import (
    Customer,
    GeneralLedgerAccount,
    Product,
    ProductGroup,
    SalesOrder,
    SalesOrderComplete,
    SalesOrderLine,
    Token,
    VatCode,
)

log = logging.getLogger("talk_assets.poweroffice")

DEFAULT_PAGE_SIZE = 5000
MAX_PAGE_SIZE = 20000
PATCH_CONTENT_TYPE = "application/json-patch+json"
# entity -> (collection path, model); the uniform interface's names
ENTITIES: dict[str, tuple[str, type[Any]]] = {
    "customers": ("Customers", Customer),
    "products": ("Products", Product),
    "salesorders": ("SalesOrders", SalesOrder),
}
READ_ONLY = frozenset({
    "Id", "LastChangedDateTimeOffset", "CreatedDateTimeOffset", "CustomerCreatedDateTimeOffset",
    "ContactCreatedDateTimeOffset", "IsActive", "StockAvailable", "StockOnHandLastChangedDatetimeOffset",
    "NetAmount", "TotalAmount", "LineCount", "IsCreatedByCurrentIntegration", "SalesOrderId", "VatAmount",
    "VatRate", "VatCode", "SubledgerAccountId", "StandardSalesAccount", "OptionalSalesAccount", "ProductGroupCode",
})
# Added to each product record by this client (not a PowerOffice field): the rate of the VAT code of the
# product's standard sales account, its own or else its product group's (a fraction, 0.15), or null when
# neither names one (then the client's general sales settings decide, which the v2 API does not expose) or
# the integration may not read accounts. PowerOffice's ProductDto names no rate; its documentation:
# ProductDto.StandardSalesAccount "is the default account the sale will be posted to ... If null, the
# product will inherit the standard sales account from the product group or the general sales settings on
# the client (in that order)"; GeneralLedgerAccountDto.VatCode "The VAT code associated with the account";
# VatCodeDto.Rate "a value between 0 and 1"; SalesOrderLineDto.VatCode "is inherited from the sales account
# used for the product" (openapi.yaml, openapi-vat.yaml: PowerOffice GO's v2 Swagger).
VAT_RATE_FIELD = "StandardSalesAccountVatRate"


@dataclass
class SalesVat:
    """What a product's VAT follows, read once per collect: product groups, sales accounts, VAT codes."""

    groups: dict[int, ProductGroup] = field(default_factory=dict)
    accounts: dict[int, GeneralLedgerAccount] = field(default_factory=dict)
    codes: dict[int, VatCode] = field(default_factory=dict)
    unreadable: str = ""  # why nothing could be read (an integration without the accounts' auth role)

    def account_of(self, product: dict[str, Any]) -> GeneralLedgerAccount | None:
        """The product's standard sales account: its own (by id, else by number), else its group's."""
        by_no = {a.AccountNo: a for a in self.accounts.values()}
        for holder in (product, self.groups.get(product.get("ProductGroupId") or -1)):
            if holder is None:
                continue
            get = holder.get if isinstance(holder, dict) else lambda k, h=holder: getattr(h, k, None)
            if get("StandardSalesAccountId") is not None:
                return self.accounts.get(get("StandardSalesAccountId"))
            if get("StandardSalesAccount") is not None:
                return by_no.get(get("StandardSalesAccount"))
        return None

    def rate(self, product: dict[str, Any]) -> float | None:
        """The rate of the product's sales VAT code; None when it cannot be told from the API's data."""
        acc = self.account_of(product)
        if acc is None:
            return None
        code = self.codes.get(acc.VatCodeId) if acc.VatCodeId is not None else None
        if code is None and acc.VatCode:
            code = next((c for c in self.codes.values() if c.Code == acc.VatCode), None)
        return None if code is None else code.Rate


def parse_error(body: Any, resp: requests.Response) -> tuple[str, str | None] | None:
    """Message and field from ProblemDetails (either casing), Azure APIM or OAuth error bodies. The
    schema's ProblemDetails has no `errors` map; one is read if an answer carries it (ASP.NET's
    validation problems do), never relied on."""
    if not isinstance(body, dict):
        return str(body)[:300], None
    low = {k.lower(): v for k, v in body.items()}
    field = None
    errors = low.get("errors")
    if isinstance(errors, dict) and errors:
        field = next(iter(errors))
    detail, title = low.get("detail"), low.get("title")
    if detail or title:
        msg = f"{title}: {detail}" if title and detail else str(detail or title)
    elif low.get("message"):
        msg = str(low["message"])  # Azure API Management (subscription key, throttling)
    elif low.get("error"):
        msg = f"{low['error']}: {low.get('error_description') or ''}".rstrip(": ")  # OAuth token endpoint
    else:
        msg = str(body)[:300]
    return msg, field


def patch_document(changes: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """{"Name": "x", "MailAddress": {"City": "Oslo"}} -> replace ops on /Name and /MailAddress/City.

    Nested objects become one op per leaf so the object's other properties (and its Id) stay.
    """
    ops: list[dict[str, Any]] = []
    for key, value in changes.items():
        path = f"{prefix}/{str(key).replace('~', '~0').replace('/', '~1')}"
        if isinstance(value, dict):
            ops.extend(patch_document(value, path))
        else:
            ops.append({"op": "replace", "path": path, "value": value})
    return ops


def offset(dt: datetime) -> str:
    """A DateTimeOffset for a query string (naive datetimes are taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_ts(value: Any) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Client(ApiClient):
    """PowerOffice GO v2: token handling, paging, typed methods and the uniform interface."""

    system = "poweroffice"
    entities = tuple(ENTITIES)

    def __init__(
        self,
        url: str,
        app_key: str,
        client_key: str,
        subscription_key: str,
        *,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.origin = url.rstrip("/")
        super().__init__(
            f"{self.origin}/v2",
            timeout=timeout,
            retry=retry,
            pacer=pacer or Pacer(min_interval=0.105),  # 10 requests/s per subscription key
            secrets=[app_key, client_key, subscription_key],
            error_parser=parse_error,
        )
        self._basic = "Basic " + base64.b64encode(f"{app_key}:{client_key}".encode()).decode()
        self._subscription_key = subscription_key
        self._token: str | None = None
        self._token_renew_at = 0.0
        self._token_lock = threading.RLock()
        self._local = threading.local()
        self.token_fetches = 0

    @classmethod
    def from_env(cls, **kw: Any) -> Client:
        """From TALK_POWEROFFICE_* environment variables, defaulting to the local sandbox."""
        c = POWEROFFICE
        return cls(c.url(), c.value("app_key"), c.value("client_key"), c.value("subscription_key"), **kw)

    # -- auth -----------------------------------------------------------------------------------
    def prepare(self, headers: dict[str, str]) -> None:
        headers["Ocp-Apim-Subscription-Key"] = self._subscription_key
        if "Authorization" not in headers:  # the token request brings its own Basic header
            headers["Authorization"] = f"Bearer {self.access_token()}"

    def on_unauthorized(self) -> bool:
        if getattr(self._local, "in_token", False):
            return False  # the token endpoint itself refused: the keys are wrong, retrying won't help
        with self._token_lock:
            self._token = None
            self.access_token()
        return True

    def access_token(self) -> str:
        """The cached bearer token, fetched anew when missing or about to expire."""
        with self._token_lock:
            if self._token and time.monotonic() < self._token_renew_at:
                return self._token
            self._local.in_token = True
            try:
                resp = self.request(
                    "POST", f"{self.origin}/OAuth/Token", data={"grant_type": "client_credentials"},
                    headers={"Authorization": self._basic}, idempotent=True,
                )
            finally:
                self._local.in_token = False
            tok = Token.model_validate(resp.json())
            self.token_fetches += 1
            # Renew a minute early (or at 90% of a short lifetime) so no call carries a dying token.
            margin = min(60.0, tok.expires_in * 0.1)
            self._token = tok.access_token
            self._token_renew_at = time.monotonic() + tok.expires_in - margin
            self._secrets.append(tok.access_token)
            return tok.access_token

    # -- low-level helpers ----------------------------------------------------------------------
    def iter_pages(self, path: str, params: dict[str, Any] | None = None,
                   page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, page by page, until a short page or 204."""
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        page = 1
        while True:
            resp = self.request("GET", path, params={**(params or {}), "PageNumber": page, "PageSize": size})
            if resp.status_code == 204 or not resp.content:
                return
            items = resp.json()
            yield from items
            if len(items) < size:
                return
            page += 1

    def _get_one(self, path: str) -> dict[str, Any] | None:
        resp = self.request("GET", path, ok=(404,))
        return None if resp.status_code == 404 else resp.json()

    def _patch(self, path: str, changes: dict[str, Any]) -> dict[str, Any]:
        ops = patch_document(changes)
        # Only `replace` operations: repeating the request gives the same result, so it may retry.
        resp = self.request("PATCH", path, data=json.dumps(ops).encode(),
                            headers={"Content-Type": PATCH_CONTENT_TYPE}, idempotent=True)
        return resp.json()

    @staticmethod
    def _body(data: Any) -> dict[str, Any]:
        if hasattr(data, "model_dump"):
            data = data.model_dump(mode="json", exclude_none=True, by_alias=True)
        return {k: v for k, v in dict(data).items() if k not in READ_ONLY}

    @staticmethod
    def _filters(since: datetime | None, **filters: Any) -> dict[str, Any]:
        params = {k: v for k, v in filters.items() if v is not None}
        if since is not None:
            params["lastChangedDateTimeOffsetGreaterThan"] = offset(since)
        return params

    # -- customers ------------------------------------------------------------------------------
    def customers(self, since: datetime | None = None, *, page_size: int | None = None,
                  customer_nos: str | None = None, external_import_reference: str | None = None,
                  ) -> Iterator[Customer]:
        params = self._filters(since, customerNos=customer_nos, externalImportReference=external_import_reference)
        for item in self.iter_pages("Customers", params, page_size):
            yield Customer.model_validate(item)

    def get_customer(self, customer_id: int) -> Customer | None:
        item = self._get_one(f"Customers/{int(customer_id)}")
        return None if item is None else Customer.model_validate(item)

    def create_customer(self, data: dict[str, Any] | Customer) -> Customer:
        return Customer.model_validate(self.request("POST", "Customers", json=self._body(data)).json())

    def update_customer(self, customer_id: int, changes: dict[str, Any]) -> Customer:
        return Customer.model_validate(self._patch(f"Customers/{int(customer_id)}", changes))

    # -- products -------------------------------------------------------------------------------
    def products(self, since: datetime | None = None, *, page_size: int | None = None,
                 codes: list[str] | None = None) -> Iterator[Product]:
        params = self._filters(since, codes=",".join(codes) if codes else None)
        for item in self.iter_pages("Products", params, page_size):
            yield Product.model_validate(item)

    def sales_vat(self) -> SalesVat:
        """Product groups, sales accounts and VAT codes (`GET /ProductGroups`, `/GeneralLedgerAccounts`,
        `/VatCodes`; auth roles Product, GeneralLedgerAccount, CommonServices). An integration without
        one of those roles gets 403: then no product's rate is known (the sync uses the standard rate), the
        products are still read, and the reason is logged."""
        try:
            return SalesVat(
                groups={g.Id: g for g in (ProductGroup.model_validate(x) for x in self.iter_pages("ProductGroups"))},
                accounts={a.Id: a for a in (GeneralLedgerAccount.model_validate(x)
                                            for x in self.iter_pages("GeneralLedgerAccounts"))},
                codes={c.Id: c for c in (VatCode.model_validate(x) for x in self.iter_pages("VatCodes"))})
        except ApiError as err:
            if err.status != 403:
                raise
            why = (f"{err.endpoint}: HTTP 403: the integration may not read it, so products' VAT rates are not "
                   "known (the standard rate is used); grant the GeneralLedgerAccount, Product and "
                   "CommonServices roles")
            log.warning("poweroffice: %s", why)
            return SalesVat(unreadable=why)

    def with_vat_rate(self, record: dict[str, Any], vat: SalesVat) -> dict[str, Any]:
        """`record` (a product) with `VAT_RATE_FIELD` added."""
        rate = vat.rate(record)
        record[VAT_RATE_FIELD] = None if rate is None else round(float(rate), 6)
        return record

    def get_product(self, product_id: int) -> Product | None:
        item = self._get_one(f"Products/{int(product_id)}")
        return None if item is None else Product.model_validate(item)

    def create_product(self, data: dict[str, Any] | Product) -> Product:
        return Product.model_validate(self.request("POST", "Products", json=self._body(data)).json())

    def update_product(self, product_id: int, changes: dict[str, Any]) -> Product:
        return Product.model_validate(self._patch(f"Products/{int(product_id)}", changes))

    # -- sales orders ---------------------------------------------------------------------------
    def sales_orders(self, since: datetime | None = None, *, page_size: int | None = None,
                     customer_nos: str | None = None, order_status: str | None = None) -> Iterator[SalesOrder]:
        params = self._filters(since, customerNos=customer_nos, orderStatus=order_status)
        for item in self.iter_pages("SalesOrders", params, page_size):
            yield SalesOrder.model_validate(item)

    def get_sales_order(self, order_id: str) -> SalesOrder | None:
        item = self._get_one(f"SalesOrders/{order_id}")
        return None if item is None else SalesOrder.model_validate(item)

    def get_sales_order_complete(self, order_id: str) -> SalesOrderComplete | None:
        item = self._get_one(f"SalesOrders/{order_id}/Complete")
        return None if item is None else SalesOrderComplete.model_validate(item)

    def sales_order_lines(self, order_id: str) -> list[SalesOrderLine]:
        return [SalesOrderLine.model_validate(x) for x in self.iter_pages(f"SalesOrders/{order_id}/Lines")]

    def create_sales_order_complete(self, data: dict[str, Any] | SalesOrderComplete) -> SalesOrderComplete:
        """Create an order with its lines in one call (`SalesOrderLines`: list of line dicts)."""
        body = self._body(data)
        if body.get("SalesOrderLines"):
            body["SalesOrderLines"] = [self._body(x) for x in body["SalesOrderLines"]]
        return SalesOrderComplete.model_validate(self.request("POST", "SalesOrders/Complete", json=body).json())

    def update_sales_order(self, order_id: str, changes: dict[str, Any]) -> SalesOrder:
        return SalesOrder.model_validate(self._patch(f"SalesOrders/{order_id}", changes))

    # -- the uniform interface ------------------------------------------------------------------
    def _entity(self, entity: str) -> str:
        if entity not in ENTITIES:
            raise ValueError(f"unknown poweroffice entity {entity!r}; expected one of {', '.join(ENTITIES)}")
        return ENTITIES[entity][0]

    def iter_records(self, entity: str, since: datetime | None = None,
                     page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Raw records, all pages; sales orders carry their lines under "Lines" (one call per order)."""
        path = self._entity(entity)
        vat: SalesVat | None = None  # read with the first product, so a read of no changes costs nothing more
        for rec in self.iter_pages(path, self._filters(since), page_size):
            if entity == "salesorders":
                rec["Lines"] = list(self.iter_pages(f"SalesOrders/{rec['Id']}/Lines")) if rec.get("LineCount") else []
            elif entity == "products":
                vat = vat or self.sales_vat()
                self.with_vat_rate(rec, vat)
            yield rec

    def get_record(self, entity: str, record_id: str) -> dict[str, Any] | None:
        path = self._entity(entity)
        if entity == "salesorders":
            rec = self._get_one(f"SalesOrders/{record_id}/Complete")
            if rec is not None:
                rec["Lines"] = rec.pop("SalesOrderLines", None) or []
            return rec
        try:
            rid = int(record_id)
        except ValueError:
            return None
        rec = self._get_one(f"{path}/{rid}")
        return self.with_vat_rate(rec, self.sales_vat()) if rec is not None and entity == "products" else rec

    def create_record(self, entity: str, data: dict[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        """POST a new record. PowerOffice has no idempotency keys: with one given, customers and
        orders carry it as ExternalImportReference (unique in Go) and products are matched on Code,
        so a create whose answer was lost is found instead of made twice."""
        path = self._entity(entity)
        body = self._body(data)
        if entity == "salesorders":
            body["SalesOrderLines"] = [self._body(x) for x in body.pop("Lines", None) or []]
            path = "SalesOrders/Complete"
        if idempotency_key and entity != "products":
            body.setdefault("ExternalImportReference", idempotency_key[:50])
        started = datetime.now(UTC) - timedelta(minutes=5)
        try:
            rec = self.request("POST", path, json=body).json()
        except ApiError as err:
            # Lost (no answer, a 5xx) or refused (400/409: a duplicate ExternalImportReference or Code, as
            # when the first attempt's answer was lost): look for our own record by what we sent. The real
            # API's ProblemDetails names no field (its schema has no `errors` map), so the refusal's reason
            # is not read; a record that is not there means the error stands.
            lost = err.status is None or err.status >= 500 or err.status in (400, 409)
            found = self._find_created(entity, body, started) if (idempotency_key and lost) else None
            if found is None:
                raise
            rec = found
        if entity == "salesorders":
            rec["Lines"] = rec.pop("SalesOrderLines", None)
            if rec["Lines"] is None:
                rec["Lines"] = list(self.iter_pages(f"SalesOrders/{rec['Id']}/Lines"))
        return rec

    def _find_created(self, entity: str, body: dict[str, Any], started: datetime) -> dict[str, Any] | None:
        """The record a create made, found by documented filters only: customers by
        `externalImportReference`, products by `codes` (the same Name too, so another product that
        holds the code is not taken for ours), orders among this integration's orders changed since
        the attempt (`onlyCreatedByCurrentIntegration`, `lastChangedDateTimeOffsetGreaterThan`; the
        endpoint has no reference filter) by their ExternalImportReference."""
        if entity == "customers":
            hits = list(self.iter_pages("Customers", {"externalImportReference": body["ExternalImportReference"]}))
        elif entity == "products":
            hits = [r for r in self.iter_pages("Products", {"codes": body["Code"]})
                    if r.get("Code") == body["Code"] and r.get("Name") == body.get("Name")] if body.get("Code") else []
        else:
            ref = body["ExternalImportReference"]
            hits = [r for r in self.iter_pages("SalesOrders", self._filters(started, onlyCreatedByCurrentIntegration="true"))
                    if r.get("ExternalImportReference") == ref]
        return hits[0] if hits else None

    def update_record(self, entity: str, record_id: str, changes: dict[str, Any],
                      *, expected_version: str | None = None) -> dict[str, Any]:
        """PATCH `changes`. `expected_version` is the LastChangedDateTimeOffset last collected: Go has
        no If-Match, so the record is looked up first and a newer one is refused with 409."""
        path = self._entity(entity)
        if "Lines" in changes:
            raise ValueError("sales order lines are not updated through the order; patch the lines instead")
        if expected_version is not None:
            current = self.get_record(entity, record_id)
            if current is None:
                raise ApiError(self.system, "PATCH", f"/{path}/{record_id}", 404, "record not found")
            if _parse_ts(current.get("LastChangedDateTimeOffset")) != _parse_ts(expected_version):
                raise ApiError(self.system, "PATCH", f"/{path}/{record_id}", 409,
                               f"changed since version {expected_version} "
                               f"(now {current.get('LastChangedDateTimeOffset')})")
        return self._patch(f"{path}/{record_id}", changes)

    # the count's page: the documented MaxPageSize (ResourceParameters, 20,000 by default)
    count_page_size = MAX_PAGE_SIZE

    def probe(self, entity: str, previous: str | None = None) -> str:
        """'<count>|<newest LastChangedDateTimeOffset>': one call for the newest change (ordered,
        one row, one field) and one per 20,000 records for the count (Id only: the API documents no
        count). The newest change shows every edit and create; the count adds deletions (which the sync
        does not propagate) and a create stamped no later than the newest. Above one page the count is
        taken once per `TALK_PROBE_REFRESH_S` (`paged_probe_part`): at 1M records it was ~50 pages a probe."""
        path = self._entity(entity)
        resp = self.request("GET", path, params={"OrderBy": "LastChangedDateTimeOffset desc", "PageSize": 1,
                                                 "Fields": "LastChangedDateTimeOffset"})
        newest = resp.json()[0].get("LastChangedDateTimeOffset") if resp.status_code == 200 and resp.content else ""

        def count() -> tuple[str, bool]:
            n = sum(1 for _ in self.iter_pages(path, {"Fields": "Id"}, self.count_page_size))
            return str(n), n >= self.count_page_size

        return f"{paged_probe_part((previous or '').partition('|')[0] or None, count)}|{newest}"
