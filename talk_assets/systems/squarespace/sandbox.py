"""A fake Squarespace Commerce API 1.0 (products, inventory, orders) on the real paths.

Behaves like the real service where client code can tell the difference: Bearer key *and*
User-Agent required, 24-hex ObjectId-style ids, dynamic cursors (a cursor carries the filters, and
filters cannot be combined with a cursor), 50 records per page ordered by modifiedOn, money as
strings, required `Idempotency-Key` on stock adjustments and order imports (a replay answers like
the first call and changes nothing), 300 requests/minute with a one-minute cooldown, 100 order
imports per hour, and Squarespace's error envelope `{type, subtype, message, details, contextId}`.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from talk_assets.sandbox.server import (
    HttpError,
    Request,
    Response,
    SandboxApp,
    WindowLimiter,
    decode_cursor,
    encode_cursor,
)
from talk_assets.sandbox.store import Record, Table
from talk_assets.sandbox.world import CURRENCY, ascii_slug, build_world, maybe, vary_email, vary_phone
from talk_assets.systems.squarespace import webhooks
from talk_assets.systems.squarespace.info import INFO as SQUARESPACE

ROOT = "/1.0/commerce"
PAGE_SIZE = 50  # fixed by the real API; there is no limit parameter
ID = r"[0-9a-f]{24}"
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STATUS_TYPES = {
    400: "INVALID_REQUEST_ERROR",
    401: "AUTHORIZATION_ERROR",
    402: "WEBSITE_EXPIRED",
    403: "AUTHORIZATION_ERROR",
    404: "INVALID_REQUEST_ERROR",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    429: "TOO_MANY_REQUESTS",
    500: "SERVER_ERROR",
    502: "SERVICE_UNAVAILABLE",
    503: "SERVICE_UNAVAILABLE",
    504: "SERVICE_UNAVAILABLE",
}
FULFILLMENT = {"open": "PENDING", "closed": "FULFILLED", "cancelled": "CANCELED"}
PRODUCT_UPDATABLE = ("name", "description", "urlSlug", "tags", "isVisible", "variantAttributes", "seoOptions")
VARIANT_UPDATABLE = ("sku", "pricing", "attributes", "shippingMeasurements")
MASK64 = 0xFFFFFFFFFFFFFFFF
ORDER_TOTALS = ("subtotal", "shippingTotal", "discountTotal", "taxTotal", "grandTotal")
ORDER_REQUIRED = ("channelName", "externalOrderReference", "createdOn", "lineItems", "priceTaxInterpretation",
                  *ORDER_TOTALS, "fulfillmentStatus")
KIND = {"storepage": 1, "product": 2, "variant": 3, "order": 4, "line": 5, "new": 6}


def iso(dt: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as Squarespace writes timestamps."""
    if dt.utcoffset():
        dt = dt.astimezone(UTC)
    return dt.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_iso(value: str, name: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(400, f"{name} is not a valid ISO 8601 UTC date and time string", field=name,
                        subtype="INVALID_ARGUMENT") from None
    if dt.tzinfo is None:
        raise HttpError(400, f"{name} must be an ISO 8601 UTC date and time string", field=name,
                        subtype="INVALID_ARGUMENT")
    return dt.astimezone(UTC)


@lru_cache(maxsize=4096)
def _amount(value: Decimal | str | int) -> str:
    return f"{Decimal(value):.2f}"


def money(value: Decimal | str | int, currency: str = CURRENCY) -> dict[str, str]:
    """Squarespace money: the currency and the amount as a string."""
    return {"currency": currency, "value": _amount(value)}


def object_id(ts: datetime, *salt: int) -> str:
    """A Mongo ObjectId-like id: 8 hex of creation seconds, then 16 hex of a stable mix of `salt`."""
    h = 0x9E3779B97F4A7C15
    for x in salt:  # splitmix64 steps: cheap and deterministic (md5 would cost seconds at 100k rows)
        h = (h ^ x) * 0xBF58476D1CE4E5B9 & MASK64
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & MASK64
        h ^= h >> 31
    return f"{int(ts.timestamp()) & 0xFFFFFFFF:08x}{h:016x}"


def _missing(name: str) -> HttpError:
    return HttpError(400, f"'{name}' is required", field=name, subtype="MISSING_ARGUMENT")


def _invalid(name: str, why: str) -> HttpError:
    return HttpError(400, f"'{name}' {why}", field=name, subtype="INVALID_ARGUMENT")


class App(SandboxApp):
    """Squarespace Commerce API 1.0 with its store page, products, inventory and orders."""

    name = "squarespace"
    title = "Squarespace"

    def __init__(self, seed: int = 1, size: int = 50, currency: str = CURRENCY) -> None:
        # the store's currency (a Squarespace site sells in one): every money value carries it, and a
        # value in another currency is refused; tests set another one (`app.currency`, then reset)
        self.currency = currency
        self.order_limiter = WindowLimiter(100, 3600.0)
        self.webhooks = webhooks.sender()  # order notifications (webhooks.py)
        super().__init__(seed, size)
        self.limiter = WindowLimiter(300, 60.0, cooldown_s=60.0)

    # -- framework hooks ---------------------------------------------------------------------
    def api_root(self) -> str:
        return ROOT

    def credentials(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {SQUARESPACE.settings['api_key'].default}",
                "User-Agent": "any non-empty description of your app"}

    def authenticate(self, req: Request) -> None:
        if not (req.header("User-Agent") or "").strip():
            raise HttpError(400, "A User-Agent header is required", subtype="MISSING_ARGUMENT", field="User-Agent")
        if req.path.startswith(webhooks.SUBSCRIPTIONS):
            return webhooks.authenticate(req)  # OAuth only
        auth = req.header("Authorization") or ""
        if auth != f"Bearer {SQUARESPACE.settings['api_key'].default}":
            raise HttpError(401, "Unexpected Authorization header: missing, invalid or expired credentials")

    def error_response(self, err: HttpError) -> Response:
        ctx = hashlib.md5(f"{self.now().timestamp()}:{err.message}".encode()).hexdigest()[:9].upper()
        body = {
            "type": err.extra.get("type") or STATUS_TYPES.get(err.status, "INVALID_REQUEST_ERROR"),
            "subtype": err.extra.get("subtype"),
            "message": err.message if not err.field or err.field in err.message else f"{err.field}: {err.message}",
            "details": {"field": err.field} if err.field else None,
            "contextId": ctx,
        }
        return Response(err.status, body)

    def reset(self, seed: int | None = None, size: int | None = None) -> None:
        super().reset(seed, size)
        self.order_limiter.reset()

    def register_routes(self) -> None:
        r = self.route
        r("GET", f"{ROOT}/store_pages", self.list_store_pages, "store_pages")
        r("GET", f"{ROOT}/products", self.list_products, "products")
        r("POST", f"{ROOT}/products", self.create_product, "products")
        r("GET", rf"{ROOT}/products/(?P<ids>[^/]+)", self.get_products, "products/{ids}")
        r("POST", rf"{ROOT}/products/(?P<id>[^/,]+)", self.update_product, "products/{id}")
        r("POST", rf"{ROOT}/products/(?P<id>[^/]+)/variants", self.create_variant, "products/{id}/variants")
        r("POST", rf"{ROOT}/products/(?P<id>[^/]+)/variants/(?P<vid>[^/]+)", self.update_variant,
          "products/{id}/variants/{variantId}")
        r("GET", f"{ROOT}/inventory", self.list_inventory, "inventory")
        r("POST", f"{ROOT}/inventory/adjustments", self.adjust_inventory, "inventory/adjustments")
        webhooks.install(self)
        r("GET", rf"{ROOT}/inventory/(?P<ids>[^/]+)", self.get_inventory, "inventory/{variantIds}")
        r("GET", f"{ROOT}/orders", self.list_orders, "orders")
        r("POST", f"{ROOT}/orders", self.import_order, "orders")
        r("GET", rf"{ROOT}/orders/(?P<id>[^/]+)", self.get_order, "orders/{id}")
        r("POST", rf"{ROOT}/orders/(?P<id>[^/]+)/fulfillments", self.fulfill_order, "orders/{id}/fulfillments")

    # -- seed ----------------------------------------------------------------------------------
    def seed_data(self) -> None:
        gc_was = gc.isenabled()
        gc.disable()  # hundreds of thousands of small dicts: the collector would dominate seed time
        try:
            self._seed()
        finally:
            if gc_was:
                gc.enable()

    def _seed(self) -> None:
        w = build_world(self.seed, self.size)
        rng = w.rng("squarespace")
        self.products = Table("products")
        self.orders = Table("orders")
        self.variant_product: dict[str, str] = {}  # variantId -> productId
        self.variant_ids: list[str] = []  # sorted, for inventory paging
        self.idempotent: dict[str, tuple[str, str, Response]] = {}  # key -> (route, body hash, answer)
        self.serial = 0
        self.last_order_number = 0
        self.store_page = {"id": object_id(datetime(2025, 1, 2, tzinfo=UTC), self.seed, KIND["storepage"]),
                           "title": "Nettbutikk", "isEnabled": True}
        by_sku: dict[str, tuple[str, str, str]] = {}  # sku -> (variantId, productId, name)
        products: list[Record] = []
        changed: list[datetime] = []
        for fam in w.families:
            if not w.member("squarespace", "family", fam.key, 0.5):
                continue
            created = fam.changed - timedelta(days=rng.randrange(0, 300), seconds=rng.randrange(86400))
            pid = object_id(created, self.seed, KIND["product"], fam.key)
            slug = f"{ascii_slug(fam.name)}-{fam.key}"
            variants = []
            for i, v in enumerate(fam.variants):
                vid = object_id(created, self.seed, KIND["variant"], fam.key, i)
                on_sale = rng.random() < 0.1
                sku = maybe(rng, v.sku, 0.03)
                variants.append({
                    "id": vid,
                    "sku": sku,
                    "pricing": {
                        "basePrice": self.money(v.price_incl_vat),
                        "onSale": on_sale,
                        "salePrice": self.money(v.price_incl_vat * Decimal("0.8") if on_sale else 0),
                    },
                    "stock": {"quantity": v.stock, "unlimited": rng.random() < 0.04},
                    "attributes": {"Variant": v.option},
                    "shippingMeasurements": {
                        "weight": {"unit": "KILOGRAM", "value": round(rng.uniform(0.1, 3.0), 2)},
                        "dimensions": {"unit": "CENTIMETER", "length": rng.randrange(5, 60),
                                       "width": rng.randrange(5, 40), "height": rng.randrange(2, 30)},
                    },
                    "image": None,
                })
                self.variant_product[vid] = pid
                if sku:
                    by_sku[sku] = (vid, pid, fam.name)
            desc = maybe(rng, fam.description, 0.1)
            products.append({
                "id": pid,
                "type": "PHYSICAL",
                "storePageId": self.store_page["id"],
                "name": fam.name,
                "description": f"<p>{desc}</p>" if desc else "",
                "url": f"/nettbutikk/p/{slug}",
                "urlSlug": slug,
                "tags": [t for t in (fam.product_type, fam.vendor) if rng.random() < 0.7],
                "isVisible": rng.random() < 0.9,
                "variantAttributes": ["Variant"],
                "variants": variants,
                "images": [],
                "createdOn": iso(created),
                "modifiedOn": iso(fam.changed),
            })
            changed.append(fam.changed)
        self.products.load(products, changed)
        self.variant_ids = sorted(self.variant_product)
        self.skus = {v["sku"] for p in products for v in p["variants"] if v["sku"]}

        orders: list[Record] = []
        ochanged: list[datetime] = []
        families = {v.sku: (f, v) for f, v in w.variants}
        for o in w.orders:
            if o.person is None or not w.member("squarespace", "order", o.key, 0.25):
                continue
            p = w.persons[o.person - 1]
            status = FULFILLMENT[o.status]
            modified = o.created + timedelta(hours=rng.randrange(0, 72), seconds=rng.randrange(3600))
            lines = []
            subtotal = Decimal(0)
            for i, line in enumerate(o.lines):
                fam, var = families[line.sku]
                vid, pid, pname = by_sku.get(line.sku, (None, None, fam.name))
                subtotal += var.price_incl_vat * line.quantity
                lines.append({
                    "id": object_id(o.created, self.seed, KIND["line"], o.key, i),
                    "variantId": vid,
                    "sku": line.sku,
                    "productId": pid,
                    "productName": pname,
                    "quantity": line.quantity,
                    "unitPricePaid": self.money(var.price_incl_vat),
                    "variantOptions": [{"optionName": "Variant", "value": var.option}],
                    "customizations": None,
                    "imageUrl": None,
                    "lineItemType": "PHYSICAL_PRODUCT",
                })
            shipping = Decimal(0) if subtotal >= 1000 else Decimal(99)
            grand = subtotal + shipping
            addr = {
                "firstName": p.first_name,
                "lastName": maybe(rng, p.last_name, 0.03),
                "address1": p.address.line1,
                "address2": p.address.line2 or None,
                "city": p.address.city,
                "state": None,
                "countryCode": p.address.country,
                "postalCode": p.address.zip,
                "phone": vary_phone(rng, p.phone) or None,
            }
            orders.append({
                "id": object_id(o.created, self.seed, KIND["order"], o.key),
                "orderNumber": str(o.number),
                "createdOn": iso(o.created),
                "modifiedOn": iso(modified),
                "channel": "web",
                "testmode": False,
                "customerEmail": vary_email(rng, p.email),
                "customerId": None,
                "billingAddress": addr,
                "shippingAddress": dict(addr) if rng.random() < 0.9 else {**addr, "address1": p.address.line1 + " B"},
                "fulfillmentStatus": status,
                "fulfilledOn": iso(modified) if status == "FULFILLED" else None,
                "fulfillments": [],
                "lineItems": lines,
                "internalNotes": [],
                "shippingLines": [{"method": "Posten", "amount": self.money(shipping)}],
                "discountLines": [],
                "formSubmission": None,
                "subtotal": self.money(subtotal),
                "shippingTotal": self.money(shipping),
                "discountTotal": self.money(0),
                "taxTotal": self.money((grand - grand / Decimal("1.25")).quantize(Decimal("0.01"))),
                "refundedTotal": self.money(0),
                "grandTotal": self.money(grand),
                "channelName": None,
                "externalOrderReference": None,
                "paymentState": "PAID",
                "priceTaxInterpretation": "INCLUSIVE",
            })
            ochanged.append(modified)
            self.last_order_number = max(self.last_order_number, o.number)
        self.orders.load(orders, ochanged)

    # -- helpers ---------------------------------------------------------------------------------
    def money(self, value: Decimal | str | int) -> dict[str, str]:
        return money(value, self.currency)

    def stamp(self) -> datetime:
        """Now, at the millisecond precision the API shows, so filters and payloads agree."""
        now = self.now()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def new_id(self, kind: str) -> str:
        self.serial += 1
        return object_id(self.stamp(), self.seed, KIND["new"], KIND.get(kind, 0), self.serial,
                         int(self.now().timestamp() * 1e6))

    def save(self, table: Table, rec: Record, when: datetime) -> None:
        rec["modifiedOn"] = iso(when)
        created = rec["id"] not in table.rows
        table.put(rec, when)
        webhooks.notify(self, table.name, rec, created)

    def ordered(self, table: Table) -> list[tuple[datetime, str]]:
        """(modifiedOn, id) pairs in ascending order: the real lists are ordered by modifiedOn. The table's
        change index (`save` stores each record at its modifiedOn), kept by every write instead of a
        sort of every record after each one."""
        return table.by_change

    def page(self, req: Request, table: Table, key: str, where: Any = None) -> Response:
        """One page of `table` ordered by modifiedOn, honouring the date window and a dynamic cursor."""
        cursor = req.arg("cursor")
        filters = {k: req.arg(k) for k in ("modifiedAfter", "modifiedBefore", "type", "fulfillmentStatus")}
        if cursor:
            given = [k for k, v in filters.items() if v is not None]
            if given:
                raise _invalid("cursor", f"cannot be used with other parameters ({', '.join(given)})")
            state = decode_cursor(cursor)
            try:
                after_key = (parse_iso(state["m"], "cursor"), str(state["i"]))
            except (KeyError, TypeError):
                raise _invalid("cursor", "contains an invalid value") from None
            filters = state.get("f") or {}
        else:
            after_key = None
            filters = {k: v for k, v in filters.items() if v is not None}
        lo = hi = None
        if ("modifiedAfter" in filters) != ("modifiedBefore" in filters):
            name = "modifiedBefore" if "modifiedAfter" in filters else "modifiedAfter"
            raise HttpError(400, f"'{name}' is required when "
                            f"'{'modifiedAfter' if name == 'modifiedBefore' else 'modifiedBefore'}' is passed",
                            field=name, subtype="MISSING_ARGUMENT")
        if "modifiedAfter" in filters:
            lo = parse_iso(filters["modifiedAfter"], "modifiedAfter")
            hi = parse_iso(filters["modifiedBefore"], "modifiedBefore")
            if hi <= lo:
                raise _invalid("modifiedBefore", "must be after modifiedAfter")
        pred = where(filters) if where else None
        index = self.ordered(table)
        start = bisect.bisect_right(index, after_key) if after_key else (
            bisect.bisect_right(index, (lo, "\uffff")) if lo else 0)
        out: list[Record] = []
        more = False
        last: tuple[datetime, str] | None = None
        for ts, rid in index[start:]:
            if hi is not None and ts >= hi:
                break
            rec = table.rows[rid]
            if pred and not pred(rec):
                continue
            if len(out) == PAGE_SIZE:
                more = True
                break
            out.append(rec)
            last = (ts, rid)
        pagination: dict[str, Any] = {"hasNextPage": more, "nextPageCursor": None, "nextPageUrl": None}
        if more and last:
            token = encode_cursor({"m": iso(last[0]), "i": last[1], "f": filters})
            pagination.update(nextPageCursor=token, nextPageUrl=f"{req.path}?cursor={token}")
        return Response(200, {key: out, "pagination": pagination})

    def body(self, req: Request) -> dict[str, Any]:
        ctype = (req.header("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            raise HttpError(400, "Content-Type must be application/json", subtype="INVALID_CONTENT_TYPE",
                            field="Content-Type")
        data = req.json()
        if not isinstance(data, dict):
            raise HttpError(400, "request body must be a JSON object", subtype="INVALID_ARGUMENT")
        return data

    def idempotency(self, req: Request) -> tuple[str, str]:
        key = req.header("Idempotency-Key")
        if key is None or key == "":
            raise HttpError(400, "The Idempotency-Key header is required", field="Idempotency-Key",
                            subtype="MISSING_ARGUMENT")
        if not IDEMPOTENCY_KEY.match(key):
            raise _invalid("Idempotency-Key", "must be up to 64 letters, digits, dashes or underscores")
        digest = hashlib.sha256(req.body).hexdigest()
        return key, digest

    def replay(self, key: str, route: str, digest: str) -> Response | None:
        """The stored answer for a repeated key; 400 when the key was used with another request."""
        seen = self.idempotent.get(key)
        if seen is None:
            return None
        if seen[0] != route or seen[1] != digest:
            raise _invalid("Idempotency-Key", "has already been used by another request with a different body")
        old = seen[2]
        return Response(old.status, json.loads(json.dumps(old.body)) if old.body is not None else None)

    def find_product(self, pid: str) -> Record:
        rec = self.products.get(pid)
        if rec is None:
            raise HttpError(404, f"Product {pid} was not found", subtype="INVALID_ARGUMENT")
        return rec

    # -- validation of products and variants ------------------------------------------------------
    def check_money(self, m: Any, name: str) -> dict[str, str]:
        if not isinstance(m, dict):
            raise _invalid(name, "must be an object {currency, value}")
        if m.get("currency") != self.currency:
            raise HttpError(400, f"'{name}.currency' must be the store currency {self.currency}",
                            field=f"{name}.currency", subtype="CURRENCY_MISMATCH")
        value = m.get("value")
        if not isinstance(value, str):
            raise _invalid(f"{name}.value", "must be a decimal string such as \"899.00\"")
        try:
            d = Decimal(value)
        except InvalidOperation:
            raise _invalid(f"{name}.value", "must be a decimal string such as \"899.00\"") from None
        if not d.is_finite() or d < 0 or d.as_tuple().exponent < -2:  # type: ignore[operator]
            raise _invalid(f"{name}.value", "must be a non-negative amount with at most 2 decimals")
        return self.money(d)

    def check_pricing(self, p: Any, name: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
        if not isinstance(p, dict):
            raise _invalid(name, "must be an object")
        out = dict(base or {"onSale": False, "salePrice": self.money(0)})
        if "basePrice" in p:
            out["basePrice"] = self.check_money(p["basePrice"], f"{name}.basePrice")
        elif "basePrice" not in out:
            raise _missing(f"{name}.basePrice")
        if "salePrice" in p:
            out["salePrice"] = self.check_money(p["salePrice"], f"{name}.salePrice")
        if "onSale" in p:
            if not isinstance(p["onSale"], bool):
                raise _invalid(f"{name}.onSale", "must be a boolean")
            out["onSale"] = p["onSale"]
        return out

    def check_sku(self, sku: Any, name: str, current: str | None = None) -> str:
        if not isinstance(sku, str) or len(sku) > 60:
            raise _invalid(name, "must be a string of at most 60 characters")
        if sku and sku != current and sku in self.skus:
            raise HttpError(409, f"SKU '{sku}' is already in use", field=name, subtype="SKU_UNAVAILABLE")
        return sku

    def build_variant(self, v: Any, name: str, attrs: list[str]) -> Record:
        if not isinstance(v, dict):
            raise _invalid(name, "must be an object")
        if "pricing" not in v:
            raise _missing(f"{name}.pricing")
        sku = self.check_sku(v.get("sku") or f"SQ{self.serial + 1000000:07d}", f"{name}.sku")
        stock = v.get("stock") or {"quantity": 0, "unlimited": False}
        if not isinstance(stock, dict) or not isinstance(stock.get("quantity", 0), int) or stock.get("quantity", 0) < 0:
            raise _invalid(f"{name}.stock.quantity", "must be a non-negative integer")
        attributes = v.get("attributes") or {}
        if not isinstance(attributes, dict) or not all(isinstance(x, str) for x in attributes.values()):
            raise _invalid(f"{name}.attributes", "must map attribute names to strings")
        unknown = [a for a in attributes if a not in attrs]
        if unknown:
            raise _invalid(f"{name}.attributes", f"names {unknown[0]!r}, which is not in variantAttributes")
        return {
            "id": self.new_id("variant"),
            "sku": sku,
            "pricing": self.check_pricing(v["pricing"], f"{name}.pricing"),
            "stock": {"quantity": int(stock.get("quantity", 0)), "unlimited": bool(stock.get("unlimited", False))},
            "attributes": attributes,
            "shippingMeasurements": v.get("shippingMeasurements") or {
                "weight": {"unit": "KILOGRAM", "value": 0.0},
                "dimensions": {"unit": "CENTIMETER", "length": 0, "width": 0, "height": 0}},
            "image": None,
        }

    def check_product_fields(self, data: dict[str, Any], current: Record | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "name" in data:
            if not isinstance(data["name"], str) or not data["name"].strip():
                raise _invalid("name", "must be a non-empty string")
            out["name"] = data["name"]
        if "description" in data:
            if not isinstance(data["description"], str):
                raise _invalid("description", "must be a string")
            out["description"] = data["description"]
        if "isVisible" in data:
            if not isinstance(data["isVisible"], bool):
                raise _invalid("isVisible", "must be a boolean")
            out["isVisible"] = data["isVisible"]
        if "tags" in data:
            if not isinstance(data["tags"], list) or not all(isinstance(t, str) for t in data["tags"]):
                raise _invalid("tags", "must be a list of strings")
            out["tags"] = data["tags"]
        if "variantAttributes" in data:
            va = data["variantAttributes"]
            if not isinstance(va, list) or not all(isinstance(t, str) and t for t in va) or len(va) > 6:
                raise _invalid("variantAttributes", "must be a list of up to 6 attribute names")
            out["variantAttributes"] = va
        if "urlSlug" in data:
            slug = data["urlSlug"]
            if not isinstance(slug, str) or not re.fullmatch(r"[a-z0-9-]{1,200}", slug):
                raise _invalid("urlSlug", "must be lowercase letters, digits and dashes")
            if any(p["urlSlug"] == slug and p is not current for p in self.products.rows.values()):
                raise HttpError(409, f"URL slug '{slug}' is already in use", field="urlSlug",
                                subtype="URL_SLUG_UNAVAILABLE")
            out["urlSlug"] = slug
        if "seoOptions" in data:
            out["seoOptions"] = data["seoOptions"]
        return out

    # -- store pages -------------------------------------------------------------------------------
    def list_store_pages(self, req: Request) -> Response:
        return Response(200, {"storePages": [self.store_page],
                              "pagination": {"hasNextPage": False, "nextPageCursor": None, "nextPageUrl": None}})

    # -- products ------------------------------------------------------------------------------
    def list_products(self, req: Request) -> Response:
        def where(f: dict[str, str]) -> Any:
            if "type" not in f:
                return None
            types = {t.strip() for t in f["type"].split(",")}
            bad = types - {"PHYSICAL", "SERVICE", "GIFT_CARD", "DIGITAL"}
            if bad:
                raise _invalid("type", f"has an unknown product type {sorted(bad)[0]!r}")
            return lambda rec: rec["type"] in types

        return self.page(req, self.products, "products", where)

    def get_products(self, req: Request) -> Response:
        ids = [i for i in req.params["ids"].split(",") if i]
        if not ids or len(ids) > 50:
            raise _invalid("ids", "must name 1 to 50 products")
        out = []
        for pid in ids:
            out.append(self.find_product(pid))
        return Response(200, {"products": out})

    def create_product(self, req: Request) -> Response:
        data = self.body(req)
        if data.get("type") is None:
            raise _missing("type")
        if data["type"] != "PHYSICAL":
            raise HttpError(400, "'type' must be PHYSICAL in API 1.0", field="type",
                            subtype="OPERATION_NOT_ALLOWED_FOR_PRODUCT_TYPE")
        if not data.get("storePageId"):
            raise _missing("storePageId")
        if data["storePageId"] != self.store_page["id"]:
            raise HttpError(400, f"Store page {data['storePageId']} was not found", field="storePageId",
                            subtype="STORE_PAGE_NOT_FOUND")
        if "name" not in data:
            raise _missing("name")
        fields = self.check_product_fields(data, None)
        variants = data.get("variants")
        if not isinstance(variants, list) or not variants:
            raise HttpError(400, "'variants' must contain at least one variant", field="variants",
                            subtype="INSUFFICIENT_PRODUCT_VARIANTS")
        attrs = fields.get("variantAttributes", [])
        built = []
        skus: set[str] = set()
        for i, v in enumerate(variants):
            var = self.build_variant(v, f"variants[{i}]", attrs)
            if var["sku"] in skus:
                raise HttpError(409, f"SKU '{var['sku']}' is used twice", field=f"variants[{i}].sku",
                                subtype="SKU_UNAVAILABLE")
            skus.add(var["sku"])
            built.append(var)
        now = self.stamp()
        pid = self.new_id("product")
        slug = fields.get("urlSlug") or f"{ascii_slug(fields['name'])[:60] or 'product'}-{pid[-6:]}"
        rec = {
            "id": pid, "type": "PHYSICAL", "storePageId": self.store_page["id"],
            "name": fields["name"], "description": fields.get("description", ""),
            "url": f"/nettbutikk/p/{slug}", "urlSlug": slug, "tags": fields.get("tags", []),
            "isVisible": fields.get("isVisible", False), "variantAttributes": attrs,
            "variants": built, "images": [], "createdOn": iso(now), "modifiedOn": iso(now),
        }
        if "seoOptions" in fields:
            rec["seoOptions"] = fields["seoOptions"]
        self.save(self.products, rec, now)
        for var in built:
            self.index_variant(var, pid)
        return Response(201, rec)

    def index_variant(self, var: Record, pid: str) -> None:
        self.variant_product[var["id"]] = pid
        bisect.insort(self.variant_ids, var["id"])
        if var["sku"]:
            self.skus.add(var["sku"])

    def update_product(self, req: Request) -> Response:
        rec = self.find_product(req.params["id"])
        data = self.body(req)
        bad = [k for k in data if k not in PRODUCT_UPDATABLE]
        if bad:
            raise _invalid(bad[0], "cannot be updated here (variants and stock have their own endpoints)")
        fields = self.check_product_fields(data, rec)
        if "variantAttributes" in fields:
            used = {a for v in rec["variants"] for a in v["attributes"]}
            if used - set(fields["variantAttributes"]):
                raise _invalid("variantAttributes", "must keep every attribute the variants use")
        rec.update(fields)
        if "urlSlug" in fields:
            rec["url"] = f"/nettbutikk/p/{fields['urlSlug']}"
        self.save(self.products, rec, self.stamp())
        return Response(200, rec)

    def create_variant(self, req: Request) -> Response:
        rec = self.find_product(req.params["id"])
        var = self.build_variant(self.body(req), "variant", rec["variantAttributes"])
        rec["variants"].append(var)
        self.index_variant(var, rec["id"])
        self.save(self.products, rec, self.stamp())
        return Response(201, var)

    def update_variant(self, req: Request) -> Response:
        rec = self.find_product(req.params["id"])
        var = next((v for v in rec["variants"] if v["id"] == req.params["vid"]), None)
        if var is None:
            raise HttpError(404, f"Variant {req.params['vid']} was not found", subtype="PRODUCT_VARIANT_NOT_FOUND")
        data = self.body(req)
        bad = [k for k in data if k not in VARIANT_UPDATABLE]
        if bad:
            why = "is changed through the Inventory API" if bad[0] == "stock" else "cannot be updated"
            raise _invalid(bad[0], why)
        changes: dict[str, Any] = {}
        if "sku" in data:
            changes["sku"] = self.check_sku(data["sku"], "sku", var["sku"])
        if "pricing" in data:
            changes["pricing"] = self.check_pricing(data["pricing"], "pricing", var["pricing"])
        if "attributes" in data:
            a = data["attributes"]
            if not isinstance(a, dict) or any(k not in rec["variantAttributes"] or not isinstance(x, str)
                                              for k, x in a.items()):
                raise _invalid("attributes", "must map the product's variantAttributes to strings")
            changes["attributes"] = a
        if "shippingMeasurements" in data:
            changes["shippingMeasurements"] = data["shippingMeasurements"]
        if "sku" in changes and var["sku"] != changes["sku"]:
            self.skus.discard(var["sku"])
            if changes["sku"]:
                self.skus.add(changes["sku"])
        var.update(changes)
        self.save(self.products, rec, self.stamp())
        return Response(200, var)

    # -- inventory -------------------------------------------------------------------------------
    def inventory_item(self, vid: str) -> Record:
        prod = self.products.rows[self.variant_product[vid]]
        var = next(v for v in prod["variants"] if v["id"] == vid)
        opts = ", ".join(f"{k}: {x}" for k, x in var["attributes"].items())
        return {"variantId": vid, "sku": var["sku"], "descriptor": f"{prod['name']} [{opts}]" if opts else prod["name"],
                "isUnlimited": var["stock"]["unlimited"], "quantity": var["stock"]["quantity"]}

    def list_inventory(self, req: Request) -> Response:
        cursor = req.arg("cursor")
        start = 0
        if cursor:
            state = decode_cursor(cursor)
            start = bisect.bisect_right(self.variant_ids, str(state.get("i", "")))
        ids = self.variant_ids[start : start + PAGE_SIZE + 1]
        more = len(ids) > PAGE_SIZE
        ids = ids[:PAGE_SIZE]
        pagination: dict[str, Any] = {"hasNextPage": more, "nextPageCursor": None, "nextPageUrl": None}
        if more:
            token = encode_cursor({"i": ids[-1]})
            pagination.update(nextPageCursor=token, nextPageUrl=f"{req.path}?cursor={token}")
        return Response(200, {"inventory": [self.inventory_item(v) for v in ids], "pagination": pagination})

    def get_inventory(self, req: Request) -> Response:
        ids = [i for i in req.params["ids"].split(",") if i]
        if not ids or len(ids) > 50:
            raise _invalid("variantIds", "must name 1 to 50 variants")
        missing = [i for i in ids if i not in self.variant_product]
        if missing:
            raise HttpError(404, f"InventoryItem {missing[0]} was not found", subtype="INVALID_ARGUMENT")
        return Response(200, {"inventory": [self.inventory_item(i) for i in ids]})

    def adjust_inventory(self, req: Request) -> Response:
        key, digest = self.idempotency(req)
        data = self.body(req)
        again = self.replay(key, "inventory", digest)
        if again is not None:
            return again
        ops: list[tuple[str, str, int]] = []
        for kind in ("incrementOperations", "decrementOperations", "setFiniteOperations"):
            items = data.get(kind) or []
            if not isinstance(items, list):
                raise _invalid(kind, "must be a list")
            for i, op in enumerate(items):
                name = f"{kind}[{i}]"
                if not isinstance(op, dict) or not isinstance(op.get("variantId"), str):
                    raise _missing(f"{name}.variantId")
                q = op.get("quantity")
                if not isinstance(q, int) or isinstance(q, bool) or q < 0 or (kind != "setFiniteOperations" and q == 0):
                    raise _invalid(f"{name}.quantity", "must be a positive integer")
                ops.append((kind, op["variantId"], q))
        unlimited = data.get("setUnlimitedOperations") or []
        if not isinstance(unlimited, list) or not all(isinstance(v, str) for v in unlimited):
            raise _invalid("setUnlimitedOperations", "must be a list of variant ids")
        ops += [("setUnlimitedOperations", v, 0) for v in unlimited]
        unknown = [k for k in data if k not in ("incrementOperations", "decrementOperations",
                                                "setFiniteOperations", "setUnlimitedOperations")]
        if unknown:
            raise _invalid(unknown[0], "is not a known operation list")
        if not ops:
            raise HttpError(400, "No operations were specified", subtype="MISSING_ARGUMENT", field="incrementOperations")
        if len(ops) > 50:
            raise _invalid("operations", "may not exceed 50 per request")
        seen: set[str] = set()
        for kind, vid, _ in ops:
            if vid not in self.variant_product:
                raise HttpError(400, f"InventoryItem {vid} was not found", field=f"{kind}.variantId",
                                subtype="INVENTORY_ITEM_NOT_FOUND")
            if vid in seen:
                raise _invalid(f"{kind}.variantId", f"references InventoryItem {vid} more than once")
            seen.add(vid)
        stocks = {vid: self.variant(vid)["stock"] for _, vid, _ in ops}
        for kind, vid, q in ops:  # check everything before changing anything
            st = stocks[vid]
            if kind in ("incrementOperations", "decrementOperations") and st["unlimited"]:
                raise HttpError(409, f"InventoryItem {vid} has unlimited stock", subtype="STOCK_NOT_TRACKED",
                                field=f"{kind}.variantId")
            if kind == "decrementOperations" and st["quantity"] < q:
                raise HttpError(409, f"InventoryItem {vid} has only {st['quantity']} in stock",
                                subtype="INSUFFICIENT_STOCK", field=f"{kind}.quantity")
            if kind == "incrementOperations" and st["quantity"] + q > 999_999_999:
                raise HttpError(409, f"InventoryItem {vid} would exceed the maximum stock",
                                subtype="STOCK_EXCEEDS_MAX", field=f"{kind}.quantity")
        for kind, vid, q in ops:
            st = stocks[vid]
            if kind == "incrementOperations":
                st["quantity"] += q
            elif kind == "decrementOperations":
                st["quantity"] -= q
            elif kind == "setFiniteOperations":
                st.update(quantity=q, unlimited=False)
            else:
                st["unlimited"] = True
        # The stock is part of the product's variants, but nothing in the Products or Inventory docs says a
        # stock change bumps the product's `modifiedOn`: the sandbox does not, so the engine cannot rely on it
        # (the inventory probe compares the whole listing instead, client.probe).
        resp = Response(204)
        self.idempotent[key] = ("inventory", digest, resp)
        return resp

    def variant(self, vid: str) -> Record:
        prod = self.products.rows[self.variant_product[vid]]
        return next(v for v in prod["variants"] if v["id"] == vid)

    # -- orders ------------------------------------------------------------------------------------
    def list_orders(self, req: Request) -> Response:
        def where(f: dict[str, str]) -> Any:
            if "fulfillmentStatus" not in f:
                return None
            status = f["fulfillmentStatus"]
            if status not in ("PENDING", "FULFILLED", "CANCELED"):
                raise _invalid("fulfillmentStatus", "must be PENDING, FULFILLED or CANCELED")
            return lambda rec: rec["fulfillmentStatus"] == status

        return self.page(req, self.orders, "result", where)

    def get_order(self, req: Request) -> Response:
        if not re.fullmatch(ID, req.params["id"]):
            raise _invalid("id", "is not in the expected format")
        rec = self.orders.get(req.params["id"])
        if rec is None:
            raise HttpError(404, f"Order {req.params['id']} was not found", subtype="INVALID_ARGUMENT")
        return Response(200, rec)

    def import_order(self, req: Request) -> Response:
        key, digest = self.idempotency(req)
        data = self.body(req)
        again = self.replay(key, "orders", digest)
        if again is not None:
            return again
        # The create-order documentation (https://developers.squarespace.com/commerce-apis/create-order)
        # marks these Required; `fulfillments` is Optional there. A public connector's captured traffic
        # shows a body without `subtotal` answered with 400, so every documented total is enforced.
        for name in ORDER_REQUIRED:
            if data.get(name) is None:
                raise _missing(name)
        if not isinstance(data["channelName"], str) or not 0 < len(data["channelName"]) <= 30:
            raise _invalid("channelName", "must be 1 to 30 characters")
        if not isinstance(data["externalOrderReference"], str) or not 0 < len(data["externalOrderReference"]) <= 200:
            raise _invalid("externalOrderReference", "must be 1 to 200 characters")
        created = parse_iso(str(data["createdOn"]), "createdOn")
        if data["priceTaxInterpretation"] not in ("INCLUSIVE", "EXCLUSIVE"):
            raise _invalid("priceTaxInterpretation", "must be INCLUSIVE or EXCLUSIVE")
        status = data["fulfillmentStatus"]
        if status not in ("PENDING", "FULFILLED"):
            raise _invalid("fulfillmentStatus", "must be PENDING or FULFILLED")
        if status == "FULFILLED" and not data.get("fulfilledOn"):
            raise _missing("fulfilledOn")
        behaviour = data.get("inventoryBehavior", "SKIP")
        if behaviour not in ("DEDUCT", "SKIP"):
            raise _invalid("inventoryBehavior", "must be DEDUCT or SKIP")
        if not isinstance(data.get("fulfillments", []), list):
            raise _invalid("fulfillments", "must be a list")
        if not isinstance(data["lineItems"], list) or not data["lineItems"]:
            raise _invalid("lineItems", "cannot be empty")
        email = data.get("customerEmail")
        if email is not None and (not isinstance(email, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email)):
            raise _invalid("customerEmail", "is not a valid e-mail address")
        lines = []
        deduct: dict[str, int] = {}
        for i, li in enumerate(data["lineItems"]):
            name = f"lineItems[{i}]"
            if not isinstance(li, dict):
                raise _invalid(name, "must be an object")
            kind = li.get("lineItemType")
            # "Before using this endpoint, confirm that the products for the third-party order are available
            # on the Squarespace merchant site ... Requests to create an order without an existing Squarespace
            # products results in an error" (create-order docs): a line is a product variant, nothing else.
            if kind is None:
                raise _missing(f"{name}.lineItemType")
            if kind != "PHYSICAL_PRODUCT":
                raise _invalid(f"{name}.lineItemType", "must be PHYSICAL_PRODUCT: an imported order's lines must "
                               "name existing Squarespace product variants")
            q = li.get("quantity")
            if not isinstance(q, int) or isinstance(q, bool) or not 0 < q <= 1_000_000:
                raise _invalid(f"{name}.quantity", "must be an integer from 1 to 1,000,000")
            if "unitPricePaid" not in li:
                raise _missing(f"{name}.unitPricePaid")
            price = self.check_money(li["unitPricePaid"], f"{name}.unitPricePaid")
            vid = li.get("variantId")
            if not vid:
                raise _missing(f"{name}.variantId")
            if vid not in self.variant_product:
                raise HttpError(400, f"Product variant {vid} was not found", field=f"{name}.variantId",
                                subtype="PRODUCT_VARIANT_NOT_FOUND")
            prod = self.products.rows[self.variant_product[vid]]
            var = self.variant(vid)
            deduct[vid] = deduct.get(vid, 0) + q
            lines.append({"id": self.new_id("line"), "variantId": vid, "sku": var["sku"],
                          "productId": prod["id"], "productName": prod["name"], "quantity": q,
                          "unitPricePaid": price,
                          "variantOptions": [{"optionName": k, "value": x} for k, x in var["attributes"].items()],
                          "customizations": None, "imageUrl": None, "lineItemType": kind})
        # Whether the totals must add up is not documented; they are kept as sent.
        totals = {name: self.check_money(data[name], name) for name in ORDER_TOTALS}
        for name in ("billingAddress", "shippingAddress"):
            if name in data and not isinstance(data[name], dict):
                raise _invalid(name, "must be an address object")
        if behaviour == "DEDUCT":
            for vid, q in deduct.items():
                st = self.variant(vid)["stock"]
                if not st["unlimited"] and st["quantity"] < q:
                    raise HttpError(409, f"Product variant {vid} has insufficient stock", subtype="INSUFFICIENT_STOCK",
                                    field="lineItems")
        # Counted only for orders that would really be created, like the real per-hour cap.
        self.order_limiter.speed = self.limiter.speed
        self.order_limiter.enabled = self.limiter.enabled
        allowed, headers = self.order_limiter.admit()
        if not allowed:
            err = HttpError(429, "Order creation with an API key is limited to 100 orders per hour")
            resp = self.error_response(err)
            resp.headers.update(headers)
            return resp
        now = self.stamp()
        if behaviour == "DEDUCT":
            for vid, q in deduct.items():
                st = self.variant(vid)["stock"]
                if not st["unlimited"]:
                    st["quantity"] -= q  # a stock change: the product's modifiedOn stays (see adjust_inventory)
        self.last_order_number += 1
        zero = self.money(0)
        address_keys = ("firstName", "lastName", "address1", "address2", "city", "state", "countryCode",
                        "postalCode", "phone")
        rec = {
            "id": self.new_id("order"),
            "orderNumber": str(self.last_order_number),
            "createdOn": iso(created),
            "modifiedOn": iso(now),
            "channel": "external",
            "testmode": False,
            "customerEmail": email,
            "customerId": None,
            "billingAddress": {k: (data.get("billingAddress") or {}).get(k) for k in address_keys},
            "shippingAddress": {k: (data.get("shippingAddress") or {}).get(k) for k in address_keys},
            "fulfillmentStatus": status,
            "fulfilledOn": data.get("fulfilledOn") if status == "FULFILLED" else None,
            "fulfillments": data.get("fulfillments") or [],
            "lineItems": lines,
            "internalNotes": [],
            "shippingLines": data.get("shippingLines") or [],
            "discountLines": data.get("discountLines") or [],
            "formSubmission": None,
            "subtotal": totals["subtotal"],
            "shippingTotal": totals["shippingTotal"],
            "discountTotal": totals["discountTotal"],
            "taxTotal": totals["taxTotal"],
            "refundedTotal": zero,
            "grandTotal": totals["grandTotal"],
            "channelName": data["channelName"],
            "externalOrderReference": data["externalOrderReference"],
            "paymentState": "PAID",
            "priceTaxInterpretation": data["priceTaxInterpretation"],
        }
        self.save(self.orders, rec, now)
        resp = Response(201, rec)
        self.idempotent[key] = ("orders", digest, Response(201, json.loads(json.dumps(rec))))
        return resp

    def fulfill_order(self, req: Request) -> Response:
        rec = self.orders.get(req.params["id"])
        if rec is None:
            raise HttpError(404, f"Order {req.params['id']} was not found", subtype="INVALID_ARGUMENT")
        data = self.body(req)
        if not isinstance(data.get("shouldSendNotification"), bool):
            raise _missing("shouldSendNotification")
        shipments = data.get("shipments") or []
        if not isinstance(shipments, list):
            raise _invalid("shipments", "must be a list")
        for i, s in enumerate(shipments):
            for name in ("shipDate", "carrierName", "trackingNumber"):
                if not isinstance(s, dict) or not s.get(name):
                    raise _missing(f"shipments[{i}].{name}")
            parse_iso(s["shipDate"], f"shipments[{i}].shipDate")
            url = s.get("trackingUrl")
            if url is not None and not str(url).startswith(("http://", "https://")):
                raise _invalid(f"shipments[{i}].trackingUrl", "is not a valid URL")
        if rec["fulfillmentStatus"] == "CANCELED":
            raise HttpError(409, "A canceled order cannot be fulfilled")
        now = self.stamp()
        rec["fulfillments"] = rec["fulfillments"] + [
            {k: s.get(k) for k in ("shipDate", "carrierName", "service", "trackingNumber", "trackingUrl")}
            for s in shipments]
        rec["fulfillmentStatus"] = "FULFILLED"
        rec["fulfilledOn"] = rec["fulfilledOn"] or iso(now)
        self.save(self.orders, rec, now)
        return Response(204)
