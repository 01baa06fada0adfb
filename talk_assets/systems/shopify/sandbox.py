"""A fake Shopify Admin REST API (2026-07) seeded from the shared world.

It serves the real paths (`/admin/api/{version}/customers.json`, ...), the real auth header, wrapped
bodies, string money, large integer ids, `Link`-header cursor pagination with Shopify's rules
(`page_info` may only travel with `limit` and `fields`), Shopify's error shapes and its leaky-bucket
rate limit, so a client written against it works against a real shop by changing the base URL and
the access token. Records are stored as plain dicts already in API shape (fast to seed, and a
response is just a projection); writes replace a record rather than mutate it, so a response being
encoded on another thread never sees half an update.
"""

from __future__ import annotations

import bisect
import copy
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse

from talk_assets import config
from talk_assets.sandbox.server import (
    HttpError,
    LeakyBucket,
    Request,
    Response,
    SandboxApp,
    decode_cursor,
    encode_cursor,
)
from talk_assets.sandbox.store import Record, Table
from talk_assets.sandbox.world import ascii_slug, build_world, maybe, vary_email, vary_phone
from talk_assets.systems.shopify import webhooks
from talk_assets.systems.shopify.graphql_sandbox import CountingTable, RestBucket, mark_request


class _RestBucket(RestBucket, LeakyBucket):
    """Shopify's REST bucket; GraphQL requests are limited by query cost instead."""


SHOP_TZ = ZoneInfo("Europe/Oslo")  # Shopify renders timestamps in the shop's time zone
API_VERSION = "2026-07"
AUTH_ERROR = "[API] Invalid API key or access token (unrecognized login or wrong password)"
RATE_ERROR = "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
PAGE_INFO_HELP = "See https://shopify.dev/api/usage/pagination-rest for more information."
INVENTORY_WRITE_ERROR = (
    "Write requests to inventory_quantity and inventory_quantity_adjustment are no longer supported. "
    "Please use the Inventory Levels API."
)
MAX_LIMIT = 250
DEFAULT_LIMIT = 50

# Id ranges look like a real shop's (large integers); each kind has its own range.
CUSTOMER_BASE = 7_000_000_000
ORG_CUSTOMER_BASE = 7_500_000_000
ADDRESS_BASE = 9_000_000_000
PRODUCT_BASE = 8_000_000_000
VARIANT_BASE = 44_000_000_000
ITEM_BASE = 46_000_000_000
ORDER_BASE = 5_000_000_000
LINE_BASE = 13_000_000_000
LOCATION_ID = 70_000_000_001
# Staff ids are large and unrelated to any other system's user ids (a real shop's staff ids are Shopify's
# own numbers, `gid://shopify/StaffMember/<n>`); drawn per seed so no sequence lines up with the CRM's.
STAFF_BASE = 100_000_000
STAFF_SHARE = 0.7  # not every CRM user has a Shopify staff account

COUNTRY_NAMES = {"NO": "Norway", "SE": "Sweden", "DK": "Denmark", "FI": "Finland"}
CUSTOMER_TAGS = ("", "", "", "vip", "nyhetsbrev", "b2b", "vip, nyhetsbrev")
PRODUCT_TAGS = ("", "nyhet", "bestselger", "ull, vinter", "tilbud")
CUSTOMER_NOTES = ("Foretrekker levering på dagtid.", "Ring før levering.", "Stamkunde.")
ORDER_NOTES = ("Levér til resepsjonen.", "Gaveinnpakning, takk.", "Haster.")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
V = r"/admin/api/(?P<version>\d{4}-\d{2}|unstable)"

CUSTOMER_WRITABLE = ("email", "first_name", "last_name", "phone", "note", "tags", "verified_email",
                     "state", "tax_exempt", "multipass_identifier", "currency")
PRODUCT_WRITABLE = ("title", "body_html", "vendor", "product_type", "tags", "status", "handle",
                    "template_suffix", "published_scope")
VARIANT_WRITABLE = ("sku", "barcode", "option1", "option2", "option3", "taxable", "grams", "weight",
                    "weight_unit", "inventory_policy", "inventory_management", "requires_shipping",
                    "fulfillment_service")
ORDER_WRITABLE = ("note", "email", "phone", "tags", "po_number", "buyer_accepts_marketing",
                  "shipping_address", "billing_address", "note_attributes")


def ts(dt: datetime) -> str:
    """Shopify's timestamp format: ISO 8601 in the shop's zone, with offset, whole seconds."""
    return dt.astimezone(SHOP_TZ).isoformat(timespec="seconds")


@lru_cache(maxsize=4096)
def money(value: Decimal) -> str:
    """Money as Shopify sends it: a two-decimal string (cached: seed prices repeat a lot)."""
    return f"{value.quantize(Decimal('0.01'))}"


def e164(phone: str) -> str | None:
    """Shopify stores customer phones in E.164; Norwegian numbers without a prefix get +47."""
    if not phone:
        return None
    if phone.startswith("+47 ") and len(phone) == 12:  # the seed world's format, the common case
        return "+47" + phone[4:]
    digits = re.sub(r"[\s\-().]", "", phone)
    if not digits:
        return None
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not digits.startswith("+"):
        digits = "+47" + digits
    return digits if re.fullmatch(r"\+\d{8,15}", digits) else "invalid"


# Field lengths Shopify refuses past, in characters. Shopify's own REST reference does not state
# them: the figures are from a third-party table of Shopify's product limits
# (https://sync.krokanti.com/en/blog/shopify-product-limits-variants-options-2026: product title,
# handle, SKU, barcode and each tag up to 255 characters). The answer is Rails' validation message in
# Shopify's REST 422 shape, `{"errors": {"title": ["is too long (maximum is 255 characters)"]}}`.
# No documented limit was found for customer first_name/last_name/note, order note or customer and
# order tags, so the sandbox sets none there rather than invent one.
PRODUCT_LIMITS = {"title": 255, "handle": 255}
VARIANT_LIMITS = {"sku": 255, "barcode": 255}
TAG_LIMIT = 255


def check_lengths(values: dict[str, Any], limits: dict[str, int], errors: dict[str, list[str]]) -> None:
    """Add Shopify's "is too long" error for each string in `values` over its limit."""
    for name, limit in limits.items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            errors.setdefault(name, []).append(f"is too long (maximum is {limit} characters)")


def normalize_tags(value: Any) -> str:
    """Tags are one comma-separated string; Shopify trims them and drops duplicates and blanks."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    seen: list[str] = []
    for t in items:
        t = str(t).strip()
        if t and t not in seen:
            seen.append(t)
    return ", ".join(seen)


def handleize(title: str) -> str:
    return "-".join(p for p in (ascii_slug(w) for w in title.split()) if p) or "product"


def gid(kind: str, rid: int) -> str:
    return f"gid://shopify/{kind}/{rid}"


def invalid(errors: dict[str, list[str]]) -> HttpError:
    """A 422 in Shopify's shape `{"errors": {"field": ["message"]}}`."""
    field, messages = next(iter(errors.items()))
    return HttpError(422, f"{field} {messages[0]}", field=field, errors=errors)


def parse_money(value: Any, field: str, errors: dict[str, list[str]], *, allow_null: bool = False) -> str | None:
    """Money arrives as a string or a number; it is stored as a two-decimal string."""
    if value is None or value == "":
        if allow_null:
            return None
        errors.setdefault(field, []).append("can't be blank")
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        errors.setdefault(field, []).append("is not a number")
        return None
    if not d.is_finite():
        errors.setdefault(field, []).append("is not a number")
        return None
    if d < 0:
        errors.setdefault(field, []).append("must be greater than or equal to 0")
        return None
    return money(d)


# mutations that change no shop data: a bulk export's start and cancel (the reads of a full collect)
READ_MUTATIONS = frozenset({"bulkOperationRunQuery", "bulkOperationCancel", "__typename"})


class App(SandboxApp):
    """The Shopify sandbox: customers, products (nested variants), orders, locations, inventory."""

    name = "shopify"
    title = "Shopify"

    def __init__(self, seed: int = 1, size: int = 50) -> None:
        self.webhooks = webhooks.sender()  # notifications, subscribed through webhooks.json (webhooks.py)
        self._graphql: Any = None
        super().__init__(seed, size)
        self.limiter = _RestBucket(40, 2.0, "X-Shopify-Shop-Api-Call-Limit")

    # -- GraphQL Admin API (graphql_sandbox.py): built on first use, the schema is big -----------
    def graphql_api(self) -> Any:
        if self._graphql is None:
            from talk_assets.systems.shopify.graphql_sandbox import GraphQLApi

            self._graphql = GraphQLApi(self)
        return self._graphql

    def graphql(self, req: Request) -> Response:
        return self.graphql_api().handle(req)

    def writes_data(self, req: Request) -> bool:
        """Every GraphQL call is a POST: only a mutation can write, and not every mutation writes data
        (`READ_MUTATIONS`: a bulk export is started by a mutation). A query, the shorthand `{...}`
        included, never does (https://spec.graphql.org/October2021/#sec-Language.Operations)."""
        if not req.path.endswith("/graphql.json"):
            return super().writes_data(req)
        try:
            document = parse(str(json.loads(req.body or b"{}").get("query") or ""))
        except (ValueError, AttributeError, GraphQLError):
            return False  # refused as malformed: nothing written
        return any(isinstance(s, FieldNode) and s.name.value not in READ_MUTATIONS
                   for op in document.definitions
                   if isinstance(op, OperationDefinitionNode) and op.operation == OperationType.MUTATION
                   for s in op.selection_set.selections)

    def bulk_result(self, req: Request) -> Response:
        data = self.graphql_api().bulk_file(req.params["name"])
        if data is None:
            raise HttpError(404, "Not Found")
        return Response(200, data, content_type="application/jsonl")

    def reset(self, seed: int | None = None, size: int | None = None) -> None:
        super().reset(seed, size)
        if self._graphql is not None:
            self._graphql.reset()

    def control(self, req: Request) -> Response:
        sub = req.path[len("/_sandbox/"):].strip("/")
        if sub.startswith("graphql/"):
            from talk_assets.systems.shopify.graphql_sandbox import control

            body = req.json() if req.body else {}
            resp = control(self.graphql_api(), sub, req.method, body,
                           config.SHOPIFY.settings["access_token"].default)
            if resp is not None:
                return resp
        return super().control(req)

    # -- framework hooks ------------------------------------------------------------------------
    def credentials(self) -> dict[str, str]:
        return {"X-Shopify-Access-Token": config.SHOPIFY.settings["access_token"].default,
                "api_version": API_VERSION}

    def api_root(self) -> str:
        return f"/admin/api/{API_VERSION}"

    def authenticate(self, req: Request) -> None:
        mark_request(req.path)
        if req.path.startswith("/bulk-results/"):
            return  # a bulk result URL is a signed link at Shopify: no access token needed
        if req.header("X-Shopify-Access-Token") != config.SHOPIFY.settings["access_token"].default:
            raise HttpError(401, AUTH_ERROR)

    def error_response(self, err: HttpError) -> Response:
        if "errors" in err.extra:
            body: Any = err.extra["errors"]
        elif err.status == 401:
            body = AUTH_ERROR
        elif err.status == 404:
            body = "Not Found"
        elif err.status == 429:
            body = RATE_ERROR
        elif err.status == 422:
            body = {err.field or "base": [err.message]}
        elif err.field:
            body = {err.field: err.message}
        else:
            body = err.message
        return Response(err.status, {"errors": body})

    def register_routes(self) -> None:
        r = self.route
        r("GET", V + r"/customers\.json", self.list_customers, "customers.json")
        r("POST", V + r"/customers\.json", self.create_customer, "customers.json")
        r("GET", V + r"/customers/count\.json", self.count_customers, "customers/count.json")
        r("GET", V + r"/customers/search\.json", self.search_customers, "customers/search.json")
        r("GET", V + r"/customers/(?P<id>\d+)\.json", self.get_customer, "customers/{id}.json")
        r("PUT", V + r"/customers/(?P<id>\d+)\.json", self.update_customer, "customers/{id}.json")
        r("DELETE", V + r"/customers/(?P<id>\d+)\.json", self.delete_customer, "customers/{id}.json")
        r("GET", V + r"/products\.json", self.list_products, "products.json")
        r("POST", V + r"/products\.json", self.create_product, "products.json")
        r("GET", V + r"/products/count\.json", self.count_products, "products/count.json")
        r("GET", V + r"/products/(?P<id>\d+)\.json", self.get_product, "products/{id}.json")
        r("PUT", V + r"/products/(?P<id>\d+)\.json", self.update_product, "products/{id}.json")
        r("DELETE", V + r"/products/(?P<id>\d+)\.json", self.delete_product, "products/{id}.json")
        r("GET", V + r"/orders\.json", self.list_orders, "orders.json")
        r("POST", V + r"/orders\.json", self.create_order, "orders.json")
        r("GET", V + r"/orders/count\.json", self.count_orders, "orders/count.json")
        r("GET", V + r"/orders/(?P<id>\d+)\.json", self.get_order, "orders/{id}.json")
        r("PUT", V + r"/orders/(?P<id>\d+)\.json", self.update_order, "orders/{id}.json")
        r("POST", V + r"/orders/(?P<id>\d+)/close\.json", self.close_order, "orders/{id}/close.json")
        r("POST", V + r"/orders/(?P<id>\d+)/open\.json", self.open_order, "orders/{id}/open.json")
        r("POST", V + r"/orders/(?P<id>\d+)/cancel\.json", self.cancel_order, "orders/{id}/cancel.json")
        r("GET", V + r"/locations\.json", self.list_locations, "locations.json")
        r("GET", V + r"/locations/count\.json", self.count_locations, "locations/count.json")
        r("GET", V + r"/locations/(?P<id>\d+)\.json", self.get_location, "locations/{id}.json")
        r("GET", V + r"/inventory_levels\.json", self.list_levels, "inventory_levels.json")
        r("GET", V + r"/users\.json", self.list_users, "users.json")
        r("GET", V + r"/users/(?P<id>\d+)\.json", self.get_user, "users/{id}.json")
        r("POST", V + r"/inventory_levels/set\.json", self.set_level, "inventory_levels/set.json")
        webhooks.install(self)
        r("POST", V + r"/graphql\.json", self.graphql, "graphql.json")
        r("GET", r"/bulk-results/(?P<name>[0-9a-f]{32})\.jsonl", self.bulk_result, "bulk-results")

    # -- seed -----------------------------------------------------------------------------------
    def seed_data(self) -> None:
        w = build_world(self.seed, self.size)
        rng = w.rng("shopify")
        self.customers = CountingTable("customers")
        self.products = CountingTable("products")
        self.orders = CountingTable("orders")
        self.locations = CountingTable("locations")
        self.users = CountingTable("users")
        self.levels = CountingTable("inventory_levels", id_field="inventory_item_id")
        self.created: dict[str, dict[Any, datetime]] = {
            "customers": {}, "products": {}, "orders": {}, "locations": {}, "inventory_levels": {}, "users": {}}
        self.email_index: dict[str, int] = {}
        self.phone_index: dict[str, int] = {}
        self.item_index: dict[int, tuple[int, int]] = {}  # inventory_item_id -> (product_id, variant_id)
        self.variant_index: dict[int, int] = {}  # variant_id -> product_id
        self.handles: set[str] = set()

        # One location.
        loc_created = w.persons[0].changed - timedelta(days=400) if w.persons else self.now()
        location = {
            "id": LOCATION_ID, "name": "Lager Oslo", "address1": "Industriveien 12", "address2": None,
            "city": "Oslo", "zip": "0581", "province": None, "country": "NO", "phone": "+4722000000",
            "created_at": ts(loc_created), "updated_at": ts(loc_created), "country_code": "NO",
            "country_name": "Norway", "province_code": None, "legacy": False, "active": True,
            "admin_graphql_api_id": gid("Location", LOCATION_ID), "localized_country_name": "Norway",
            "localized_province_name": None,
        }
        self.locations.load([location], [loc_created])
        self.created["locations"][LOCATION_ID] = loc_created

        # Customers: persons and organisations (the org's mailbox, its contact person's name).
        recs: list[Record] = []
        changed: list[datetime] = []
        person_customer: dict[int, Record] = {}
        persons = w.persons
        for p in persons:
            if not w.member("shopify", "person", p.key, 0.6):
                continue
            cid = CUSTOMER_BASE + p.key
            email = maybe(rng, vary_email(rng, p.email), 0.03) or None
            phone = e164(vary_phone(rng, p.phone))
            addr = p.address if rng.random() > 0.15 else None
            created = p.changed - timedelta(days=rng.randrange(0, 400), seconds=rng.randrange(86400))
            self.created["customers"][cid] = created
            rec = self._customer_record(
                cid, email, p.first_name, p.last_name, phone, created, p.changed,
                tags=rng.choice(CUSTOMER_TAGS), note=rng.choice(CUSTOMER_NOTES) if rng.random() < 0.1 else None,
                verified=rng.random() < 0.9, address=addr, company=None,
                address_phone=vary_phone(rng, p.phone) or None)
            recs.append(rec)
            changed.append(p.changed)
            person_customer[p.key] = rec
        for o in w.organisations:
            if not w.member("shopify", "organisation", o.key, 0.2):
                continue
            contact = persons[o.contact - 1]
            cid = ORG_CUSTOMER_BASE + o.key
            phone = e164(vary_phone(rng, o.phone))
            addr = o.address if rng.random() > 0.1 else None
            created = o.changed - timedelta(days=rng.randrange(0, 400), seconds=rng.randrange(86400))
            self.created["customers"][cid] = created
            rec = self._customer_record(
                cid, vary_email(rng, o.email), contact.first_name, contact.last_name, phone, created,
                o.changed, tags="b2b", note=f"Org.nr. {o.org_number}" if rng.random() < 0.5 else None,
                verified=True, address=addr, company=o.name, address_phone=o.phone)
            recs.append(rec)
            changed.append(o.changed)
        for rec in recs:
            if rec["email"]:
                self.email_index.setdefault(rec["email"].lower(), rec["id"])
            if rec["phone"]:
                self.phone_index.setdefault(rec["phone"], rec["id"])
        self.customers.load(recs, changed)

        # Products with nested variants, one inventory level per variant.
        recs, changed = [], []
        levels: list[Record] = []
        level_changed: list[datetime] = []
        by_sku: dict[str, tuple[Record, Record]] = {}
        for f in w.families:
            if not w.member("shopify", "family", f.key, 0.7):
                continue
            pid = PRODUCT_BASE + f.key
            created = f.changed - timedelta(days=rng.randrange(0, 300), seconds=rng.randrange(86400))
            c_ts, u_ts = ts(created), ts(f.changed)
            variants = []
            for i, v in enumerate(f.variants):
                vid = VARIANT_BASE + f.key * 10 + i
                item = ITEM_BASE + f.key * 10 + i
                variant = {
                    "id": vid, "product_id": pid, "title": v.option, "price": money(v.price_incl_vat),
                    "position": i + 1, "inventory_policy": "deny", "compare_at_price": None,
                    "option1": v.option, "option2": None, "option3": None, "created_at": c_ts,
                    "updated_at": u_ts, "taxable": True, "barcode": maybe(rng, v.gtin, 0.1) or None,
                    "fulfillment_service": "manual", "grams": 0, "inventory_management": "shopify",
                    "requires_shipping": True, "sku": v.sku, "weight": 0.0, "weight_unit": "kg",
                    "inventory_item_id": item, "inventory_quantity": v.stock, "old_inventory_quantity": v.stock,
                    "admin_graphql_api_id": gid("ProductVariant", vid), "image_id": None,
                }
                variants.append(variant)
                self.item_index[item] = (pid, vid)
                self.variant_index[vid] = pid
                levels.append({"inventory_item_id": item, "location_id": LOCATION_ID, "available": v.stock,
                               "updated_at": u_ts, "admin_graphql_api_id": gid("InventoryLevel", item)})
                level_changed.append(f.changed)
                self.created["inventory_levels"][item] = created
            handle = handleize(f.name)
            self.handles.add(handle)
            product = {
                "id": pid, "title": f.name, "body_html": maybe(rng, f"<p>{f.description}</p>", 0.1) or None,
                "vendor": f.vendor, "product_type": f.product_type, "created_at": c_ts, "handle": handle,
                "updated_at": u_ts, "published_at": c_ts, "template_suffix": None, "published_scope": "global",
                "tags": rng.choice(PRODUCT_TAGS), "status": "active", "admin_graphql_api_id": gid("Product", pid),
                "variants": variants, "options": self._options(pid, variants), "images": [], "image": None,
            }
            recs.append(product)
            changed.append(f.changed)
            self.created["products"][pid] = created
            for variant in variants:
                by_sku[variant["sku"]] = (product, variant)
        self.products.load(recs, changed)
        self.levels.load(levels, level_changed)
        self.next_variant = max((v for _, v in self.item_index.values()), default=VARIANT_BASE) + 1
        self.next_item = max(self.item_index, default=ITEM_BASE) + 1

        # Staff (the REST User resource): the shop's own large ids, the staff's e-mails (varied in case only)
        self.staff_id: dict[int, int] = {}
        staff_rng = w.rng("shopify-staff")
        users, user_changed = [], []
        for s in w.staff:
            if not w.member("shopify", "staff", s.key, STAFF_SHARE):
                continue
            sid = STAFF_BASE + staff_rng.randrange(10**8, 9 * 10**8)
            while sid in self.staff_id.values():
                sid += 1
            self.staff_id[s.key] = sid
            created = (w.persons[0].changed if w.persons else self.now()) - timedelta(days=staff_rng.randrange(30, 900))
            users.append(self._user_record(sid, s.first_name, s.last_name, s.email, s.phone, owner=not users))
            user_changed.append(created)
        self.users.load(users, user_changed)

        # Orders of person customers; line items point at Shopify variants when the SKU exists here.
        world_skus = w.variant_by_sku()
        recs, changed = [], []
        for o in w.orders:
            if o.person is None or not w.member("shopify", "order", o.key, 0.3):
                continue
            p = persons[o.person - 1]
            cust = person_customer.get(o.person)
            oid = ORDER_BASE + o.key
            lines = []
            total = Decimal(0)
            for j, line in enumerate(o.lines):
                fam, var = world_skus[line.sku]
                in_shop = by_sku.get(line.sku)
                total += var.price_incl_vat * line.quantity
                lines.append(self._line_item(
                    LINE_BASE + o.key * 10 + j, in_shop[1]["id"] if in_shop else None,
                    in_shop[0]["id"] if in_shop else None, line.sku, fam.name, var.option, line.quantity,
                    var.price_incl_vat, fam.vendor))
            created = o.created
            closed_at = cancelled_at = None
            if o.status == "closed":
                closed_at = created + timedelta(days=rng.randrange(1, 14))
                updated, financial, fulfillment = closed_at, "paid", "fulfilled"
            elif o.status == "cancelled":
                cancelled_at = created + timedelta(hours=rng.randrange(1, 72))
                updated, financial, fulfillment = cancelled_at, rng.choice(("refunded", "voided")), None
            else:
                updated = created + timedelta(minutes=rng.randrange(1, 600))
                financial, fulfillment = rng.choice((("paid", None), ("paid", "partial"), ("pending", None)))
            addr = self._order_address(p.first_name, p.last_name, None, p.address, p.phone)
            email = (cust["email"] if cust else None) or p.email
            order = self._order_record(
                oid, o.number, email, created, updated, lines, total, financial, fulfillment,
                customer=self._order_customer(cust) if cust else None, user_id=self.staff_id.get(o.staff),
                po_number=o.po_number or None, note=rng.choice(ORDER_NOTES) if rng.random() < 0.15 else None,
                billing=addr, shipping=addr if rng.random() > 0.1 else None,
                closed_at=closed_at, cancelled_at=cancelled_at)
            recs.append(order)
            changed.append(updated)
            self.created["orders"][oid] = created
        self.orders.load(recs, changed)
        self.next_order_number = max((o["order_number"] for o in recs), default=1000) + 1
        self.next_line = max((li["id"] for o in recs for li in o["line_items"]), default=LINE_BASE) + 1
        self.next_address = max((a["id"] for c in self.customers.rows.values() for a in c["addresses"]),
                                default=ADDRESS_BASE) + 1

    # -- record builders ------------------------------------------------------------------------
    def _address(self, aid: int, cid: int, first: str | None, last: str | None, company: str | None,
                 address1: str | None, address2: str | None, city: str | None, zip_: str | None,
                 country_code: str | None, phone: str | None) -> Record:
        name = f"{first or ''} {last or ''}".strip()
        cc = (country_code or "").upper() or None
        return {
            "id": aid, "customer_id": cid, "first_name": first, "last_name": last, "company": company or None,
            "address1": address1 or None, "address2": address2 or None, "city": city or None, "province": None,
            "country": COUNTRY_NAMES.get(cc or "", cc), "zip": zip_ or None, "phone": phone or None,
            "name": name, "province_code": None, "country_code": cc,
            "country_name": COUNTRY_NAMES.get(cc or "", cc), "default": True,
        }

    def _customer_record(self, cid: int, email: str | None, first: str | None, last: str | None,
                         phone: str | None, created: datetime, updated: datetime, *, tags: str,
                         note: str | None, verified: bool, address: Any, company: str | None,
                         address_phone: str | None) -> Record:
        rec: Record = {
            "id": cid, "email": email, "created_at": ts(created), "updated_at": ts(updated),
            "first_name": first, "last_name": last, "state": "enabled", "note": note,
            "verified_email": verified, "multipass_identifier": None, "tax_exempt": False, "tags": tags,
            "currency": "NOK", "phone": phone, "addresses": [],
            "admin_graphql_api_id": gid("Customer", cid),
        }
        if address is not None:
            a = self._address(ADDRESS_BASE + (cid - CUSTOMER_BASE) * 10, cid, first, last, company,
                              address.line1, address.line2, address.city, address.zip, address.country,
                              address_phone)
            rec["addresses"] = [a]
            rec["default_address"] = a
        return rec

    @staticmethod
    def _options(pid: int, variants: list[Record]) -> list[Record]:
        """Product options are derived from the variants' option1..3 values."""
        out = []
        for n in (1, 2, 3):
            values = []
            for v in variants:
                val = v.get(f"option{n}")
                if val is not None and val not in values:
                    values.append(val)
            if values:
                out.append({"id": pid * 10 + n, "product_id": pid, "name": "Title" if n == 1 else f"Option{n}",
                            "position": n, "values": values})
        return out

    @staticmethod
    def _line_item(lid: int, variant_id: int | None, product_id: int | None, sku: str | None, title: str,
                   variant_title: str | None, quantity: int, price: Decimal, vendor: str | None) -> Record:
        tax = money(price * quantity * Decimal("0.2"))
        return {
            "id": lid, "admin_graphql_api_id": gid("LineItem", lid), "variant_id": variant_id,
            "product_id": product_id, "sku": sku, "title": title, "variant_title": variant_title,
            "name": f"{title} - {variant_title}" if variant_title else title, "quantity": quantity,
            "price": money(price), "vendor": vendor, "requires_shipping": True, "taxable": True,
            "fulfillment_status": None, "fulfillable_quantity": quantity, "grams": 0,
            "product_exists": product_id is not None, "total_discount": "0.00",
            "tax_lines": [{"price": tax, "rate": 0.25, "title": "MVA"}],
        }

    @staticmethod
    def _order_address(first: str | None, last: str | None, company: str | None, address: Any,
                       phone: str | None) -> Record:
        cc = address.country
        return {
            "first_name": first, "last_name": last, "name": f"{first or ''} {last or ''}".strip(),
            "company": company, "address1": address.line1, "address2": address.line2 or None,
            "city": address.city, "zip": address.zip, "province": None, "province_code": None,
            "country": COUNTRY_NAMES.get(cc, cc), "country_code": cc, "phone": phone or None,
            "latitude": None, "longitude": None,
        }

    @staticmethod
    def _order_customer(cust: Record) -> Record:
        keys = ("id", "email", "first_name", "last_name", "phone", "state", "tags", "created_at",
                "updated_at", "admin_graphql_api_id")
        return {k: cust.get(k) for k in keys}

    def _order_record(self, oid: int, number: int, email: str | None, created: datetime, updated: datetime,
                      lines: list[Record], total: Decimal, financial: str | None, fulfillment: str | None, *,
                      customer: Record | None, user_id: int | None, po_number: str | None, note: str | None,
                      billing: Record | None, shipping: Record | None, closed_at: datetime | None = None,
                      cancelled_at: datetime | None = None) -> Record:
        tax = money(total * Decimal("0.2"))
        created_ts = ts(created)
        return {
            "id": oid, "admin_graphql_api_id": gid("Order", oid), "name": f"#{number}", "order_number": number,
            "number": number - 1000, "email": email, "contact_email": email, "phone": None,
            "currency": "NOK", "presentment_currency": "NOK", "created_at": created_ts,
            "updated_at": ts(updated), "processed_at": created_ts,
            "closed_at": ts(closed_at) if closed_at else None,
            "cancelled_at": ts(cancelled_at) if cancelled_at else None,
            "cancel_reason": "customer" if cancelled_at else None, "financial_status": financial,
            "fulfillment_status": fulfillment, "total_price": money(total), "subtotal_price": money(total),
            "total_line_items_price": money(total), "total_tax": tax, "total_discounts": "0.00",
            "taxes_included": True, "tax_lines": [{"price": tax, "rate": 0.25, "title": "MVA"}],
            "note": note, "note_attributes": [], "tags": "", "po_number": po_number, "user_id": user_id,
            "source_name": "web", "source_identifier": None, "confirmed": True, "test": False, "buyer_accepts_marketing": False,
            "customer": customer, "line_items": lines, "billing_address": billing,
            "shipping_address": shipping,
        }

    # -- list machinery -------------------------------------------------------------------------
    def _limit(self, req: Request) -> int:
        limit = req.int_arg("limit", DEFAULT_LIMIT)
        if limit > MAX_LIMIT:
            raise HttpError(400, f"Limit must be between 1 and {MAX_LIMIT}", field="limit")
        if limit < 1:
            raise HttpError(400, f"Limit must be between 1 and {MAX_LIMIT}", field="limit")
        return limit

    @staticmethod
    def _time_arg(value: str, name: str) -> datetime:
        try:
            dt = datetime.fromisoformat(value.replace(" ", "+") if "T" in value else value)
        except ValueError:
            raise HttpError(400, f"{name} is not a valid ISO 8601 time", field=name) from None
        return dt if dt.tzinfo else dt.replace(tzinfo=SHOP_TZ)

    @staticmethod
    def _id_list(value: str, name: str) -> set[int]:
        try:
            return {int(x) for x in value.split(",") if x.strip()}
        except ValueError:
            raise HttpError(400, f"{name} must be a comma-separated list of integers", field=name) from None

    def _predicate(self, table: Table, filters: dict[str, str]) -> Callable[[Record], bool] | None:
        """A record test built from the (already validated, serialisable) query filters."""
        tests: list[Callable[[Record], bool]] = []
        changed = table.changed
        created = self.created[table.name]
        idf = table.id_field
        for name, value in filters.items():
            if name in ("updated_at_min", "updated_at_max", "created_at_min", "created_at_max"):
                bound = self._time_arg(value, name)
                src = changed if name.startswith("updated") else created
                if name.endswith("_min"):
                    tests.append(lambda r, b=bound, s=src: s[r[idf]] >= b)
                else:
                    tests.append(lambda r, b=bound, s=src: s[r[idf]] <= b)
            elif name == "since_id":
                try:
                    since = int(value)
                except ValueError:
                    raise HttpError(400, "since_id must be an integer", field=name) from None
                tests.append(lambda r, s=since: r[idf] > s)
            elif name in ("ids", "inventory_item_ids"):
                wanted = self._id_list(value, name)
                tests.append(lambda r, w=wanted: r[idf] in w)
            elif name == "location_ids":
                wanted = self._id_list(value, name)
                tests.append(lambda r, w=wanted: r["location_id"] in w)
            elif name == "status" and table is self.orders:
                if value == "open":
                    tests.append(lambda r: r["closed_at"] is None and r["cancelled_at"] is None)
                elif value == "closed":
                    tests.append(lambda r: r["closed_at"] is not None)
                elif value == "cancelled":
                    tests.append(lambda r: r["cancelled_at"] is not None)
                elif value != "any":
                    raise HttpError(400, "status must be one of open, closed, cancelled, any", field="status")
            elif name == "status" and table is self.products:
                wanted_s = {s.strip() for s in value.split(",")}
                tests.append(lambda r, w=wanted_s: r["status"] in w)
            elif name in ("financial_status", "fulfillment_status") and table is self.orders:
                if value != "any":
                    tests.append(lambda r, n=name, v=value: r[n] == v)
            elif name in ("vendor", "product_type", "handle") and table is self.products:
                wanted_s = {s.strip() for s in value.split(",")}
                tests.append(lambda r, n=name, w=wanted_s: r[n] in w)
        if not tests:
            return None
        return lambda r: all(t(r) for t in tests)

    def _sort_keys(self, table: Table, order_field: str) -> list[Any]:
        if order_field == "id":
            return table.ids
        src = table.changed if order_field == "updated_at" else self.created[table.name]
        return sorted((src[rid].timestamp(), rid) for rid in table.ids)

    def _walk(self, table: Table, state: dict[str, Any], limit: int,
              pred: Callable[[Record], bool] | None) -> tuple[list[Record], list[Any], bool]:
        """One page in display order, the keys of its rows, and whether more lie beyond it."""
        field, _, direction = state["o"].partition(" ")
        keys = self._sort_keys(table, field)
        pos = state.get("k")
        if isinstance(pos, list):
            pos = tuple(pos)
        ascending = (state["d"] == "next") == (direction != "desc")
        if pos is None:
            i = 0 if ascending else len(keys) - 1
        else:
            i = bisect.bisect_right(keys, pos) if ascending else bisect.bisect_left(keys, pos) - 1
        step = 1 if ascending else -1
        rows: list[Record] = []
        row_keys: list[Any] = []
        more = False
        while 0 <= i < len(keys):
            key = keys[i]
            rid = key[1] if isinstance(key, tuple) else key
            rec = table.rows[rid]
            if pred is None or pred(rec):
                if len(rows) == limit:
                    more = True
                    break
                rows.append(rec)
                row_keys.append(key)
            i += step
        if state["d"] == "prev":
            rows.reverse()
            row_keys.reverse()
        return rows, row_keys, more

    @staticmethod
    def _project(rec: Record, fields: list[str] | None) -> Record:
        return {k: rec[k] for k in fields if k in rec} if fields else rec

    @staticmethod
    def _fields(req: Request) -> list[str] | None:
        raw = req.arg("fields")
        return [f.strip() for f in raw.split(",") if f.strip()] if raw else None

    def _list(self, req: Request, table: Table, key: str, filter_names: tuple[str, ...],
              defaults: dict[str, str] | None = None) -> Response:
        """A Shopify list: filters on the first request, then only `page_info` (+limit, fields)."""
        limit = self._limit(req)
        fields = self._fields(req)
        page_info = req.arg("page_info")
        if page_info is not None:
            for name in req.query:
                if name not in ("page_info", "limit", "fields"):
                    raise HttpError(400, f"{name} cannot be passed when page_info is present. {PAGE_INFO_HELP}",
                                    field=name)
            state = decode_cursor(page_info, "page_info")
            if state.get("t") != table.name or state.get("d") not in ("next", "prev") or "o" not in state:
                raise HttpError(400, "Invalid value.", field="page_info")
        else:
            filters = dict(defaults or {})
            for name in filter_names:
                value = req.arg(name)
                if value is not None and value != "":
                    filters[name] = value
            state = {"t": table.name, "f": filters, "o": self._order(req), "d": "next", "k": None}
        pred = self._predicate(table, state["f"])
        rows, row_keys, more = self._walk(table, state, limit, pred)
        links = []
        came_back = state["d"] == "prev"
        has_prev = (more if came_back else state.get("k") is not None) and bool(rows)
        has_next = (True if came_back else more) and bool(rows)
        base = f"http://{req.header('Host') or '127.0.0.1'}{req.path}?limit={limit}"
        if fields:
            base += "&fields=" + ",".join(fields)
        if has_prev:
            token = encode_cursor({**state, "d": "prev", "k": row_keys[0]})
            links.append(f'<{base}&page_info={token}>; rel="previous"')
        if has_next:
            token = encode_cursor({**state, "d": "next", "k": row_keys[-1]})
            links.append(f'<{base}&page_info={token}>; rel="next"')
        headers = {"Link": ", ".join(links)} if links else {}
        return Response(200, {key: [self._project(r, fields) for r in rows]}, headers)

    @staticmethod
    def _order(req: Request) -> str:
        raw = (req.arg("order") or "id asc").strip().lower()
        field, _, direction = raw.partition(" ")
        direction = direction.strip() or "asc"
        if field not in ("id", "updated_at", "created_at") or direction not in ("asc", "desc"):
            raise HttpError(400, "order must be one of id, updated_at, created_at with asc or desc", field="order")
        return f"{field} {direction}"

    def _count(self, req: Request, table: Table, filter_names: tuple[str, ...],
               defaults: dict[str, str] | None = None) -> Response:
        filters = dict(defaults or {})
        for name in filter_names:
            value = req.arg(name)
            if value:
                filters[name] = value
        pred = self._predicate(table, filters)
        n = len(table) if pred is None else sum(1 for r in table.rows.values() if pred(r))
        return Response(200, {"count": n})

    def _one(self, req: Request, table: Table, key: str) -> Response:
        rec = self._find(table, req.params["id"])
        return Response(200, {key: self._project(rec, self._fields(req))})

    @staticmethod
    def _find(table: Table, raw_id: str) -> Record:
        rec = table.get(int(raw_id))
        if rec is None:
            raise HttpError(404, "Not Found")
        return rec

    @staticmethod
    def _body(req: Request, key: str) -> dict[str, Any]:
        """The wrapped resource (`{"customer": {...}}`); Shopify's 400 when it is missing."""
        try:
            body = json.loads(req.body) if req.body else None
        except ValueError as exc:
            raise HttpError(400, f"783: unexpected token in JSON body ({exc.msg})") from None
        if not isinstance(body, dict) or not isinstance(body.get(key), dict):
            raise HttpError(400, "Required parameter missing or invalid", field=key)
        return body[key]

    def _save(self, table: Table, rec: Record, when: datetime) -> Record:
        rec["updated_at"] = ts(when)
        table.put(rec, when)
        webhooks.notify(self, table.name, rec, "update")
        return rec

    # -- customers ------------------------------------------------------------------------------
    CUSTOMER_FILTERS = ("ids", "since_id", "created_at_min", "created_at_max", "updated_at_min", "updated_at_max")

    def list_customers(self, req: Request) -> Response:
        return self._list(req, self.customers, "customers", self.CUSTOMER_FILTERS)

    def count_customers(self, req: Request) -> Response:
        return self._count(req, self.customers, self.CUSTOMER_FILTERS)

    def get_customer(self, req: Request) -> Response:
        return self._one(req, self.customers, "customer")

    def search_customers(self, req: Request) -> Response:
        """A small subset of Shopify's search syntax: `email:x` or free text over name and e-mail."""
        query = (req.arg("query") or "").strip()
        limit = self._limit(req)
        out = []
        if query.lower().startswith("email:"):
            cid = self.email_index.get(query[6:].strip().strip('"').lower())
            out = [self.customers.rows[cid]] if cid in self.customers.rows else []
        else:
            q = query.lower()
            for rid in self.customers.ids:
                r = self.customers.rows[rid]
                text = " ".join(str(r.get(k) or "") for k in ("email", "first_name", "last_name")).lower()
                if all(part in text for part in q.split()):
                    out.append(r)
                    if len(out) == limit:
                        break
        return Response(200, {"customers": [self._project(r, self._fields(req)) for r in out]})

    def _check_customer(self, data: dict[str, Any], cid: int | None) -> dict[str, Any]:
        """Validate and normalise customer input; raise Shopify's 422 naming the fields."""
        errors: dict[str, list[str]] = {}
        out: dict[str, Any] = {k: data[k] for k in CUSTOMER_WRITABLE if k in data}
        if "email" in out:
            email = (out["email"] or "").strip() or None
            out["email"] = email
            if email is not None:
                if not EMAIL_RE.match(email):
                    errors.setdefault("email", []).append("is invalid")
                elif self.email_index.get(email.lower(), cid) != cid:
                    errors.setdefault("email", []).append("has already been taken")
        if "phone" in out:
            phone = e164(out["phone"] or "")
            if phone == "invalid":
                errors.setdefault("phone", []).append("is invalid")
            elif phone is not None and self.phone_index.get(phone, cid) != cid:
                errors.setdefault("phone", []).append("has already been taken")
            out["phone"] = phone
        if "tags" in out:
            out["tags"] = normalize_tags(out["tags"])
        if "state" in out and out["state"] not in ("disabled", "invited", "enabled", "declined"):
            errors.setdefault("state", []).append("is not included in the list")
        if errors:
            raise invalid(errors)
        return out

    def _apply_addresses(self, rec: Record, addresses: Any) -> None:
        """Addresses with an id are updated, without one added; the first stays the default."""
        if not isinstance(addresses, list):
            raise invalid({"addresses": ["is invalid"]})
        current = {a["id"]: a for a in rec.get("addresses", [])}
        result = []
        for a in addresses:
            if not isinstance(a, dict):
                raise invalid({"addresses": ["is invalid"]})
            aid = a.get("id")
            base = copy.deepcopy(current.get(int(aid))) if aid is not None and int(aid) in current else None
            if base is None:
                base = self._address(self.next_address, rec["id"], rec.get("first_name"), rec.get("last_name"),
                                     None, None, None, None, None, None, None)
                self.next_address += 1
            for k in ("first_name", "last_name", "company", "address1", "address2", "city", "province",
                      "zip", "phone", "province_code"):
                if k in a:
                    base[k] = a[k] or None
            cc = a.get("country_code") or (a.get("country") if a.get("country") and len(a["country"]) == 2 else None)
            if cc:
                base["country_code"] = cc.upper()
                base["country"] = base["country_name"] = COUNTRY_NAMES.get(cc.upper(), cc.upper())
            elif a.get("country"):
                base["country"] = base["country_name"] = a["country"]
            base["name"] = " ".join(x for x in (base.get("first_name"), base.get("last_name")) if x)
            result.append(base)
        for i, a in enumerate(result):
            a["default"] = i == 0
        rec["addresses"] = result
        if result:
            rec["default_address"] = result[0]
        else:
            rec.pop("default_address", None)

    def _index_customer(self, old: Record | None, new: Record | None) -> None:
        if old is not None:
            if old.get("email") and self.email_index.get(old["email"].lower()) == old["id"]:
                del self.email_index[old["email"].lower()]
            if old.get("phone") and self.phone_index.get(old["phone"]) == old["id"]:
                del self.phone_index[old["phone"]]
        if new is not None:
            if new.get("email"):
                self.email_index[new["email"].lower()] = new["id"]
            if new.get("phone"):
                self.phone_index[new["phone"]] = new["id"]

    def create_customer(self, req: Request) -> Response:
        data = self._body(req, "customer")
        fields = self._check_customer(data, None)
        if not any(fields.get(k) for k in ("email", "phone", "first_name", "last_name")):
            raise invalid({"customer": ["must have a name, phone number or email address"]})
        now = self.now()
        cid = self.customers.next_id if self.customers.ids else CUSTOMER_BASE + 1
        rec = self._customer_record(cid, None, None, None, None, now, now, tags="", note=None, verified=False,
                                    address=None, company=None, address_phone=None)
        rec.update(fields)
        if "addresses" in data:
            self._apply_addresses(rec, data["addresses"])
        self.customers.put(rec, now)
        webhooks.notify(self, "customers", rec, "create")
        self.created["customers"][cid] = now
        self._index_customer(None, rec)
        return Response(201, {"customer": rec})

    def update_customer(self, req: Request) -> Response:
        old = self._find(self.customers, req.params["id"])
        data = self._body(req, "customer")
        fields = self._check_customer(data, old["id"])
        rec = copy.deepcopy(old)
        rec.update(fields)
        if "addresses" in data:
            self._apply_addresses(rec, data["addresses"])
        if rec != old:  # like Shopify, a no-op update keeps updated_at
            self._save(self.customers, rec, self.now())
            self._index_customer(old, rec)
        return Response(200, {"customer": self.customers.rows[old["id"]]})

    def delete_customer(self, req: Request) -> Response:
        old = self._find(self.customers, req.params["id"])
        self.customers.delete(old["id"])
        webhooks.notify(self, "customers", old, "delete")
        self._index_customer(old, None)
        return Response(200, {})

    # -- products -------------------------------------------------------------------------------
    PRODUCT_FILTERS = ("ids", "since_id", "created_at_min", "created_at_max", "updated_at_min", "updated_at_max",
                       "status", "vendor", "product_type", "handle")

    def list_products(self, req: Request) -> Response:
        return self._list(req, self.products, "products", self.PRODUCT_FILTERS)

    def count_products(self, req: Request) -> Response:
        return self._count(req, self.products, self.PRODUCT_FILTERS)

    def get_product(self, req: Request) -> Response:
        return self._one(req, self.products, "product")

    def _variant_fields(self, vin: dict[str, Any], current: Record | None, errors: dict[str, list[str]]) -> dict:
        """Writable variant attributes; inventory_quantity is read-only since API 2019-10."""
        out = {k: vin[k] for k in VARIANT_WRITABLE if k in vin}
        if "price" in vin or current is None:
            price = parse_money(vin.get("price", "0.00"), "price", errors)
            if price is not None:
                out["price"] = price
        if "compare_at_price" in vin:
            out["compare_at_price"] = parse_money(vin["compare_at_price"], "compare_at_price", errors,
                                                  allow_null=True)
        if "inventory_quantity" in vin:
            have = current["inventory_quantity"] if current else 0
            if vin["inventory_quantity"] is not None and int(vin["inventory_quantity"]) != have:
                raise HttpError(400, INVENTORY_WRITE_ERROR, field="inventory_quantity")
        for k in ("option1", "option2", "option3"):
            if k in out and out[k] is not None:
                out[k] = str(out[k])
        check_lengths(out, VARIANT_LIMITS, errors)
        return out

    def _new_variant(self, pid: int, now: datetime) -> Record:
        vid, item = self.next_variant, self.next_item
        self.next_variant += 1
        self.next_item += 1
        return {
            "id": vid, "product_id": pid, "title": "Default Title", "price": "0.00", "position": 1,
            "inventory_policy": "deny", "compare_at_price": None, "option1": "Default Title", "option2": None,
            "option3": None, "created_at": ts(now), "updated_at": ts(now), "taxable": True, "barcode": None,
            "fulfillment_service": "manual", "grams": 0, "inventory_management": "shopify",
            "requires_shipping": True, "sku": None, "weight": 0.0, "weight_unit": "kg",
            "inventory_item_id": item, "inventory_quantity": 0, "old_inventory_quantity": 0,
            "admin_graphql_api_id": gid("ProductVariant", vid), "image_id": None,
        }

    def _apply_variants(self, rec: Record, variants_in: Any, now: datetime) -> tuple[list[int], list[Record]]:
        """Shopify's nested-variant semantics: with id updated, without id created, missing deleted.

        Returns the inventory item ids removed and the variants created (to give them stock rows)."""
        if not isinstance(variants_in, list) or not all(isinstance(v, dict) for v in variants_in):
            raise invalid({"variants": ["is invalid"]})
        errors: dict[str, list[str]] = {}
        current = {v["id"]: v for v in rec["variants"]}
        result: list[Record] = []
        created: list[Record] = []
        for vin in variants_in:
            vid = vin.get("id")
            if vid is not None:
                try:
                    old = current.pop(int(vid))
                except (KeyError, ValueError):
                    raise HttpError(404, "Not Found") from None
                variant = copy.deepcopy(old)
                variant.update(self._variant_fields(vin, old, errors))
                if variant != old:
                    variant["updated_at"] = ts(now)
            else:
                variant = self._new_variant(rec["id"], now)
                variant.update(self._variant_fields(vin, None, errors))
                created.append(variant)
            result.append(variant)
        if errors:
            raise invalid(errors)
        if not result:
            variant = self._new_variant(rec["id"], now)
            created.append(variant)
            result.append(variant)
        seen: set[tuple[Any, ...]] = set()
        for i, v in enumerate(result):
            if v.get("option1") is None:
                v["option1"] = "Default Title"
            opts = tuple(v.get(f"option{n}") for n in (1, 2, 3))
            if opts in seen:
                raise invalid({"base": [f"The variant '{v['option1']}' already exists."]})
            seen.add(opts)
            v["title"] = " / ".join(o for o in opts if o is not None)
            v["position"] = i + 1
        rec["variants"] = result
        rec["options"] = self._options(rec["id"], result)
        return [v["inventory_item_id"] for v in current.values()], created

    def _check_product(self, data: dict[str, Any], creating: bool) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        out = {k: data[k] for k in PRODUCT_WRITABLE if k in data}
        if (creating or "title" in out) and not str(out.get("title") or "").strip():
            errors.setdefault("title", []).append("can't be blank")
        check_lengths(out, PRODUCT_LIMITS, errors)
        if "tags" in out:
            out["tags"] = normalize_tags(out["tags"])
            if any(len(t) > TAG_LIMIT for t in out["tags"].split(", ")):
                errors.setdefault("tags", []).append(f"is too long (maximum is {TAG_LIMIT} characters)")
        if "status" in out and out["status"] not in ("active", "archived", "draft"):
            errors.setdefault("status", []).append("is not included in the list")
        if errors:
            raise invalid(errors)
        return out

    def _sync_levels(self, removed: list[int], created: list[Record], pid: int, now: datetime) -> None:
        for item in removed:
            self.levels.delete(item)
            _, vid = self.item_index.pop(item, (None, None))
            self.variant_index.pop(vid, None)
        for v in created:
            level = {"inventory_item_id": v["inventory_item_id"], "location_id": LOCATION_ID, "available": 0,
                     "updated_at": ts(now), "admin_graphql_api_id": gid("InventoryLevel", v["inventory_item_id"])}
            self.levels.put(level, now)
            self.created["inventory_levels"][v["inventory_item_id"]] = now
            self.item_index[v["inventory_item_id"]] = (pid, v["id"])
            self.variant_index[v["id"]] = pid

    def create_product(self, req: Request) -> Response:
        data = self._body(req, "product")
        fields = self._check_product(data, creating=True)
        now = self.now()
        pid = self.products.next_id if self.products.ids else PRODUCT_BASE + 1
        handle = fields.pop("handle", None) or handleize(fields["title"])
        while handle in self.handles:
            handle = f"{handle}-1" if not re.search(r"-\d+$", handle) else re.sub(
                r"-(\d+)$", lambda m: f"-{int(m.group(1)) + 1}", handle)
        rec: Record = {
            "id": pid, "title": "", "body_html": None, "vendor": None, "product_type": "", "created_at": ts(now),
            "handle": handle, "updated_at": ts(now), "published_at": ts(now), "template_suffix": None,
            "published_scope": "global", "tags": "", "status": "active", "admin_graphql_api_id": gid("Product", pid),
            "variants": [], "options": [], "images": [], "image": None,
        }
        rec.update(fields)
        removed, created = self._apply_variants(rec, data.get("variants") or [], now)
        self.handles.add(handle)
        self.products.put(rec, now)
        webhooks.notify(self, "products", rec, "create")
        self.created["products"][pid] = now
        self._sync_levels(removed, created, pid, now)
        return Response(201, {"product": rec})

    def update_product(self, req: Request) -> Response:
        old = self._find(self.products, req.params["id"])
        data = self._body(req, "product")
        fields = self._check_product(data, creating=False)
        now = self.now()
        rec = copy.deepcopy(old)
        rec.update(fields)
        removed: list[int] = []
        created: list[Record] = []
        if "variants" in data:
            removed, created = self._apply_variants(rec, data["variants"], now)
        if rec != old:
            self._save(self.products, rec, now)
            self._sync_levels(removed, created, rec["id"], now)
        return Response(200, {"product": self.products.rows[old["id"]]})

    def delete_product(self, req: Request) -> Response:
        old = self._find(self.products, req.params["id"])
        self.products.delete(old["id"])
        webhooks.notify(self, "products", old, "delete")
        self._sync_levels([v["inventory_item_id"] for v in old["variants"]], [], old["id"], self.now())
        self.handles.discard(old["handle"])
        return Response(200, {})

    # -- orders ---------------------------------------------------------------------------------
    ORDER_FILTERS = ("ids", "since_id", "created_at_min", "created_at_max", "updated_at_min", "updated_at_max",
                     "status", "financial_status", "fulfillment_status")

    def list_orders(self, req: Request) -> Response:
        return self._list(req, self.orders, "orders", self.ORDER_FILTERS, {"status": "open"})

    def count_orders(self, req: Request) -> Response:
        return self._count(req, self.orders, self.ORDER_FILTERS, {"status": "open"})

    def get_order(self, req: Request) -> Response:
        return self._one(req, self.orders, "order")

    def _variant(self, variant_id: int) -> tuple[Record, Record] | None:
        pid = self.variant_index.get(variant_id)
        if pid is None:
            return None
        product = self.products.rows[pid]
        return product, next(v for v in product["variants"] if v["id"] == variant_id)

    def create_order(self, req: Request) -> Response:
        data = self._body(req, "order")
        errors: dict[str, list[str]] = {}
        lines_in = data.get("line_items")
        if not isinstance(lines_in, list) or not lines_in:
            raise invalid({"line_items": ["can't be blank"]})
        email = (data.get("email") or "").strip() or None
        if email and not EMAIL_RE.match(email):
            errors.setdefault("email", []).append("is invalid")
        # `user_id`: "The ID of the user logged into Shopify POS who processed the order, if applicable"
        # (REST Order). The docs do not say what an unknown id gets; the sandbox refuses an id that is no
        # staff member of the shop, so a foreign id (another system's user number) fails loudly here.
        if data.get("user_id") is not None and (not str(data["user_id"]).isdigit()
                                                 or int(data["user_id"]) not in self.users.rows):
            errors.setdefault("user_id", []).append("is invalid")
        lines: list[Record] = []
        total = Decimal(0)
        for li in lines_in:
            if not isinstance(li, dict):
                raise invalid({"line_items": ["is invalid"]})
            try:
                qty = int(li.get("quantity", 1))
            except (TypeError, ValueError):
                qty = 0
            if qty < 1:
                errors.setdefault("line_items", []).append("quantity must be greater than or equal to 1")
                continue
            found = self._variant(int(li["variant_id"])) if li.get("variant_id") is not None else None
            if li.get("variant_id") is not None and found is None:
                errors.setdefault("line_items", []).append(f"variant {li['variant_id']} does not exist")
                continue
            product, variant = found if found else (None, None)
            price_raw = li.get("price", variant["price"] if variant else None)
            price = parse_money(price_raw, "line_items.price", errors)
            title = li.get("title") or (product["title"] if product else None)
            if not title:
                errors.setdefault("line_items", []).append("title can't be blank")
                continue
            if price is None:
                continue
            total += Decimal(price) * qty
            lines.append(self._line_item(
                self.next_line, variant["id"] if variant else None, product["id"] if product else None,
                li.get("sku") or (variant["sku"] if variant else None), title,
                li.get("variant_title") or (variant["title"] if variant else None), qty, Decimal(price),
                li.get("vendor") or (product["vendor"] if product else None)))
            self.next_line += 1
        customer = None
        cin = data.get("customer")
        if isinstance(cin, dict):
            if cin.get("id") is not None:
                customer = self.customers.get(int(cin["id"]))
                if customer is None:
                    errors.setdefault("customer", []).append("does not exist")
            else:
                cemail = (cin.get("email") or email or "").strip()
                cid = self.email_index.get(cemail.lower()) if cemail else None
                customer = self.customers.get(cid) if cid else None
                if customer is None and (cemail or cin.get("first_name") or cin.get("last_name")):
                    sub = Request("POST", req.path, req.headers, json.dumps({"customer": {
                        k: cin.get(k) for k in ("email", "first_name", "last_name", "phone") if cin.get(k)
                    } | ({"email": cemail} if cemail else {})}).encode())
                    customer = self.create_customer(sub).body["customer"]
        if errors:
            raise invalid(errors)
        now = self.now()
        oid = self.orders.next_id if self.orders.ids else ORDER_BASE + 1
        number = self.next_order_number
        self.next_order_number += 1
        email = email or (customer["email"] if customer else None)
        financial = data.get("financial_status") or "paid"
        rec = self._order_record(
            oid, number, email, now, now, lines, total, financial, data.get("fulfillment_status"),
            customer=self._order_customer(customer) if customer else None, user_id=data.get("user_id"),
            po_number=data.get("po_number") or None, note=data.get("note") or None,
            billing=data.get("billing_address"), shipping=data.get("shipping_address"))
        if data.get("currency"):
            rec["currency"] = rec["presentment_currency"] = str(data["currency"]).upper()
        if data.get("taxes_included") is False:
            self._exclusive_taxes(rec, data.get("tax_lines"), total)
        if data.get("tags"):
            rec["tags"] = normalize_tags(data["tags"])
        # "The ID of the order placed on the originating platform" (Order `source_identifier`, REST and
        # GraphQL since 2022-04: https://shopify.dev/changelog/attribute-orders-to-a-sales-channel);
        # stored as sent and returned on every read. Shopify documents no length limit for it.
        if data.get("source_identifier") is not None:
            if not isinstance(data["source_identifier"], str):
                raise invalid({"source_identifier": ["is invalid"]})
            rec["source_identifier"] = data["source_identifier"]
        if data.get("processed_at"):
            rec["processed_at"] = ts(self._time_arg(str(data["processed_at"]), "processed_at"))
        self.orders.put(rec, now)
        webhooks.notify(self, "orders", rec, "create")
        self.created["orders"][oid] = now
        return Response(201, {"order": rec})

    @staticmethod
    def _exclusive_taxes(rec: Record, tax_lines: Any, subtotal: Decimal) -> None:
        """An order created with `taxesIncluded: false`: its line prices exclude tax, the tax is the order's
        tax lines ("Tax lines specified on the order are split across the taxable line items",
        OrderCreateOrderInput.taxLines) and the total is the subtotal plus that tax."""
        lines_in = tax_lines if isinstance(tax_lines, list) else []
        taxes = []
        for t in lines_in:
            if not isinstance(t, dict) or t.get("price") is None:
                raise invalid({"tax_lines": ["price can't be blank"]})
            taxes.append({"price": money(Decimal(str(t["price"]))), "rate": float(t.get("rate") or 0),
                          "title": str(t.get("title") or "Tax")})
        tax = sum((Decimal(t["price"]) for t in taxes), Decimal(0))
        for li in rec["line_items"]:
            part = Decimal(li["price"]) * li["quantity"] / subtotal if subtotal else Decimal(0)
            li["tax_lines"] = [{**t, "price": money(Decimal(t["price"]) * part)} for t in taxes]
        rec.update(taxes_included=False, tax_lines=taxes, total_tax=money(tax), subtotal_price=money(subtotal),
                   total_line_items_price=money(subtotal), total_price=money(subtotal + tax))

    def update_order(self, req: Request) -> Response:
        old = self._find(self.orders, req.params["id"])
        data = self._body(req, "order")
        fields = {k: data[k] for k in ORDER_WRITABLE if k in data}
        if fields.get("email") and not EMAIL_RE.match(str(fields["email"])):
            raise invalid({"email": ["is invalid"]})
        if "tags" in fields:
            fields["tags"] = normalize_tags(fields["tags"])
        rec = copy.deepcopy(old)
        rec.update(fields)
        if "email" in fields:
            rec["contact_email"] = rec["email"]
        if rec != old:
            self._save(self.orders, rec, self.now())
        return Response(200, {"order": self.orders.rows[old["id"]]})

    def _set_order_state(self, req: Request, **changes: Any) -> Response:
        old = self._find(self.orders, req.params["id"])
        if "cancelled_at" in changes and old["cancelled_at"] is not None:
            raise invalid({"base": ["Order has already been cancelled"]})
        rec = copy.deepcopy(old)
        rec.update(changes)
        self._save(self.orders, rec, self.now())
        return Response(200, {"order": rec})

    def close_order(self, req: Request) -> Response:
        return self._set_order_state(req, closed_at=ts(self.now()))

    def open_order(self, req: Request) -> Response:
        return self._set_order_state(req, closed_at=None)

    def cancel_order(self, req: Request) -> Response:
        body = json.loads(req.body) if req.body else {}
        reason = body.get("reason", "other") if isinstance(body, dict) else "other"
        return self._set_order_state(req, cancelled_at=ts(self.now()), cancel_reason=reason,
                                     financial_status="voided")

    # -- staff (REST User resource) -------------------------------------------------------------
    # https://shopify.dev/docs/api/admin-rest/2026-07/resources/user: "available for private apps and custom
    # apps installed on Shopify Plus stores", with the `read_users` access scope (requested from Shopify
    # Plus Support); read-only ("The API only lets you retrieve information about staff"). The GraphQL
    # equivalent is `staffMembers` / `StaffMember.email` (same scope; Plus or Advanced plans). The list is
    # paged like every REST list (`limit`, `page_info`); the docs name no change filter for it.
    @staticmethod
    def _user_record(sid: int, first: str, last: str, email: str, phone: str | None, owner: bool) -> Record:
        return {
            "id": sid, "first_name": first, "last_name": last, "email": email, "phone": phone or None,
            "account_owner": owner, "bio": None, "im": None, "locale": "nb", "permissions": [],
            "receive_announcements": 1, "screen_name": None, "url": "www.shopify.com", "user_type": "regular",
            "tfa_enabled?": False, "admin_graphql_api_id": gid("StaffMember", sid),
        }

    def list_users(self, req: Request) -> Response:
        return self._list(req, self.users, "users", ())

    def get_user(self, req: Request) -> Response:
        return self._one(req, self.users, "user")

    # -- locations and inventory ----------------------------------------------------------------
    def list_locations(self, req: Request) -> Response:
        return Response(200, {"locations": [self.locations.rows[i] for i in self.locations.ids]})

    def count_locations(self, req: Request) -> Response:
        return Response(200, {"count": len(self.locations)})

    def get_location(self, req: Request) -> Response:
        return self._one(req, self.locations, "location")

    def list_levels(self, req: Request) -> Response:
        if req.arg("page_info") is None and not (req.arg("inventory_item_ids") or req.arg("location_ids")):
            raise invalid({"base": ["inventory_item_ids, location_ids, or both must be provided"]})
        return self._list(req, self.levels, "inventory_levels",
                          ("inventory_item_ids", "location_ids", "updated_at_min"))

    def set_level(self, req: Request) -> Response:
        """Set stock at a location; mirrors it into the variant and bumps the product's updated_at."""
        try:
            body = json.loads(req.body) if req.body else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise HttpError(400, "Required parameter missing or invalid", field="inventory_item_id")
        for name in ("location_id", "inventory_item_id", "available"):
            if body.get(name) is None:
                raise HttpError(400, "Required parameter missing or invalid", field=name)
        try:
            location_id, item, available = (int(body["location_id"]), int(body["inventory_item_id"]),
                                            int(body["available"]))
        except (TypeError, ValueError):
            raise invalid({"available": ["is not a number"]}) from None
        if location_id not in self.locations.rows:
            raise invalid({"location_id": ["does not exist"]})
        if item not in self.item_index:
            raise invalid({"inventory_item_id": ["does not exist"]})
        now = self.now()
        pid, vid = self.item_index[item]
        level = dict(self.levels.rows[item])
        if level["available"] != available:
            level["available"] = available
            self._save(self.levels, level, now)
            product = copy.deepcopy(self.products.rows[pid])
            for v in product["variants"]:
                if v["id"] == vid:
                    v["old_inventory_quantity"] = v["inventory_quantity"]
                    v["inventory_quantity"] = available
                    v["updated_at"] = ts(now)
            self._save(self.products, product, now)
        return Response(200, {"inventory_level": self.levels.rows[item]})
