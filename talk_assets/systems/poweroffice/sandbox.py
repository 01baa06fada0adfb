"""A fake PowerOffice GO API v2 (Customers, Products, SalesOrders) on the real paths.

What it copies from the real service, because code written against it must work against
goapi.poweroffice.net unchanged: the client-credentials token endpoint (`POST /OAuth/Token`,
HTTP Basic application key : client key plus the `Ocp-Apim-Subscription-Key` header) and
bearer tokens that expire; PascalCase DTOs exactly as in the v2 OpenAPI document (no extra
properties); bare JSON arrays and `204 No Content` for an empty list; `PageNumber` / `PageSize`
paging (default 5,000, max 20,000); `lastChangedDateTimeOffsetGreaterThan`; case-insensitive query
parameters and JSON Patch paths (ASP.NET binds both case-insensitively); JSON Patch updates
(`application/json-patch+json`); ProblemDetails errors with the schema's properties only;
10 requests/s per subscription key answered by Azure API Management's 429 shape. What decides a
product's VAT (`openapi-vat.yaml`): its standard sales account (`StandardSalesAccountId`, else its
product group's), the account's VAT code (`GeneralLedgerAccounts`) and the code's rate (`VatCodes`);
a sales order line takes the VAT code of its product's account.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import random
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonpatch

from talk_assets.sandbox.server import HttpError, Request, Response, SandboxApp, WindowLimiter
from talk_assets.sandbox.store import Record, Table
from talk_assets.sandbox.world import CURRENCY, build_world, maybe, vary_email, vary_phone
from talk_assets.systems.poweroffice.info import INFO as POWEROFFICE

DEFAULT_TOKEN_TTL = 1200  # seconds, as the real token endpoint says in expires_in
DEFAULT_PAGE_SIZE = 5000
MAX_PAGE_SIZE = 20000
VAT = 0.25
FIRST_CUSTOMER_NO = 10001
CUSTOMER_ID_BASE = 4_300_000  # contact ids in Go are large integers shared with suppliers/employees
PRODUCT_ID_BASE = 1_200_000
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

ADDRESS_FIELDS = ("AddressLine1", "AddressLine2", "ZipCode", "City", "CountryCode")
# Writable properties per DTO (the Post/Patch DTOs); everything else in the Dto is read-only. Each is in
# the v2 schema's Post DTO and not `readOnly` in its Dto (test_writability.py checks both). Whether Go
# ignores or refuses a readOnly property in a body or a patch, the documentation does not say; the
# sandbox refuses it (400 ProblemDetails naming it), so a write the real API would drop is never taken
# for done.
CUSTOMER_WRITABLE = (
    "Name", "FirstName", "LastName", "IsPerson", "EmailAddress", "PhoneNumber", "OrganizationNumber",
    "MailAddress", "Number", "CurrencyCode", "WebsiteUrl", "ExternalImportReference", "IsArchived",
    "InvoiceEmailAddress", "LegalName", "ExternalNumber", "DateOfBirth", "CustomerSince", "IsVatFree",
)
PRODUCT_WRITABLE = (
    "Code", "Name", "Description", "UnitPrice", "UnitCost", "ProductType", "Gtin", "StockOnHand",
    "IsArchived", "IsStockItem", "StandardSalesAccountId", "OptionalSalesAccountId", "ProductGroupId",
)
# in ProductPostDto but readOnly in ProductDto: taken on create only. ProductPostDto.StandardSalesAccount:
# "Note that if StandardSalesAccountId is set as well in the request, StandardSalesAccountId takes
# precedence and StandardSalesAccount is ignored" (the same for the optional account)
PRODUCT_CREATE_ONLY = ("StandardSalesAccount", "OptionalSalesAccount", "ProductGroupCode")
# The standard SAF-T output VAT codes Go uses ("Go use standard SAF-T codes by default", VatCodeDto.Code)
# and a chart of sales accounts (NS 4102 numbers) each locked to one of them. (id, code, name, rate)
VAT_CODES = (
    (201600, "3", "Utgående mva høy sats", 0.25),
    (201601, "31", "Utgående mva middels sats", 0.15),
    (201602, "33", "Utgående mva lav sats", 0.12),
    (201603, "5", "Ingen utgående mva (innenfor mva-loven)", 0.0),
    (201604, "6", "Ingen utgående mva (utenfor mva-loven)", 0.0),
)
SALES_ACCOUNTS = (  # (id, number, name, VAT code id)
    (476023000, 3000, "Salgsinntekt, avgiftspliktig", 201600),
    (476023030, 3030, "Salgsinntekt, avgiftspliktig, middels sats", 201601),
    (476023050, 3050, "Salgsinntekt, avgiftspliktig, lav sats", 201602),
    (476023100, 3100, "Salgsinntekt, avgiftsfri", 201603),
    (476023200, 3200, "Salgsinntekt, utenfor avgiftsområdet", 201604),
)
# product groups: (id, code, name, standard sales account id, optional sales account id)
PRODUCT_GROUPS = (
    (7001, "STD", "Varer", 476023000, 476023100),
    (7002, "MAT", "Næringsmidler", 476023030, 476023100),
    (7003, "UTEN", "Uten salgskonto", None, None),  # its products follow the client's general sales settings
)
DEFAULT_GROUP = 7001
CHART_CHANGED = datetime(2024, 1, 2, 8, 0, tzinfo=UTC)
ORDER_WRITABLE = (
    "CustomerId", "CurrencyCode", "PurchaseOrderReference", "SalesOrderDate", "SalesOrderStatus",
    "CustomerReference", "DeliveryDate", "ExternalImportReference", "ContractNo", "ImportedOrderNo",
)
LINE_WRITABLE = ("ProductId", "ProductCode", "Quantity", "ProductUnitPrice", "ProductUnitCost",
                 "Description", "Allowance", "SortOrder", "LineType", "ExternalImportReference")
NUMBER_FIELDS = frozenset({"UnitPrice", "UnitCost", "StockOnHand", "Quantity", "ProductUnitPrice",
                           "ProductUnitCost", "Allowance"})
INT_FIELDS = frozenset({"Number", "ExternalNumber", "CustomerId", "CustomerNo", "ProductId", "SortOrder",
                        "ImportedOrderNo", "StandardSalesAccountId", "OptionalSalesAccountId", "ProductGroupId",
                        "StandardSalesAccount", "OptionalSalesAccount"})
BOOL_FIELDS = frozenset({"IsPerson", "IsArchived", "IsStockItem", "IsVatFree"})
ENUMS = {
    "ProductType": ("Product", "Service"),
    "SalesOrderStatus": ("Draft", "Confirmed"),
    "LineType": ("Normal", "Text", "Summary", "InvoiceFee", "TotalHours"),
}


def ts(dt: datetime) -> str:
    """Go's timestamps: ISO 8601 with microseconds and offset."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def out(value: Any) -> Any:
    """A stored record as JSON: timestamps are kept as datetimes (formatting 100k of them at seed
    time is too slow) and rendered here, on the way out."""
    if isinstance(value, dict):
        return {k: out(v) for k, v in value.items()}
    if isinstance(value, list):
        return [out(v) for v in value]
    if isinstance(value, datetime):
        return ts(value)
    return value


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID from a seeded generator (uuid.uuid4() would make seeds non-deterministic)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def money(x: float) -> float:
    return round(x + 0.0, 2)


def parse_offset(value: str, name: str) -> datetime:
    """Parse a DateTimeOffset query value; an unencoded '+' arrives as a space, as on the real API."""
    v = value.strip()
    m = re.match(r"^(.*\d)[ ](\d\d:?\d\d)$", v)
    if m and ("T" in m.group(1) or " " in m.group(1)):
        v = f"{m.group(1)}+{m.group(2)}"
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(400, f"The value '{value}' is not valid for {name}.", field=name) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_number_ranges(value: str, name: str) -> list[tuple[int, int | None]]:
    """'10000-11000, 12000, 13000-' -> [(10000, 11000), (12000, 12000), (13000, None)]."""
    out: list[tuple[int, int | None]] = []
    for part in value.split(","):
        p = part.strip()
        if not p:
            continue
        m = re.fullmatch(r"(\d+)\s*(-)?\s*(\d+)?", p)
        if not m:
            raise HttpError(400, f"{name} contains an invalid number or range: '{p}'.", field=name,
                            title="Unable to cast object(s)")
        lo = int(m.group(1))
        hi = int(m.group(3)) if m.group(3) else (None if m.group(2) else lo)
        out.append((lo, hi))
    return out


def in_ranges(n: Any, ranges: list[tuple[int, int | None]]) -> bool:
    return isinstance(n, int) and any(n >= lo and (hi is None or n <= hi) for lo, hi in ranges)


class App(SandboxApp):
    """The PowerOffice GO v2 sandbox."""

    name = "poweroffice"
    title = "PowerOffice GO API v2"

    def writes_data(self, req: Request) -> bool:
        """A token request (`POST /OAuth/Token`) changes no data."""
        return req.path != "/OAuth/Token" and super().writes_data(req)

    def __init__(self, seed: int = 1, size: int = 50) -> None:
        self.tokens: dict[str, datetime] = {}  # access token -> expiry (sandbox clock)
        self.token_ttl = DEFAULT_TOKEN_TTL
        self.app_key = POWEROFFICE.settings["app_key"].default
        self.client_key = POWEROFFICE.settings["client_key"].default
        self.subscription_key = POWEROFFICE.settings["subscription_key"].default
        super().__init__(seed, size)

    # -- contract ----------------------------------------------------------------------------
    def credentials(self) -> dict[str, str]:
        return {"application_key": self.app_key, "client_key": self.client_key,
                "subscription_key": self.subscription_key}

    def api_root(self) -> str:
        return "/v2"

    def register_routes(self) -> None:
        v2 = "/v2"
        self.route("POST", "/OAuth/Token", self.token, name="OAuth/Token")
        self.route("GET", f"{v2}/Customers", self.list_customers, name="Customers")
        self.route("POST", f"{v2}/Customers", self.create_customer, name="Customers")
        self.route("GET", rf"{v2}/Customers/(?P<id>-?\d+)", self.get_customer, name="Customers/{id}")
        self.route("PATCH", rf"{v2}/Customers/(?P<id>-?\d+)", self.patch_customer, name="Customers/{id}")
        self.route("GET", f"{v2}/Products", self.list_products, name="Products")
        self.route("POST", f"{v2}/Products", self.create_product, name="Products")
        self.route("GET", rf"{v2}/Products/(?P<id>-?\d+)", self.get_product, name="Products/{id}")
        self.route("PATCH", rf"{v2}/Products/(?P<id>-?\d+)", self.patch_product, name="Products/{id}")
        # what a product's VAT follows (openapi-vat.yaml): read only, as the sync needs
        self.route("GET", f"{v2}/ProductGroups", self.list_groups, name="ProductGroups")
        self.route("GET", rf"{v2}/ProductGroups/(?P<id>-?\d+)", self.get_group, name="ProductGroups/{id}")
        self.route("GET", f"{v2}/GeneralLedgerAccounts", self.list_accounts, name="GeneralLedgerAccounts")
        self.route("GET", rf"{v2}/GeneralLedgerAccounts/(?P<id>-?\d+)", self.get_account,
                   name="GeneralLedgerAccounts/{id}")
        self.route("GET", f"{v2}/VatCodes", self.list_vat_codes, name="VatCodes")
        self.route("GET", f"{v2}/SalesOrders", self.list_orders, name="SalesOrders")
        self.route("POST", f"{v2}/SalesOrders/Complete", self.create_order_complete, name="SalesOrders/Complete")
        self.route("GET", rf"{v2}/SalesOrders/(?P<id>{UUID_RE})", self.get_order, name="SalesOrders/{id}")
        self.route("PATCH", rf"{v2}/SalesOrders/(?P<id>{UUID_RE})", self.patch_order, name="SalesOrders/{id}")
        self.route("GET", rf"{v2}/SalesOrders/(?P<id>{UUID_RE})/Complete", self.get_order_complete,
                   name="SalesOrders/{id}/Complete")
        self.route("GET", rf"{v2}/SalesOrders/(?P<id>{UUID_RE})/Lines", self.list_lines,
                   name="SalesOrders/{id}/Lines")

    # -- auth ---------------------------------------------------------------------------------
    def authenticate(self, req: Request) -> None:
        key = req.header("Ocp-Apim-Subscription-Key")
        if key != self.subscription_key:
            why = "missing" if not key else "invalid"
            raise HttpError(401, f"Access denied due to {why} subscription key. Make sure to provide a valid "
                                 "key for an active subscription.", apim=True)
        if req.path == "/OAuth/Token":
            return  # the token endpoint checks its own Basic credentials
        auth = req.header("Authorization") or ""
        if not auth.startswith("Bearer "):
            raise HttpError(401, "Access token is missing.", bearer="invalid_request")
        expiry = self.tokens.get(auth[7:].strip())
        if expiry is None:
            raise HttpError(401, "Access token is invalid.", bearer="invalid_token")
        if self.now() >= expiry:
            raise HttpError(401, "Access token has expired.", bearer="invalid_token")

    def token(self, req: Request) -> Response:
        auth = req.header("Authorization") or ""
        app_key = client_key = ""
        if auth.startswith("Basic "):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                app_key, _, client_key = base64.b64decode(auth[6:]).decode().partition(":")
        form = {k: v[-1] for k, v in _parse_form(req.body).items()}
        if form.get("grant_type") != "client_credentials":
            raise HttpError(400, "grant_type must be client_credentials", oauth="unsupported_grant_type")
        if app_key != self.app_key or client_key != self.client_key:
            raise HttpError(401, "The application key or client key is invalid.", oauth="invalid_client")
        token = secrets.token_urlsafe(32)
        self.tokens[token] = self.now() + timedelta(seconds=self.token_ttl)
        return Response(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl})

    def error_response(self, err: HttpError) -> Response:
        """ProblemDetails; Azure API Management's own shape for subscription keys and throttling."""
        if err.extra.get("apim") or (err.status == 429 and not err.field):
            msg = err.message if err.status != 429 else "Rate limit is exceeded. Try again in 1 seconds."
            return Response(err.status, {"statusCode": err.status, "message": msg})
        if "oauth" in err.extra:
            return Response(err.status, {"error": err.extra["oauth"], "error_description": err.message})
        titles = {400: "Validation error(s)", 401: "Unauthorized", 404: "Object(s) not found",
                  405: "Method not allowed", 409: "Conflict", 415: "Unsupported media type"}
        # Only the schema's ProblemDetails properties (Type, Title, Status, Detail, Instance;
        # openapi.yaml `components.schemas.ProblemDetails`): no field-keyed `errors` map, which the
        # schema does not declare. The names are lower-case as in the document's own response examples
        # (`detail:`, `title:`), which is also how ASP.NET writes ProblemDetails. The documentation
        # does not say how a field is named in a validation error: the field leads the detail text.
        detail = err.message
        if err.field and err.field not in detail:
            detail = f"{err.field}: {detail}"
        body: dict[str, Any] = {
            "type": f"https://tools.ietf.org/html/rfc9110#section-15.{5 if err.status < 500 else 6}",
            "title": err.extra.get("title") or titles.get(err.status, "Error"),
            "status": err.status,
            "detail": detail,
            "instance": None,
        }
        resp = Response(err.status, body, content_type="application/problem+json; charset=utf-8")
        if "bearer" in err.extra:
            resp.headers["WWW-Authenticate"] = f'Bearer error="{err.extra["bearer"]}"'
        return resp

    def control(self, req: Request) -> Response:
        """Adds `PUT /_sandbox/token_ttl {"seconds": N}` so tests can watch tokens expire."""
        if req.path.rstrip("/") == "/_sandbox/token_ttl":
            if req.method in ("PUT", "POST"):
                seconds = (req.json() or {}).get("seconds")
                if not isinstance(seconds, int | float) or seconds <= 0:
                    raise HttpError(400, "seconds must be a positive number", field="seconds")
                self.token_ttl = int(seconds) if float(seconds).is_integer() else seconds
            return Response(200, {"seconds": self.token_ttl})
        return super().control(req)

    # -- seed ---------------------------------------------------------------------------------
    def seed_data(self) -> None:
        w = build_world(self.seed, self.size)
        rng = w.rng("poweroffice")
        is_person = w.membership("poweroffice", "person", 0.4)
        is_org = w.membership("poweroffice", "organisation", 0.8)
        is_family = w.membership("poweroffice", "family", 0.85)
        is_order = w.membership("poweroffice", "order", 0.5)
        self.token_ttl = DEFAULT_TOKEN_TTL
        if not isinstance(self.limiter, WindowLimiter):  # kept across resets (speed set by tests)
            self.limiter = WindowLimiter(10, 1.0)  # 10 requests/s per subscription key
        self._ids = random.Random(f"{self.seed}:poweroffice:new-ids")
        self.customers = Table("Customers", "Id")
        self.products = Table("Products", "Id")
        self.orders = Table("SalesOrders", "Id")
        self.lines: dict[str, list[Record]] = {}
        cust_rows: list[Record] = []
        cust_ts: list[datetime] = []
        self.person_ids: dict[int, int] = {}
        self.org_ids: dict[int, int] = {}
        number = FIRST_CUSTOMER_NO
        for p in w.persons:
            if not is_person(p.key):
                continue
            cid = CUSTOMER_ID_BASE + number - FIRST_CUSTOMER_NO
            created = p.changed - timedelta(seconds=int(rng.random() * 400 * 86400))
            cust_rows.append(self._customer(
                cid, number, True, f"{p.first_name} {p.last_name}", p.first_name, p.last_name, None,
                vary_email(rng, p.email), vary_phone(rng, p.phone), p.address, rng, created, p.changed, None))
            cust_ts.append(p.changed)
            self.person_ids[p.key] = cid
            number += 1
        for o in w.organisations:
            if not is_org(o.key):
                continue
            cid = CUSTOMER_ID_BASE + number - FIRST_CUSTOMER_NO
            created = o.changed - timedelta(seconds=int(rng.random() * 400 * 86400))
            cust_rows.append(self._customer(
                cid, number, False, o.name, None, None, maybe(rng, o.org_number, 0.05) or None,
                maybe(rng, vary_email(rng, o.email)) or None, vary_phone(rng, o.phone), o.address, rng,
                created, o.changed, maybe(rng, o.website, 0.3) or None))
            cust_ts.append(o.changed)
            self.org_ids[o.key] = cid
            number += 1
        self.customers.load(cust_rows, cust_ts)

        self._seed_chart()
        prod_rows: list[Record] = []
        prod_ts: list[datetime] = []
        self.product_by_code: dict[str, int] = {}
        pid = PRODUCT_ID_BASE
        for f in w.families:
            if not is_family(f.key):
                continue
            for v in f.variants:
                pid += 1
                created = f.changed - timedelta(seconds=int(rng.random() * 300 * 86400))
                prod_rows.append({
                    "Id": pid, "Code": v.sku, "Name": f"{f.name} {v.option}", "Description": v.option,
                    "UnitPrice": float(v.price_ex_vat), "UnitCost": float(v.cost),
                    "Gtin": maybe(rng, v.gtin, 0.15) or None, "StockOnHand": float(v.stock),
                    "StockAvailable": float(v.stock), "ProductType": "Product", "IsArchived": False,
                    "IsStockItem": True, "UnitOfMeasureCode": "EA", "CreatedDateTimeOffset": created,
                    "LastChangedDateTimeOffset": f.changed, "StockOnHandLastChangedDatetimeOffset": f.changed,
                    # every other product names its own standard sales account, the rest inherit their group's
                    **self._sales_accounts(DEFAULT_GROUP, 476023000 if pid % 2 else None),
                })
                prod_ts.append(f.changed)
                self.product_by_code[v.sku] = pid
        self.products.load(prod_rows, prod_ts)

        by_sku = {v.sku: (f"{f.name} {v.option}", float(v.price_ex_vat), float(v.cost)) for f, v in w.variants}
        order_rows: list[Record] = []
        order_ts: list[datetime] = []
        for o in w.orders:
            cid = self.person_ids.get(o.person) if o.person else self.org_ids.get(o.organisation or -1)
            if cid is None or not is_order(o.key):
                continue
            oid = new_uuid(rng)
            lines = []
            for i, ol in enumerate(o.lines):
                title, price, cost = by_sku[ol.sku]
                pid = self.product_by_code.get(ol.sku)
                # ProductCode is read-only, derived from the product: a line for an item that is not a
                # product in Go carries the SKU in its free-text description only.
                lines.append(self._line(oid, new_uuid(rng), i + 1, pid, ol.sku if pid else None,
                                        title if pid else f"{title} ({ol.sku})", float(ol.quantity), price, cost,
                                        vat_code=self.product_vat(self.products.get(pid) if pid else None)))
            cust = self.customers.rows[cid]
            order = {
                "Id": oid, "SalesOrderNo": o.number, "CustomerId": cid, "CustomerNo": cust["Number"],
                "CurrencyCode": CURRENCY, "PurchaseOrderReference": o.po_number or None,
                "SalesOrderDate": o.created.date().isoformat(),
                "SalesOrderStatus": "Draft" if o.status == "open" else "Confirmed",
                "CreatedDateTimeOffset": o.created, "LastChangedDateTimeOffset": o.created,
                "IsCreatedByCurrentIntegration": False,
            }
            self.lines[oid] = lines
            self._totals(order)
            order_rows.append(order)
            order_ts.append(o.created)
        self.orders.load(order_rows, order_ts)
        self.next_order_no = max((r["SalesOrderNo"] for r in order_rows), default=1000) + 1

    def _seed_chart(self) -> None:
        """The VAT codes, sales accounts and product groups a product's VAT follows."""
        self.vat_codes: list[Record] = [
            {"Id": vid, "Code": code, "Name": name, "Description": name, "Rate": rate, "IsActive": True,
             "IsCustom": False, "ValidFrom": "2017-01-01", "ValidTo": None}
            for vid, code, name, rate in VAT_CODES]
        codes = {c["Id"]: c for c in self.vat_codes}
        self.accounts = Table("GeneralLedgerAccounts", "Id")
        self.accounts.load([
            {"Id": aid, "AccountNo": no, "Name": name, "GeneralLedgerAccountType": "Income", "IsActive": True,
             "IsVatCodeLocked": True, "VatCodeId": vid, "VatCode": codes[vid]["Code"], "CurrencyCode": None,
             "AgricultureDepartment": "None", "VatReturnSpecification": "None",
             "LastChangedDateTimeOffset": CHART_CHANGED}
            for aid, no, name, vid in SALES_ACCOUNTS], [CHART_CHANGED] * len(SALES_ACCOUNTS))
        self.groups = Table("ProductGroups", "Id")
        self.groups.load([
            {"Id": gid, "Code": code, "Name": name, "Description": None, "IsArchived": False,
             "ProductType": "Product", "UnitOfMeasureCode": "EA", "UnitPrice": None, "UnitCost": None,
             **self._account_fields("Standard", std), **self._account_fields("Optional", opt),
             "CreatedDateTimeOffset": CHART_CHANGED, "LastChangedDateTimeOffset": CHART_CHANGED}
            for gid, code, name, std, opt in PRODUCT_GROUPS], [CHART_CHANGED] * len(PRODUCT_GROUPS))

    def _account_fields(self, kind: str, account_id: int | None) -> Record:
        """`<kind>SalesAccountId` and its read-only number `<kind>SalesAccount` (ProductDto, ProductGroupDto)."""
        acc = self.accounts.get(account_id) if account_id is not None else None
        return {f"{kind}SalesAccountId": acc["Id"] if acc else None, f"{kind}SalesAccount": acc["AccountNo"] if acc else None}

    def _sales_accounts(self, group_id: int | None, standard_id: int | None, optional_id: int | None = None) -> Record:
        """A product's group and own sales accounts as ProductDto has them (null: inherited from the group,
        ProductDto.StandardSalesAccount: "If null, the product will inherit the standard sales account from
        the product group or the general sales settings on the client (in that order)")."""
        group = self.groups.get(group_id) if group_id is not None else None
        return {"ProductGroupId": group["Id"] if group else None, "ProductGroupCode": group["Code"] if group else None,
                **self._account_fields("Standard", standard_id), **self._account_fields("Optional", optional_id)}

    def product_vat(self, prod: Record | None) -> Record | None:
        """The VAT code a sales order line of `prod` gets (SalesOrderLineDto.VatCode: "inherited from the sales
        account used for the product set on the sales order line"): the product's standard sales account,
        else its group's; None when neither has one (the client's general sales settings decide, which
        the v2 API does not expose)."""
        if prod is None:
            return None
        account_id = prod.get("StandardSalesAccountId")
        if account_id is None and prod.get("ProductGroupId") is not None:
            account_id = (self.groups.get(prod["ProductGroupId"]) or {}).get("StandardSalesAccountId")
        acc = self.accounts.get(account_id) if account_id is not None else None
        return next((c for c in self.vat_codes if acc and c["Id"] == acc["VatCodeId"]), None)

    def _customer(self, cid: int, number: int, is_person: bool, name: str, first: str | None,
                  last: str | None, org_no: str | None, email: str | None, phone: str, address: Any,
                  rng: Any, created: datetime, changed: datetime, website: str | None) -> Record:
        missing = rng.random() < 0.1
        mail = {
            "Id": cid * 10 + 1,
            "AddressLine1": None if missing else address.line1,
            "AddressLine2": (address.line2 or None) if not missing else None,
            "ZipCode": None if missing else address.zip,
            "City": None if missing else address.city,
            "CountryCode": address.country,
            "LastChangedDateTimeOffset": changed,
        }
        return {
            "Id": cid, "Number": number, "Name": name, "FirstName": first, "LastName": last,
            "IsPerson": is_person, "EmailAddress": email or None, "PhoneNumber": phone or None,
            "OrganizationNumber": org_no, "MailAddress": mail, "CurrencyCode": CURRENCY,
            "WebsiteUrl": website, "IsActive": True, "IsArchived": False,
            "ExternalImportReference": None,
            "ContactCreatedDateTimeOffset": created, "CustomerCreatedDateTimeOffset": created,
            "LastChangedDateTimeOffset": changed,
        }

    @staticmethod
    def _line(order_id: str, line_id: str, sort: int, product_id: int | None, code: str | None,
              description: str | None, qty: float, price: float, cost: float | None,
              allowance: float = 0.0, vat_code: Record | None = None) -> Record:
        """A line; its VAT is its product's (`product_vat`), the standard code 3 (25 %) where none is known."""
        rate = vat_code["Rate"] if vat_code else VAT
        net = money(qty * price * (1 - allowance))
        vat = money(net * rate)
        return {
            "Id": line_id, "SalesOrderId": order_id, "SortOrder": sort, "LineType": "Normal",
            "ProductId": product_id, "ProductCode": code, "Description": description, "Quantity": qty,
            "ProductUnitPrice": price, "ProductUnitCost": cost, "Allowance": allowance, "NetAmount": net,
            "VatRate": rate, "VatAmount": vat, "VatCode": vat_code["Code"] if vat_code else "3",
            "TotalAmount": money(net + vat),
        }

    def _totals(self, order: Record) -> None:
        net = total = 0.0
        lines = self.lines.get(order["Id"], [])
        for line in lines:
            net += line["NetAmount"]
            total += line["TotalAmount"]
        order["NetAmount"] = money(net)
        order["TotalAmount"] = money(total)
        order["LineCount"] = len(lines)

    # -- list helpers -------------------------------------------------------------------------
    @staticmethod
    def _q(req: Request, name: str) -> str | None:
        """A query parameter, case-insensitively (ASP.NET model binding), also as resourceParameter.X."""
        want = {name.lower(), f"resourceparameter.{name.lower()}"}
        value = None
        for k, v in req.query.items():
            if k.lower() in want and v:
                value = v[-1]
        return value

    def _int_q(self, req: Request, name: str, default: int) -> int:
        v = self._q(req, name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise HttpError(400, f"The value '{v}' is not valid for {name}.", field=name) from None

    def _bool_q(self, req: Request, name: str) -> bool | None:
        v = self._q(req, name)
        if v is None or v == "":
            return None
        if v.lower() not in ("true", "false"):
            raise HttpError(400, f"The value '{v}' is not valid for {name}.", field=name)
        return v.lower() == "true"

    def _since(self, req: Request) -> datetime | None:
        v = self._q(req, "lastChangedDateTimeOffsetGreaterThan")
        return parse_offset(v, "lastChangedDateTimeOffsetGreaterThan") if v else None

    def _list(self, req: Request, table: Table | list[Record], where: Any = None) -> Response:
        """Filter, order, page and project a table the way Go's ResourceParameters do."""
        page_no = self._int_q(req, "PageNumber", 1)
        size = self._int_q(req, "PageSize", DEFAULT_PAGE_SIZE)
        if page_no < 1:
            raise HttpError(400, "PageNumber must be 1 or greater.", field="PageNumber")
        if size < 1 or size > MAX_PAGE_SIZE:
            raise HttpError(400, f"PageSize must be between 1 and {MAX_PAGE_SIZE}.", field="PageSize")
        order_by = (self._q(req, "OrderBy") or "").strip()
        specs = [s.strip() for s in order_by.split(",") if s.strip()]
        field_, _, direction = specs[0].partition(" ") if len(specs) == 1 else ("", "", "")
        if isinstance(table, list):
            source = iter(table)
        elif field_.lower() == "lastchangeddatetimeoffset" and direction.strip().lower() in ("", "asc", "desc"):
            # Ordered by change time (the sync's probe: newest first, one row): the table's change index
            # holds that order (each record's LastChangedDateTimeOffset is its change time: every put
            # here passes it), so a page is found without sorting every record, as the real API's
            # database would; the same rows in the same order as the sort below.
            rows_, since = table.rows, self._since(req)
            ids = table.in_change_order(direction.strip().lower() == "desc", since)
            source = (rows_[rid] for rid in ids if where is None or where(rows_[rid]))
            order_by = ""
        else:
            source = table.scan(changed_gt=self._since(req), where=where)
        if order_by:
            rows = list(source)
            for spec in reversed(specs):
                fname, _, direction = spec.partition(" ")
                key = _prop(rows[0] if rows else {}, fname)
                if rows and key is None:
                    raise HttpError(400, f"OrderBy: unknown property '{fname}'.", field="OrderBy")
                rows.sort(key=lambda r, k=key: (r.get(k) is not None, r.get(k)),
                          reverse=direction.strip().lower() == "desc")
            page = rows[(page_no - 1) * size: page_no * size]
        else:
            it = source
            skip = (page_no - 1) * size
            page = []
            for i, rec in enumerate(it):
                if i < skip:
                    continue
                page.append(rec)
                if len(page) == size:
                    break
        if not page:
            return Response(204)
        rendered = [out(r) for r in page]
        fields = [f.strip() for f in (self._q(req, "Fields") or "").split(",") if f.strip()]
        if fields:
            keys = [_prop(rendered[0], f) for f in fields]
            unknown = [f for f, k in zip(fields, keys, strict=True) if k is None]
            if unknown:
                raise HttpError(400, f"Fields: unknown property '{unknown[0]}'.", field="Fields")
            rendered = [{k: r.get(k) for k in keys if k} for r in rendered]
        return Response(200, rendered)

    # -- customers ----------------------------------------------------------------------------
    def list_customers(self, req: Request) -> Response:
        preds = []
        nos = self._q(req, "customerNos")
        if nos and nos.strip():
            ranges = parse_number_ranges(nos, "customerNos")
            preds.append(lambda r: in_ranges(r["Number"], ranges))
        ext = self._q(req, "externalImportReference")
        if ext and ext.strip():
            preds.append(lambda r: r.get("ExternalImportReference") == ext)
        created = self._q(req, "customerCreatedDateTimeOffsetGreaterThan")
        if created:
            c = parse_offset(created, "customerCreatedDateTimeOffsetGreaterThan")
            preds.append(lambda r: r["CustomerCreatedDateTimeOffset"] > c)
        return self._list(req, self.customers, where=_all(preds))

    def _get(self, table: Table, rid: Any, what: str) -> Record:
        rec = table.get(rid)
        if rec is None:
            raise HttpError(404, f"{what} with id = {rid} not found.")
        return rec

    def get_customer(self, req: Request) -> Response:
        return Response(200, out(self._get(self.customers, int(req.params["id"]), "Customer")))

    def create_customer(self, req: Request) -> Response:
        body = _json_object(req)
        data = _writable(body, CUSTOMER_WRITABLE, "Customer", nested={"MailAddress": ADDRESS_FIELDS})
        now = self.now()
        cid = self.customers.new_id()
        if data.get("Number") is None:
            data["Number"] = max((n for n in self.customers.values_of("Number") if n is not None),
                                 default=FIRST_CUSTOMER_NO - 1) + 1
        if data.get("IsPerson") and not data.get("Name"):
            data["Name"] = " ".join(x for x in (data.get("FirstName"), data.get("LastName")) if x) or None
        mail = data.pop("MailAddress", None) or {}
        rec = {
            "Id": cid, "Number": None, "Name": None, "FirstName": None, "LastName": None, "IsPerson": False,
            "EmailAddress": None, "PhoneNumber": None, "OrganizationNumber": None,
            "MailAddress": {"Id": cid * 10 + 1, **{k: mail.get(k) for k in ADDRESS_FIELDS},
                            "LastChangedDateTimeOffset": now},
            "CurrencyCode": CURRENCY, "WebsiteUrl": None, "IsActive": True, "IsArchived": False,
            "ExternalImportReference": None,
            "ContactCreatedDateTimeOffset": now, "CustomerCreatedDateTimeOffset": now,
            "LastChangedDateTimeOffset": now,
        }
        rec.update(data)
        rec["MailAddress"]["CountryCode"] = rec["MailAddress"]["CountryCode"] or "NO"
        self._validate_customer(rec)
        self.customers.put(rec, now)
        return Response(201, out(rec))

    def _validate_customer(self, rec: Record) -> None:
        if not rec.get("Name"):
            raise HttpError(400, "The Name field is required.", field="Name", title="Customer validation error(s)")
        email = rec.get("EmailAddress")
        if email and not EMAIL_RE.match(email):
            raise HttpError(400, f"EmailAddress '{email}' is not a valid e-mail address.", field="EmailAddress",
                            title="Customer validation error(s)")
        # unique per client (a number is checked before the reference; the API's order is not documented)
        other = next((o for o in self.customers.holders("Number", rec["Number"]) if o != rec["Id"]), None)
        if other is not None:
            raise HttpError(400, f"Number {rec['Number']} is already in use on (contact) Id = {other}.",
                            field="Number", title="Customer validation error(s)")
        ext = rec.get("ExternalImportReference")
        other = next((o for o in self.customers.holders("ExternalImportReference", ext) if o != rec["Id"]),
                     None) if ext else None
        if other is not None:
            raise HttpError(400, f"ExternalImportReference is already in use. '{ext}' is used on (contact) "
                                 f"Id = {other}.", field="ExternalImportReference",
                            title="Customer validation error(s)")
        org = rec.get("OrganizationNumber")
        if org and not rec.get("IsPerson") and not re.fullmatch(r"\d{9}", org.replace(" ", "")):
            raise HttpError(400, f"OrganizationNumber '{org}' must be 9 digits.", field="OrganizationNumber",
                            title="Customer validation error(s)")

    def patch_customer(self, req: Request) -> Response:
        cid = int(req.params["id"])
        rec = self._get(self.customers, cid, "Customer")
        new = self._apply_patch(req, rec, CUSTOMER_WRITABLE, {"MailAddress": ADDRESS_FIELDS})
        self._validate_customer(new)
        now = self.now()
        new["LastChangedDateTimeOffset"] = now
        if new.get("MailAddress") != rec.get("MailAddress") and isinstance(new.get("MailAddress"), dict):
            new["MailAddress"]["LastChangedDateTimeOffset"] = now
        self.customers.put(new, now)
        return Response(200, out(new))

    def _apply_patch(self, req: Request, rec: Record, writable: tuple[str, ...],
                     nested: dict[str, tuple[str, ...]] | None = None) -> Record:
        """Apply a JSON Patch to the writable properties, matching names case-insensitively."""
        ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json-patch+json":
            raise HttpError(415, f"Content-Type '{ctype or '(none)'}' is not supported; "
                                 "use application/json-patch+json.")
        ops = req.json()
        if not isinstance(ops, list):
            raise HttpError(400, "The request body must be a JSON Patch document (an array of operations).")
        fixed = []
        for i, op in enumerate(ops):
            if not isinstance(op, dict) or "op" not in op or "path" not in op:
                raise HttpError(400, f"Operation {i} must have 'op' and 'path'.", field=f"[{i}]")
            op = dict(op)
            for key in ("path", "from"):
                if key in op:
                    op[key] = _canon_path(op[key], rec, writable, nested or {})
            fixed.append(op)
        try:
            new = jsonpatch.apply_patch(copy.deepcopy(rec), fixed)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise HttpError(400, f"The JSON Patch could not be applied: {exc}") from None
        for key in writable:
            new.setdefault(key, None)  # a removed property reads back as null
            if key not in (nested or {}):
                _check_type(key, new.get(key))
        for parent, subs in (nested or {}).items():
            value = new.get(parent)
            if value is not None and not isinstance(value, dict):
                raise HttpError(400, f"{parent} must be an object.", field=parent)
            canon = {k.lower(): k for k in subs}
            fixed_sub = {k: v for k, v in rec[parent].items() if k not in subs}  # Id etc. stay
            for k, v in (value or {}).items():
                if k in fixed_sub:
                    continue
                c = canon.get(k.lower())
                if c is None:
                    raise HttpError(400, f"'{k}' is not a property of {parent}.", field=f"{parent}.{k}")
                if v is not None and not isinstance(v, str):
                    raise HttpError(400, f"{parent}.{c} must be a string.", field=f"{parent}.{c}")
                fixed_sub[c] = v
            for c in subs:
                fixed_sub.setdefault(c, None)
            new[parent] = fixed_sub
        return new

    # -- products -----------------------------------------------------------------------------
    def list_products(self, req: Request) -> Response:
        preds = []
        codes = self._q(req, "codes")
        if codes and codes.strip():
            wanted = {c.strip() for c in codes.split(",") if c.strip()}
            preds.append(lambda r: r.get("Code") in wanted)
        names = self._q(req, "names")
        if names and names.strip():
            wanted_names = {c.strip().lower() for c in names.split(",") if c.strip()}
            preds.append(lambda r: (r.get("Name") or "").lower() in wanted_names)
        archived = self._bool_q(req, "isArchived")
        if archived is not None:
            preds.append(lambda r: bool(r.get("IsArchived")) == archived)
        ptype = self._q(req, "type")
        if ptype:
            if ptype not in ENUMS["ProductType"]:
                raise HttpError(400, f"The value '{ptype}' is not valid for type.", field="type")
            preds.append(lambda r: r.get("ProductType") == ptype)
        return self._list(req, self.products, where=_all(preds))

    def get_product(self, req: Request) -> Response:
        return Response(200, out(self._get(self.products, int(req.params["id"]), "Product")))

    def create_product(self, req: Request) -> Response:
        body = _json_object(req)
        data = _writable(body, (*PRODUCT_WRITABLE, *PRODUCT_CREATE_ONLY), "Product")
        now = self.now()
        rec = {
            "Id": self.products.new_id(), "Code": None, "Name": None, "Description": None, "UnitPrice": None,
            "UnitCost": None, "Gtin": None, "StockOnHand": 0.0, "StockAvailable": 0.0, "ProductType": "Product",
            "IsArchived": False, "IsStockItem": False, "UnitOfMeasureCode": "EA",
            "CreatedDateTimeOffset": now, "LastChangedDateTimeOffset": now,
            "StockOnHandLastChangedDatetimeOffset": None,
            # ProductPostDto.ProductGroupId: "If not provided, the product will be placed in the default product group."
            **self._sales_accounts(DEFAULT_GROUP, None),
        }
        rec.update(data)
        self._resolve_sales(rec, data)
        self._validate_product(rec, None, now)
        self.products.put(rec, now)
        return Response(200, out(rec))  # the v2 document says 200 (not 201) for this create

    def _resolve_sales(self, rec: Record, data: Record) -> None:
        """The product's group and sales accounts from the ids (or, on create, the numbers/code) it was sent
        with; an id wins over a number (ProductPostDto). The documentation does not say how Go refuses an
        unknown account or group; the sandbox answers 400 ProblemDetails naming the field."""
        title = "Product validation error(s)"
        for kind in ("Standard", "Optional"):
            id_f, no_f = f"{kind}SalesAccountId", f"{kind}SalesAccount"
            if data.get(id_f) is not None:
                if self.accounts.get(data[id_f]) is None:
                    raise HttpError(400, f"General ledger account with id = {data[id_f]} not found.", field=id_f, title=title)
                rec.update(self._account_fields(kind, data[id_f]))
            elif data.get(no_f) is not None:
                acc = next((a for a in self.accounts.rows.values() if a["AccountNo"] == data[no_f]), None)
                if acc is None:
                    raise HttpError(400, f"General ledger account {data[no_f]} not found.", field=no_f, title=title)
                rec.update(self._account_fields(kind, acc["Id"]))
            elif id_f in data:
                rec.update(self._account_fields(kind, None))
        if data.get("ProductGroupId") is not None:
            group = self.groups.get(data["ProductGroupId"])
            if group is None:
                raise HttpError(400, f"Product group with id = {data['ProductGroupId']} not found.",
                                field="ProductGroupId", title=title)
            rec["ProductGroupCode"] = group["Code"]
        elif data.get("ProductGroupCode") is not None:
            group = next((g for g in self.groups.rows.values() if g["Code"] == data["ProductGroupCode"]), None)
            if group is None:
                raise HttpError(400, f"Product group '{data['ProductGroupCode']}' not found.",
                                field="ProductGroupCode", title=title)
            rec["ProductGroupId"] = group["Id"]
        elif "ProductGroupId" in data:
            rec["ProductGroupCode"] = None

    # -- what a product's VAT follows: groups, accounts, VAT codes (read only) ------------------
    def list_groups(self, req: Request) -> Response:
        preds = []
        codes = self._q(req, "codes")
        if codes and codes.strip():
            wanted = {c.strip() for c in codes.split(",") if c.strip()}
            preds.append(lambda r: r.get("Code") in wanted)
        archived = self._bool_q(req, "isArchived")
        if archived is not None:
            preds.append(lambda r: bool(r.get("IsArchived")) == archived)
        names = self._q(req, "names")
        if names and names.strip():
            wanted_names = {c.strip().lower() for c in names.split(",") if c.strip()}
            preds.append(lambda r: (r.get("Name") or "").lower() in wanted_names)
        ptype = self._q(req, "type")
        if ptype:
            if ptype.lower() not in {t.lower() for t in ENUMS["ProductType"]}:
                raise HttpError(400, f"The value '{ptype}' is not valid for type.", field="type")
            preds.append(lambda r: (r.get("ProductType") or "").lower() == ptype.lower())
        created = self._q(req, "createdDateTimeOffsetGreaterThan")
        if created:
            c = parse_offset(created, "createdDateTimeOffsetGreaterThan")
            preds.append(lambda r: r["CreatedDateTimeOffset"] > c)
        return self._list(req, self.groups, where=_all(preds))

    def get_group(self, req: Request) -> Response:
        return Response(200, out(self._get(self.groups, int(req.params["id"]), "Product group")))

    def list_accounts(self, req: Request) -> Response:
        preds = []
        nos = self._q(req, "accountNos")
        if nos and nos.strip():
            ranges = parse_number_ranges(nos, "accountNos")
            preds.append(lambda r: in_ranges(r["AccountNo"], ranges))
        departments = self._q(req, "agricultureDepartments")
        if departments and departments.strip():
            wanted = {d.strip().lower() for d in departments.split(",") if d.strip()}
            preds.append(lambda r: (r.get("AgricultureDepartment") or "").lower() in wanted)
        return self._list(req, self.accounts, where=_all(preds))

    def get_account(self, req: Request) -> Response:
        return Response(200, out(self._get(self.accounts, int(req.params["id"]), "General ledger account")))

    def list_vat_codes(self, req: Request) -> Response:
        """`GET /VatCodes`: "Returns both active and inactive codes as default"; expired codes only with
        `includeExpired`."""
        active = self._bool_q(req, "isActive")
        expired = self._bool_q(req, "includeExpired")
        today = self.now().date().isoformat()
        rows = [c for c in self.vat_codes if (active is None or c["IsActive"] == active)
                and (expired or not c["ValidTo"] or c["ValidTo"] >= today)]
        return self._list(req, rows)

    def _validate_product(self, rec: Record, old: Record | None, now: datetime) -> None:
        title = "Product validation error(s)"
        if not rec.get("Name"):
            raise HttpError(400, "The Name field is required.", field="Name", title=title)
        if len(rec["Name"]) > 400:
            raise HttpError(400, "Name can be at most 400 characters.", field="Name", title=title)
        for f in ("UnitPrice", "UnitCost"):
            if rec.get(f) is not None and rec[f] < 0:
                raise HttpError(400, f"{f} cannot be negative.", field=f, title=title)
        code = rec.get("Code")
        if code:
            if len(code) > 100:
                raise HttpError(400, "Code can be at most 100 characters.", field="Code", title=title)
            owner = self.product_by_code.get(code)
            if owner is not None and owner != rec["Id"]:
                raise HttpError(400, f"Code '{code}' is already in use on product Id = {owner}.", field="Code",
                                title=title)
        if old is not None and old.get("Code") != code and old.get("Code"):
            self.product_by_code.pop(old["Code"], None)
        if code:
            self.product_by_code[code] = rec["Id"]
        if rec.get("StockOnHand") is not None:
            rec["StockAvailable"] = rec["StockOnHand"]
            if old is None or old.get("StockOnHand") != rec["StockOnHand"]:
                rec["StockOnHandLastChangedDatetimeOffset"] = now

    def patch_product(self, req: Request) -> Response:
        rec = self._get(self.products, int(req.params["id"]), "Product")
        new = self._apply_patch(req, rec, PRODUCT_WRITABLE)
        now = self.now()
        self._resolve_sales(new, {k: new[k] for k in ("StandardSalesAccountId", "OptionalSalesAccountId", "ProductGroupId")})
        self._validate_product(new, rec, now)
        new["LastChangedDateTimeOffset"] = now
        self.products.put(new, now)
        return Response(200, out(new))

    # -- sales orders -------------------------------------------------------------------------
    def list_orders(self, req: Request) -> Response:
        preds = []
        nos = self._q(req, "customerNos")
        if nos and nos.strip():
            ranges = parse_number_ranges(nos, "customerNos")
            preds.append(lambda r: in_ranges(r["CustomerNo"], ranges))
        status = self._q(req, "orderStatus")
        if status:
            if status not in ENUMS["SalesOrderStatus"]:
                raise HttpError(400, f"The value '{status}' is not valid for orderStatus.", field="orderStatus")
            preds.append(lambda r: r.get("SalesOrderStatus") == status)
        if self._bool_q(req, "onlyCreatedByCurrentIntegration"):
            preds.append(lambda r: bool(r.get("IsCreatedByCurrentIntegration")))
        return self._list(req, self.orders, where=_all(preds))

    def _order(self, req: Request) -> Record:
        return self._get(self.orders, req.params["id"].lower(), "Sales order")

    def get_order(self, req: Request) -> Response:
        return Response(200, out(self._order(req)))

    def get_order_complete(self, req: Request) -> Response:
        order = self._order(req)
        return Response(200, {**out(order), "SalesOrderLines": out(self.lines[order["Id"]])})

    def list_lines(self, req: Request) -> Response:
        order = self._order(req)
        return self._list(req, self.lines[order["Id"]])

    def create_order_complete(self, req: Request) -> Response:
        body = _json_object(req)
        raw_lines = body.pop("SalesOrderLines", None) or []
        if not isinstance(raw_lines, list):
            raise HttpError(400, "SalesOrderLines must be an array.", field="SalesOrderLines")
        data = _writable(body, (*ORDER_WRITABLE, "CustomerNo", "SalesOrderNo"), "Sales order")
        cust = self._order_customer(data)
        now = self.now()
        oid = new_uuid(self._ids)
        lines = [self._new_line(oid, i, raw) for i, raw in enumerate(raw_lines)]
        order = {
            "Id": oid, "SalesOrderNo": data.get("SalesOrderNo") or self.next_order_no, "CustomerId": cust["Id"],
            "CustomerNo": cust["Number"], "CurrencyCode": data.get("CurrencyCode") or CURRENCY,
            "PurchaseOrderReference": data.get("PurchaseOrderReference"),
            "SalesOrderDate": data.get("SalesOrderDate") or now.date().isoformat(),
            "SalesOrderStatus": data.get("SalesOrderStatus") or "Draft",
            "CreatedDateTimeOffset": now, "LastChangedDateTimeOffset": now,
            "IsCreatedByCurrentIntegration": True,
        }
        for k in ("CustomerReference", "DeliveryDate", "ExternalImportReference", "ContractNo", "ImportedOrderNo"):
            if data.get(k) is not None:
                order[k] = data[k]
        _check_date(order, "SalesOrderDate")
        self.next_order_no = max(self.next_order_no, order["SalesOrderNo"]) + 1
        self.lines[oid] = lines
        self._totals(order)
        self.orders.put(order, now)
        return Response(201, {**out(order), "SalesOrderLines": out(lines)})

    def _order_customer(self, data: Record) -> Record:
        if data.get("CustomerId") is not None:
            cust = self.customers.get(data["CustomerId"])
            if cust is None:
                raise HttpError(404, f"Customer with id = {data['CustomerId']} not found.", field="CustomerId")
            return cust
        if data.get("CustomerNo") is not None:
            for cid in self.customers.holders("Number", data["CustomerNo"]):
                return self.customers.rows[cid]
            raise HttpError(404, f"Customer with number = {data['CustomerNo']} not found.", field="CustomerNo")
        raise HttpError(400, "CustomerId or CustomerNo is required.", field="CustomerId",
                        title="Sales order validation error(s)")

    def _new_line(self, oid: str, i: int, raw: Any) -> Record:
        if not isinstance(raw, dict):
            raise HttpError(400, f"SalesOrderLines[{i}] must be an object.", field=f"SalesOrderLines[{i}]")
        try:
            data = _writable(raw, LINE_WRITABLE, "Sales order line")
        except HttpError as err:
            raise HttpError(400, f"SalesOrderLines[{i}].{err.field}: {err.message}",
                            field=f"SalesOrderLines[{i}].{err.field}") from None
        prod = None
        if data.get("ProductId") is not None:
            prod = self.products.get(data["ProductId"])
            if prod is None:
                raise HttpError(404, f"Product with id = {data['ProductId']} not found.",
                                field=f"SalesOrderLines[{i}].ProductId")
        elif data.get("ProductCode"):
            pid = self.product_by_code.get(data["ProductCode"])
            if pid is None:
                raise HttpError(404, f"Product with code = '{data['ProductCode']}' not found.",
                                field=f"SalesOrderLines[{i}].ProductCode")
            prod = self.products.get(pid)
        qty = data.get("Quantity")
        qty = 1.0 if qty is None else float(qty)
        price = data.get("ProductUnitPrice")
        if price is None:
            price = (prod or {}).get("UnitPrice") or 0.0
        if price < 0:
            raise HttpError(400, "ProductUnitPrice cannot be negative.", field=f"SalesOrderLines[{i}].ProductUnitPrice")
        allowance = float(data.get("Allowance") or 0.0)
        if not 0 <= allowance <= 1:
            raise HttpError(400, "Allowance must be between 0 and 1.", field=f"SalesOrderLines[{i}].Allowance")
        line = self._line(oid, new_uuid(self._ids),
                          data.get("SortOrder") or i + 1, prod["Id"] if prod else None,
                          prod["Code"] if prod else None, data.get("Description") or (prod or {}).get("Name"),
                          qty, float(price), data.get("ProductUnitCost", (prod or {}).get("UnitCost")), allowance,
                          self.product_vat(prod))
        if data.get("LineType"):
            line["LineType"] = data["LineType"]
        return line

    def patch_order(self, req: Request) -> Response:
        rec = self._order(req)
        new = self._apply_patch(req, rec, ORDER_WRITABLE)
        # OrderStatus (v2 schema): "Confirmed - The order is confirmed. Used to confirm and lock the order
        # from edit. Can be unlocked by changing state to draft again." So a confirmed order takes one
        # change only: back to Draft, alone. The documentation does not say how Go refuses the edit;
        # PATCH documents 400 (ProblemDetails) as its only refusal of a request, so that is used here.
        if rec.get("SalesOrderStatus") == "Confirmed":
            changed = sorted(k for k in new if new.get(k) != rec.get(k))
            if changed != ["SalesOrderStatus"] or new.get("SalesOrderStatus") != "Draft":
                edited = [k for k in changed if k != "SalesOrderStatus"] or changed
                raise HttpError(400, f"Sales order {rec['SalesOrderNo']} is Confirmed and locked from edit "
                                     f"({', '.join(edited) or 'no change'}); change SalesOrderStatus to Draft "
                                     "first.", title="Sales order validation error(s)")
        if new.get("CustomerId") != rec.get("CustomerId"):
            cust = self._order_customer({"CustomerId": new.get("CustomerId")})
            new["CustomerNo"] = cust["Number"]
        _check_date(new, "SalesOrderDate")
        now = self.now()
        new["LastChangedDateTimeOffset"] = now
        self.orders.put(new, now)
        return Response(200, out(new))


# -- helpers ----------------------------------------------------------------------------------
def _parse_form(body: bytes) -> dict[str, list[str]]:
    from urllib.parse import parse_qs

    return parse_qs(body.decode(errors="replace"), keep_blank_values=True)


def _all(preds: list[Any]) -> Any:
    if not preds:
        return None
    return lambda r: all(p(r) for p in preds)


def _prop(rec: Record, name: str) -> str | None:
    """The record's own spelling of a property name given in any case."""
    low = name.strip().lower()
    return next((k for k in rec if k.lower() == low), None)


def _json_object(req: Request) -> Record:
    body = req.json()
    if not isinstance(body, dict):
        raise HttpError(400, "The request body must be a JSON object.")
    return body


def _check_type(key: str, v: Any) -> None:
    if v is None:
        return
    if key in NUMBER_FIELDS and (isinstance(v, bool) or not isinstance(v, int | float)):
        raise HttpError(400, f"The value for {key} must be a number.", field=key)
    if key in INT_FIELDS and (isinstance(v, bool) or not isinstance(v, int)):
        raise HttpError(400, f"The value for {key} must be an integer.", field=key)
    if key in BOOL_FIELDS and not isinstance(v, bool):
        raise HttpError(400, f"The value for {key} must be true or false.", field=key)
    if key in ENUMS and v not in ENUMS[key]:
        raise HttpError(400, f"The value '{v}' is not valid for {key}; expected one of {', '.join(ENUMS[key])}.",
                        field=key)
    if key not in NUMBER_FIELDS | INT_FIELDS | BOOL_FIELDS and key != "MailAddress" and not isinstance(v, str):
        raise HttpError(400, f"The value for {key} must be a string.", field=key)


def _check_date(rec: Record, key: str) -> None:
    v = rec.get(key)
    if v is None:
        return
    try:
        datetime.strptime(str(v)[:10], "%Y-%m-%d")
    except ValueError:
        raise HttpError(400, f"The value '{v}' is not a valid date for {key}.", field=key) from None
    rec[key] = str(v)[:10]


def _writable(body: Record, writable: tuple[str, ...], what: str,
              nested: dict[str, tuple[str, ...]] | None = None) -> Record:
    """The Post DTO's properties (case-insensitive), rejecting unknown or read-only ones by name."""
    canon = {k.lower(): k for k in writable}
    out: Record = {}
    for k, v in body.items():
        key = canon.get(k.lower())
        if key is None:
            raise HttpError(400, f"'{k}' is not a writable property of {what}.", field=k,
                            title=f"{what} validation error(s)")
        if key in (nested or {}):
            if v is None:
                out[key] = None
                continue
            if not isinstance(v, dict):
                raise HttpError(400, f"{key} must be an object.", field=key)
            subs = {s.lower(): s for s in nested[key]}  # type: ignore[index]
            sub: Record = {}
            for sk, sv in v.items():
                s = subs.get(sk.lower())
                if s is None:
                    raise HttpError(400, f"'{sk}' is not a property of {key}.", field=f"{key}.{sk}")
                if sv is not None and not isinstance(sv, str):
                    raise HttpError(400, f"{key}.{s} must be a string.", field=f"{key}.{s}")
                sub[s] = sv
            out[key] = sub
            continue
        _check_type(key, v)
        out[key] = float(v) if key in NUMBER_FIELDS and v is not None else v
    return out


def _canon_path(path: Any, rec: Record, writable: tuple[str, ...], nested: dict[str, tuple[str, ...]]) -> str:
    """'/phoneNumber' -> '/PhoneNumber'; read-only or unknown properties are rejected by name."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise HttpError(400, f"Invalid JSON Patch path '{path}'.", field="path")
    parts = path[1:].split("/")
    canon = {k.lower(): k for k in writable}
    top = canon.get(parts[0].lower())
    if top is None:
        known = _prop(rec, parts[0])
        why = "is read-only" if known else "does not exist"
        raise HttpError(400, f"The property '{parts[0]}' {why} and cannot be patched.", field=known or parts[0])
    out = [top]
    if len(parts) > 1:
        if top not in nested:
            raise HttpError(400, f"'{top}' has no sub-properties.", field=top)
        subs = {s.lower(): s for s in nested[top]}
        sub = subs.get(parts[1].lower())
        if sub is None or len(parts) > 2:
            raise HttpError(400, f"The property '{top}/{'/'.join(parts[1:])}' cannot be patched.",
                            field=f"{top}.{parts[1]}")
        out.append(sub)
    return "/" + "/".join(out)
