"""Read resolvers of the Shopify GraphQL sandbox: the query root and the object types the sync reads.

Each function maps one GraphQL field onto the REST record the sandbox already stores (see
`graphql_sandbox.py` for the conventions). Field meanings are from Shopify's GraphQL Admin reference
for 2026-07 (shopify.dev/docs/api/admin-graphql/2026-07/objects/<Type>).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from graphql import GraphQLResolveInfo

from talk_assets.systems.shopify import graphql_search as gs
from talk_assets.systems.shopify.graphql_sandbox import Obj, _ctx, gid, money_bag, parse_gid

if TYPE_CHECKING:
    from talk_assets.systems.shopify.graphql_sandbox import GraphQLApi

SHOP = {
    "id": 1, "admin_graphql_api_id": gid("Shop", 1), "name": "Talk Assets Sandbox",
    "email": "butikk@example.no", "contact_email": "butikk@example.no",
    "myshopify_domain": "sandbox.myshopify.com", "currency_code": "NOK", "taxes_included": True,
    "iana_timezone": "Europe/Oslo", "timezone_abbreviation": "CET", "timezone_offset": "+0100",
    "timezone_offset_minutes": 60, "weight_unit": "kilograms", "unit_system": "metric_system",
    "enabled_presentment_currencies": ["NOK"], "url": "https://sandbox.myshopify.com",
    "tax_shipping": False, "setup_required": False, "checkout_api_supported": True,
}


def tags(value: Any) -> list[str]:
    return [t for t in (s.strip() for s in str(value or "").split(",")) if t]


def register(api: GraphQLApi) -> None:  # noqa: C901 - one place lists every resolver
    app = api.app
    f = api.field

    # Tables are looked up on every call: a sandbox reset replaces them.
    def created(kind: str) -> Any:
        return lambda r: app.created[kind].get(r["id"])

    def changed(kind: str) -> Any:
        return lambda r: getattr(app, kind).changed.get(r["id"])

    # -- query root ------------------------------------------------------------------------------
    customer_fields: dict[str, gs.FieldTest] = {
        "updated_at": gs.time_test(changed("customers")), "created_at": gs.time_test(created("customers")),
        "email": gs.text_test(lambda r: r.get("email")), "phone": gs.text_test(lambda r: r.get("phone")),
        "id": gs.id_test(lambda r: r["id"]), "state": gs.text_test(lambda r: r.get("state")),
        "tag": gs.text_test(lambda r: tags(r.get("tags"))),
        "first_name": gs.text_test(lambda r: r.get("first_name")),
        "last_name": gs.text_test(lambda r: r.get("last_name")),
        "country": gs.text_test(lambda r: (r.get("default_address") or {}).get("country_code")),
    }

    def customer_text(r: dict[str, Any]) -> str:
        return " ".join(str(r.get(k) or "") for k in ("email", "first_name", "last_name", "phone")).lower()

    def time_key(kind: str) -> Any:
        return lambda r: getattr(app, kind).changed[r["id"]].timestamp()

    def created_key(kind: str) -> Any:
        return lambda r: app.created[kind][r["id"]].timestamp()

    @f("QueryRoot", "customers")
    def q_customers(src: Obj, info: GraphQLResolveInfo, **args: Any) -> Any:
        return api.table_connection(info, app.customers, args, "Customer", customer_fields, customer_text, {
            "ID": lambda r: r["id"], "UPDATED_AT": time_key("customers"),
            "CREATED_AT": created_key("customers"),
            "NAME": lambda r: f"{r.get('first_name') or ''} {r.get('last_name') or ''}".strip().lower()})

    @f("QueryRoot", "customer")
    def q_customer(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002 - GraphQL's name
        p = parse_gid(id)
        rec = app.customers.get(p[1]) if p and p[0] == "Customer" else None
        return Obj("Customer", rec) if rec else None

    def variant_skus(r: dict[str, Any]) -> list[Any]:
        return [v.get("sku") for v in r["variants"]]

    product_fields: dict[str, gs.FieldTest] = {
        "updated_at": gs.time_test(changed("products")), "created_at": gs.time_test(created("products")),
        "id": gs.id_test(lambda r: r["id"]), "sku": gs.text_test(variant_skus),
        "title": gs.text_test(lambda r: r.get("title")), "vendor": gs.text_test(lambda r: r.get("vendor")),
        "product_type": gs.text_test(lambda r: r.get("product_type")),
        "status": gs.text_test(lambda r: r.get("status")), "handle": gs.text_test(lambda r: r.get("handle")),
        "tag": gs.text_test(lambda r: tags(r.get("tags"))),
        "barcode": gs.text_test(lambda r: [v.get("barcode") for v in r["variants"]]),
    }

    @f("QueryRoot", "products")
    def q_products(src: Obj, info: GraphQLResolveInfo, **args: Any) -> Any:
        return api.table_connection(
            info, app.products, args, "Product", product_fields,
            lambda r: f"{r.get('title') or ''} {r.get('vendor') or ''} {' '.join(str(s) for s in variant_skus(r))}".lower(),
            {"ID": lambda r: r["id"], "UPDATED_AT": time_key("products"), "CREATED_AT": created_key("products"),
             "TITLE": lambda r: (r.get("title") or "").lower(), "VENDOR": lambda r: (r.get("vendor") or "").lower(),
             "PRODUCT_TYPE": lambda r: (r.get("product_type") or "").lower()})

    @f("QueryRoot", "product")
    def q_product(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        p = parse_gid(id)
        rec = app.products.get(p[1]) if p and p[0] == "Product" else None
        return Obj("Product", rec) if rec else None

    variant_fields: dict[str, gs.FieldTest] = {
        "sku": gs.text_test(lambda v: v.get("sku")), "barcode": gs.text_test(lambda v: v.get("barcode")),
        "id": gs.id_test(lambda v: v["id"]), "product_id": gs.id_test(lambda v: v["product_id"]),
        "title": gs.text_test(lambda v: v.get("title")),
        "updated_at": gs.time_test(lambda v: gs.parse_time(v["updated_at"])),
        "created_at": gs.time_test(lambda v: gs.parse_time(v["created_at"])),
        "inventory_item_id": gs.id_test(lambda v: v["inventory_item_id"]),
    }

    @f("QueryRoot", "productVariants")
    def q_variants(src: Obj, info: GraphQLResolveInfo, **args: Any) -> Any:
        match = api.search(info, args.get("query"), variant_fields, lambda v: f"{v.get('sku') or ''} {v.get('title') or ''}".lower())
        sort = args.get("sortKey") or "ID"
        keyed = []
        for pid in app.products.ids:
            for v in app.products.rows[pid]["variants"]:
                if match is None or match(v):
                    if sort == "SKU":
                        key: tuple[Any, ...] = ((v.get("sku") or "").lower(), v["id"])
                    elif sort == "UPDATED_AT":
                        key = (datetime.fromisoformat(v["updated_at"]).timestamp(), v["id"])
                    elif sort == "POSITION":
                        key = (v["product_id"], v["position"], v["id"])
                    else:
                        key = (v["id"],)
                    keyed.append((key, v))
        return api.connection(info, keyed, args, lambda v: Obj("ProductVariant", v))

    @f("QueryRoot", "productVariant")
    def q_variant(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        p = parse_gid(id)
        found = app._variant(p[1]) if p and p[0] == "ProductVariant" else None
        return Obj("ProductVariant", found[1]) if found else None

    def order_status(r: dict[str, Any]) -> list[str]:
        if r.get("cancelled_at"):
            return ["cancelled", "any"]
        return ["closed", "any"] if r.get("closed_at") else ["open", "any"]

    order_fields: dict[str, gs.FieldTest] = {
        "updated_at": gs.time_test(changed("orders")), "created_at": gs.time_test(created("orders")),
        "processed_at": gs.time_test(lambda r: gs.parse_time(r["processed_at"])),
        "id": gs.id_test(lambda r: r["id"]), "name": gs.text_test(lambda r: [r.get("name"), str(r.get("order_number"))]),
        "email": gs.text_test(lambda r: r.get("email")), "status": gs.text_test(order_status),
        "financial_status": gs.text_test(lambda r: r.get("financial_status")),
        "fulfillment_status": gs.text_test(lambda r: r.get("fulfillment_status") or "unfulfilled"),
        "source_identifier": gs.text_test(lambda r: r.get("source_identifier")),
        "source_name": gs.text_test(lambda r: r.get("source_name")),
        "customer_id": gs.id_test(lambda r: (r.get("customer") or {}).get("id") or 0),
        "sku": gs.text_test(lambda r: [li.get("sku") for li in r["line_items"]]),
        "tag": gs.text_test(lambda r: tags(r.get("tags"))),
        "po_number": gs.text_test(lambda r: r.get("po_number")),
    }

    @f("QueryRoot", "orders")
    def q_orders(src: Obj, info: GraphQLResolveInfo, **args: Any) -> Any:
        # The orders connection shows every status (no REST-like `status=open` default): Shopify's
        # `orders` query filters only by `query`.
        return api.table_connection(
            info, app.orders, args, "Order", order_fields,
            lambda r: f"{r.get('name') or ''} {r.get('email') or ''}".lower(),
            {"ID": lambda r: r["id"], "UPDATED_AT": time_key("orders"), "CREATED_AT": created_key("orders"),
             "PROCESSED_AT": lambda r: datetime.fromisoformat(r["processed_at"]).timestamp(),
             "ORDER_NUMBER": lambda r: r["order_number"],
             "TOTAL_PRICE": lambda r: float(r["total_price"])},
            extra=lambda r: api._order_visible(info, r))

    f("QueryRoot", "customersCount")(lambda s_, i, **a: api.table_count(i, app.customers, a, customer_fields, customer_text))
    f("QueryRoot", "productsCount")(lambda s_, i, **a: api.table_count(i, app.products, a, product_fields, None))
    f("QueryRoot", "ordersCount")(lambda s_, i, **a: api.table_count(
        i, app.orders, a, order_fields, None, extra=lambda r: api._order_visible(i, r)))

    @f("QueryRoot", "order")
    def q_order(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        p = parse_gid(id)
        rec = app.orders.get(p[1]) if p and p[0] == "Order" else None
        return Obj("Order", rec) if rec and api._order_visible(info, rec) else None

    location_fields: dict[str, gs.FieldTest] = {
        "name": gs.text_test(lambda r: r.get("name")), "id": gs.id_test(lambda r: r["id"]),
        "active": gs.text_test(lambda r: str(bool(r.get("active"))).lower()),
    }

    @f("QueryRoot", "locations")
    def q_locations(src: Obj, info: GraphQLResolveInfo, **args: Any) -> Any:
        include_inactive = bool(args.get("includeInactive"))
        return api.table_connection(
            info, app.locations, args, "Location", location_fields, lambda r: (r.get("name") or "").lower(),
            {"ID": lambda r: r["id"], "NAME": lambda r: (r.get("name") or "").lower()},
            extra=lambda r: include_inactive or bool(r.get("active")))

    @f("QueryRoot", "location")
    def q_location(src: Obj, info: GraphQLResolveInfo, id: str | None = None) -> Any:  # noqa: A002
        if id is None:  # no id: the shop's primary location
            return Obj("Location", app.locations.rows[app.locations.ids[0]]) if app.locations.ids else None
        p = parse_gid(id)
        rec = app.locations.get(p[1]) if p and p[0] == "Location" else None
        return Obj("Location", rec) if rec else None

    item_fields: dict[str, gs.FieldTest] = {
        "sku": gs.text_test(lambda o: o.rec.get("sku")), "id": gs.id_test(lambda o: o.rec["id"]),
        "updated_at": gs.time_test(lambda o: gs.parse_time(o.rec["updated_at"])),
        "created_at": gs.time_test(lambda o: gs.parse_time(o.rec["created_at"])),
    }

    @f("QueryRoot", "inventoryItems")
    def q_items(src: Obj, info: GraphQLResolveInfo, **args: Any) -> Any:
        match = api.search(info, args.get("query"), item_fields, None)
        keyed = []
        for item in sorted(app.item_index):
            obj = api.inventory_item(item)
            if obj is not None and (match is None or match(obj)):
                keyed.append(((item,), obj))
        return api.connection(info, keyed, args, lambda o: o, presorted=True)

    @f("QueryRoot", "inventoryItem")
    def q_item(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        p = parse_gid(id)
        return api.inventory_item(p[1]) if p and p[0] == "InventoryItem" else None

    @f("QueryRoot", "inventoryLevel")
    def q_level(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        p = parse_gid(id)
        rec = app.levels.get(p[1]) if p and p[0] == "InventoryLevel" else None
        return Obj("InventoryLevel", rec) if rec else None

    @f("QueryRoot", "node")
    def q_node(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        return api.node(info, id)

    @f("QueryRoot", "nodes")
    def q_nodes(src: Obj, info: GraphQLResolveInfo, ids: list[str]) -> Any:
        return [api.node(info, i) for i in ids]

    # the shop's staff: the REST User records (`users.json`), StaffMember fields from
    # shopify.dev/docs/api/admin-graphql/2026-07/objects/StaffMember
    staff_fields: dict[str, gs.FieldTest] = {
        "id": gs.id_test(lambda r: r["id"]), "email": gs.text_test(lambda r: r.get("email")),
        "first_name": gs.text_test(lambda r: r.get("first_name")),
        "last_name": gs.text_test(lambda r: r.get("last_name")),
    }

    @f("QueryRoot", "staffMembers")
    def q_staff(src: Obj, info: GraphQLResolveInfo, **args: Any) -> Any:
        return api.table_connection(
            info, app.users, args, "StaffMember", staff_fields,
            lambda r: " ".join(str(r.get(k) or "") for k in ("email", "first_name", "last_name")).lower(),
            {"ID": lambda r: r["id"], "EMAIL": lambda r: (r.get("email") or "").lower(),
             "FIRST_NAME": lambda r: (r.get("first_name") or "").lower(),
             "LAST_NAME": lambda r: (r.get("last_name") or "").lower()})

    @f("QueryRoot", "staffMember")
    def q_staff_member(src: Obj, info: GraphQLResolveInfo, id: str | None = None) -> Any:  # noqa: A002
        p = parse_gid(id) if id else None
        return _staff(app, p[1]) if p and p[0] == "StaffMember" else None

    @f("QueryRoot", "shop")
    def q_shop(src: Obj, info: GraphQLResolveInfo) -> Any:
        # a test may set the shop's currency (`app.currency`, like the Squarespace sandbox's store currency)
        currency = getattr(app, "currency", None) or SHOP["currency_code"]
        return Obj("Shop", {**SHOP, "currency_code": currency, "enabled_presentment_currencies": [currency]})

    @f("QueryRoot", "currentAppInstallation")
    def q_installation(src: Obj, info: GraphQLResolveInfo) -> Any:
        return Obj("AppInstallation", {"id": 1, "admin_graphql_api_id": gid("AppInstallation", 1)})

    @f("AppInstallation", "accessScopes")
    def installation_scopes(src: Obj, info: GraphQLResolveInfo) -> Any:
        return [{"handle": s, "description": s.replace("_", " ")} for s in sorted(_ctx(info).scopes)]

    # -- Shop -------------------------------------------------------------------------------------
    f("Shop", "enabledPresentmentCurrencies")(lambda o, i: o.rec["enabled_presentment_currencies"])
    f("Shop", "plan")(lambda o, i: {"displayName": "Basic", "partnerDevelopment": False, "shopifyPlus": False,
                                    "publicDisplayName": "Basic"})

    # -- Customer ---------------------------------------------------------------------------------
    f("Customer", "tags")(lambda o, i: tags(o.rec.get("tags")))
    f("Customer", "displayName")(lambda o, i: (
        f"{o.rec.get('first_name') or ''} {o.rec.get('last_name') or ''}".strip() or o.rec.get("email")
        or o.rec.get("phone") or ""))
    f("Customer", "defaultEmailAddress")(lambda o, i: {
        "emailAddress": o.rec["email"], "marketingState": "NOT_SUBSCRIBED", "validFormat": True,
        "marketingOptInLevel": None} if o.rec.get("email") else None)
    f("Customer", "defaultPhoneNumber")(lambda o, i: {"phoneNumber": o.rec["phone"]} if o.rec.get("phone") else None)
    f("Customer", "addresses")(lambda o, i, **a: [Obj("MailingAddress", x) for x in o.rec.get("addresses") or []])
    f("Customer", "addressesV2")(lambda o, i, **a: api.list_connection(
        i, o.rec.get("addresses") or [], a, lambda x: Obj("MailingAddress", x)))
    f("Customer", "defaultAddress")(lambda o, i: Obj("MailingAddress", o.rec["default_address"])
                                    if o.rec.get("default_address") else None)
    f("Customer", "locale")(lambda o, i: "nb")

    by_customer: dict[str, Any] = {"stamp": None, "index": {}}

    def customer_orders(o: Obj) -> list[dict[str, Any]]:
        """A customer's orders, from an index rebuilt only when the orders table changed."""
        orders = app.orders
        stamp = (id(orders), getattr(orders, "mod", None))
        if stamp[1] is None or by_customer["stamp"] != stamp:
            index: dict[int, list[dict[str, Any]]] = {}
            for oid in orders.ids:
                r = orders.rows[oid]
                cid = (r.get("customer") or {}).get("id")
                if cid is not None:
                    index.setdefault(cid, []).append(r)
            by_customer.update(stamp=stamp, index=index)
        return list(by_customer["index"].get(o.rec["id"], []))

    f("Customer", "canDelete")(lambda o, i: not customer_orders(o))
    f("Customer", "lastOrder")(lambda o, i: (lambda rs: Obj("Order", rs[-1]) if rs else None)(customer_orders(o)))
    f("Customer", "numberOfOrders")(lambda o, i: str(len(customer_orders(o))))
    f("Customer", "amountSpent")(lambda o, i: {"amount": str(sum(
        (Decimal(r["total_price"]) for r in customer_orders(o)), Decimal("0.00"))), "currencyCode": "NOK"})
    f("Customer", "orders")(lambda o, i, **a: api.list_connection(
        i, customer_orders(o), a, lambda r: Obj("Order", r)))

    # MailingAddress: Shopify's ids carry the model (`?model_name=CustomerAddress`).
    f("MailingAddress", "id")(lambda o, i: gid("MailingAddress", o.rec.get("id")) + "?model_name=CustomerAddress"
                              if o.rec.get("id") else gid("MailingAddress", abs(hash(str(o.rec))) % 10**12))
    f("MailingAddress", "countryCodeV2")(lambda o, i: o.rec.get("country_code"))
    f("MailingAddress", "formatted")(lambda o, i, **a: [x for x in (
        o.rec.get("company"), o.rec.get("address1"), o.rec.get("address2"),
        " ".join(y for y in (o.rec.get("zip"), o.rec.get("city")) if y), o.rec.get("country")) if x])
    f("MailingAddress", "coordinatesValidated")(lambda o, i: False)

    # -- Product ----------------------------------------------------------------------------------
    f("Product", "tags")(lambda o, i: tags(o.rec.get("tags")))
    f("Product", "descriptionHtml")(lambda o, i: o.rec.get("body_html") or "")
    f("Product", "description")(lambda o, i, **a: _plain(o.rec.get("body_html") or ""))
    f("Product", "variants")(lambda o, i, **a: api.list_connection(
        i, o.rec["variants"], a, lambda v: Obj("ProductVariant", v)))
    f("Product", "variantsCount")(lambda o, i, **a: {"count": len(o.rec["variants"]), "precision": "EXACT"})
    f("Product", "totalInventory")(lambda o, i: sum(v.get("inventory_quantity") or 0 for v in o.rec["variants"]))
    f("Product", "tracksInventory")(lambda o, i: any(v.get("inventory_management") for v in o.rec["variants"]))
    f("Product", "hasOnlyDefaultVariant")(lambda o, i: len(o.rec["variants"]) == 1 and
                                          o.rec["variants"][0].get("title") == "Default Title")
    f("Product", "options")(lambda o, i, **a: [
        Obj("ProductOption", {**opt, "admin_graphql_api_id": gid("ProductOption", opt["id"])})
        for opt in o.rec.get("options") or []][: a.get("first") or None])
    f("ProductOption", "optionValues")(lambda o, i: [
        {"id": gid("ProductOptionValue", o.rec["id"] * 1000 + n), "name": v, "hasVariants": True}
        for n, v in enumerate(o.rec.get("values") or [])])

    # -- ProductVariant ---------------------------------------------------------------------------
    def variant_product(o: Obj) -> dict[str, Any]:
        return app.products.rows[o.rec["product_id"]]

    f("ProductVariant", "product")(lambda o, i: Obj("Product", variant_product(o)))
    f("ProductVariant", "inventoryItem")(lambda o, i: api.inventory_item(o.rec["inventory_item_id"]))
    f("ProductVariant", "displayName")(lambda o, i: f"{variant_product(o)['title']} - {o.rec.get('title')}")
    f("ProductVariant", "availableForSale")(lambda o, i: (o.rec.get("inventory_quantity") or 0) > 0
                                            or o.rec.get("inventory_policy") == "continue")
    f("ProductVariant", "sellableOnlineQuantity")(lambda o, i: max(0, o.rec.get("inventory_quantity") or 0))

    def selected_options(o: Obj, i: GraphQLResolveInfo) -> list[dict[str, Any]]:
        opts = variant_product(o).get("options") or []
        out = []
        for n, opt in enumerate(opts, start=1):
            value = o.rec.get(f"option{n}")
            if value is not None:
                out.append({"name": opt["name"], "value": value,
                            "optionValue": {"id": gid("ProductOptionValue", opt["id"] * 1000 + n),
                                            "name": value, "hasVariants": True}})
        return out

    f("ProductVariant", "selectedOptions")(selected_options)

    # -- InventoryItem / InventoryLevel / Location ------------------------------------------------
    f("InventoryItem", "variant")(lambda o, i: Obj("ProductVariant", o.rec["_variant"]))
    f("InventoryItem", "inventoryLevels")(lambda o, i, **a: api.list_connection(
        i, [r for r in [app.levels.get(o.rec["id"])] if r], a, lambda r: Obj("InventoryLevel", r)))
    f("InventoryItem", "inventoryLevel")(lambda o, i, locationId: (
        Obj("InventoryLevel", app.levels.rows[o.rec["id"]])
        if o.rec["id"] in app.levels.rows and (parse_gid(locationId) or ("", 0))[1]
        == app.levels.rows[o.rec["id"]]["location_id"] else None))
    f("InventoryItem", "locationsCount")(lambda o, i: {"count": 1 if o.rec["id"] in app.levels.rows else 0,
                                                       "precision": "EXACT"})
    f("InventoryItem", "duplicateSkuCount")(lambda o, i: sum(
        1 for p in app.products.rows.values() for v in p["variants"]
        if o.rec.get("sku") and v.get("sku") == o.rec["sku"] and v["inventory_item_id"] != o.rec["id"]))

    f("InventoryLevel", "item")(lambda o, i: api.inventory_item(o.rec["inventory_item_id"]))
    f("InventoryLevel", "location")(lambda o, i: Obj("Location", app.locations.rows[o.rec["location_id"]]))
    f("InventoryLevel", "isActive")(lambda o, i: True)
    f("InventoryLevel", "canDeactivate")(lambda o, i: True)
    f("InventoryLevel", "createdAt")(lambda o, i: app.created["inventory_levels"].get(
        o.rec["inventory_item_id"], app.levels.changed.get(o.rec["inventory_item_id"])))
    # "available" and "on_hand" are what the sandbox tracks (no reservations or incoming stock), so
    # both report the stored quantity; every other documented name reports 0.
    f("InventoryLevel", "quantities")(lambda o, i, names: [
        {"id": f"{o.rec['admin_graphql_api_id']}?name={n}", "name": n, "updatedAt": o.rec.get("updated_at"),
         "quantity": o.rec["available"] if n in ("available", "on_hand") else 0} for n in names])

    f("Location", "address")(lambda o, i: {
        "address1": o.rec.get("address1"), "address2": o.rec.get("address2"), "city": o.rec.get("city"),
        "zip": o.rec.get("zip"), "country": o.rec.get("country_name"), "countryCode": o.rec.get("country_code"),
        "province": o.rec.get("province"), "provinceCode": o.rec.get("province_code"),
        "phone": o.rec.get("phone"), "formatted": [x for x in (o.rec.get("address1"), o.rec.get("city"),
                                                               o.rec.get("country_name")) if x]})
    f("Location", "isActive")(lambda o, i: bool(o.rec.get("active")))
    f("Location", "fulfillsOnlineOrders")(lambda o, i: True)
    f("Location", "shipsInventory")(lambda o, i: True)
    f("Location", "hasActiveInventory")(lambda o, i: True)
    f("Location", "inventoryLevels")(lambda o, i, **a: api.list_connection(
        i, [app.levels.rows[k] for k in app.levels.ids if app.levels.rows[k]["location_id"] == o.rec["id"]],
        a, lambda r: Obj("InventoryLevel", r)))

    # -- Order and LineItem -----------------------------------------------------------------------
    def cur(o: Obj) -> str:
        return o.rec.get("currency") or "NOK"

    f("Order", "currencyCode")(lambda o, i: cur(o))
    f("Order", "presentmentCurrencyCode")(lambda o, i: o.rec.get("presentment_currency") or cur(o))
    f("Order", "tags")(lambda o, i: tags(o.rec.get("tags")))
    f("Order", "closed")(lambda o, i: o.rec.get("closed_at") is not None)
    f("Order", "number")(lambda o, i: o.rec.get("number"))
    f("Order", "displayFinancialStatus")(lambda o, i: o.rec.get("financial_status"))
    f("Order", "displayFulfillmentStatus")(lambda o, i: {
        None: "UNFULFILLED", "fulfilled": "FULFILLED", "partial": "PARTIALLY_FULFILLED",
        "restocked": "RESTOCKED"}.get(o.rec.get("fulfillment_status"), "UNFULFILLED"))
    f("Order", "fullyPaid")(lambda o, i: o.rec.get("financial_status") == "paid")
    f("Order", "unpaid")(lambda o, i: o.rec.get("financial_status") in ("pending", "authorized"))
    f("Order", "customerAcceptsMarketing")(lambda o, i: bool(o.rec.get("buyer_accepts_marketing")))
    for name, key in (("totalPriceSet", "total_price"), ("currentTotalPriceSet", "total_price"),
                      ("subtotalPriceSet", "subtotal_price"), ("currentSubtotalPriceSet", "subtotal_price"),
                      ("totalTaxSet", "total_tax"), ("currentTotalTaxSet", "total_tax"),
                      ("totalDiscountsSet", "total_discounts"), ("currentTotalDiscountsSet", "total_discounts"),
                      ("originalTotalPriceSet", "total_price")):
        f("Order", name)(lambda o, i, key=key: money_bag(o.rec.get(key), cur(o)))
    f("Order", "totalShippingPriceSet")(lambda o, i: money_bag("0.00", cur(o)))
    f("Order", "subtotalLineItemsQuantity")(lambda o, i: sum(li["quantity"] for li in o.rec["line_items"]))
    f("Order", "taxLines")(lambda o, i: [{"title": t["title"], "rate": t["rate"], "ratePercentage": t["rate"] * 100,
                                          "priceSet": money_bag(t["price"], cur(o))} for t in o.rec.get("tax_lines") or []])

    def order_customer(o: Obj, i: GraphQLResolveInfo) -> Any:
        c = o.rec.get("customer")
        if not c:
            return None
        rec = app.customers.get(c["id"])
        return Obj("Customer", rec if rec is not None else c)

    f("Order", "customer")(order_customer)
    f("Order", "lineItems")(lambda o, i, **a: api.list_connection(
        i, o.rec["line_items"], a, lambda li: Obj("LineItem", li, o.rec)))
    f("Order", "staffMember")(lambda o, i: _staff(app, o.rec.get("user_id")))

    f("LineItem", "variant")(lambda o, i: (lambda found: Obj("ProductVariant", found[1]) if found else None)(
        app._variant(o.rec["variant_id"]) if o.rec.get("variant_id") else None))
    f("LineItem", "product")(lambda o, i: Obj("Product", app.products.rows[o.rec["product_id"]])
                             if o.rec.get("product_id") in app.products.rows else None)
    f("LineItem", "currentQuantity")(lambda o, i: o.rec["quantity"])
    f("LineItem", "unfulfilledQuantity")(lambda o, i: o.rec.get("fulfillable_quantity", o.rec["quantity"]))
    f("LineItem", "nonFulfillableQuantity")(lambda o, i: 0)
    f("LineItem", "refundableQuantity")(lambda o, i: o.rec["quantity"])
    f("LineItem", "isGiftCard")(lambda o, i: False)
    f("LineItem", "merchantEditable")(lambda o, i: True)
    f("LineItem", "restockable")(lambda o, i: True)
    f("LineItem", "customAttributes")(lambda o, i: [])
    f("LineItem", "staffMember")(lambda o, i: None)

    def line_cur(o: Obj) -> str:
        return (o.parent or {}).get("currency") or "NOK"

    def line_total(o: Obj) -> str:
        return f"{Decimal(o.rec['price']) * o.rec['quantity']:.2f}"

    for name in ("originalUnitPriceSet", "discountedUnitPriceSet", "discountedUnitPriceAfterAllDiscountsSet"):
        f("LineItem", name)(lambda o, i: money_bag(o.rec["price"], line_cur(o)))
    for name in ("originalTotalSet", "discountedTotalSet", "unfulfilledOriginalTotalSet",
                 "unfulfilledDiscountedTotalSet"):
        f("LineItem", name)(lambda o, i: money_bag(line_total(o), line_cur(o)))
    f("LineItem", "totalDiscountSet")(lambda o, i: money_bag(o.rec.get("total_discount") or "0.00", line_cur(o)))
    f("LineItem", "taxLines")(lambda o, i, **a: [
        {"title": t["title"], "rate": t["rate"], "ratePercentage": t["rate"] * 100,
         "priceSet": money_bag(t["price"], line_cur(o))} for t in o.rec.get("tax_lines") or []])

    f("StaffMember", "name")(lambda o, i: f"{o.rec.get('first_name') or ''} {o.rec.get('last_name') or ''}".strip())
    f("StaffMember", "isShopOwner")(lambda o, i: bool(o.rec.get("account_owner")))
    f("StaffMember", "active")(lambda o, i: True)
    f("StaffMember", "exists")(lambda o, i: True)
    f("StaffMember", "email")(lambda o, i: o.rec.get("email") or "")
    f("StaffMember", "locale")(lambda o, i: o.rec.get("locale") or "nb")


def _staff(app: Any, user_id: Any) -> Obj | None:
    """A StaffMember from the shop's staff (the REST User records); an order's `user_id` that is no
    staff member (any more) still shows as one with only its id, as a deleted account would."""
    if user_id is None:
        return None
    rec = app.users.get(int(user_id)) if str(user_id).isdigit() else None
    if rec is None:
        rec = {"id": user_id, "first_name": None, "last_name": None, "email": "", "phone": None,
               "account_owner": False}
    return Obj("StaffMember", {**rec, "admin_graphql_api_id": gid("StaffMember", rec["id"])})


def _plain(html: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", html).strip()
