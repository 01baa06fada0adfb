"""Mutations of the Shopify GraphQL sandbox, over the same records and rules as the REST endpoints.

Each mutation turns its GraphQL input into the REST body and calls the REST handler of `sandbox.App`,
so both APIs validate with the same functions (taken e-mail, e-mail and phone format, the 255-char
product limits, ...). A REST 422 `{"errors": {"email": ["has already been taken"]}}` becomes
`userErrors: [{field: ["input", "email"]... }]`-style entries: `field` is the path of the offending
input field, `message` Rails' full message ("Email has already been taken"), and, where the payload's
error type has a `code`, the matching value of its enum. Input shapes, payloads and error codes are
from Shopify's 2026-07 schema (its descriptions are Shopify's reference text).
"""

from __future__ import annotations

import copy
import json
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLResolveInfo, parse, validate

from talk_assets.sandbox.server import HttpError, Request
from talk_assets.systems.shopify.graphql_sandbox import Obj, _ctx, camel, gid, parse_gid

if TYPE_CHECKING:
    from talk_assets.systems.shopify.graphql_sandbox import GraphQLApi

# Rails validation messages -> the enum value Shopify's typed userErrors carry for them.
MESSAGE_CODES = (
    ("has already been taken", ("TAKEN", "DUPLICATED_VALUE", "HANDLE_NOT_UNIQUE", "VARIANT_ALREADY_EXISTS")),
    ("already exists", ("VARIANT_ALREADY_EXISTS", "DUPLICATED_OPTION_VALUE", "TAKEN")),
    ("is too long", ("TOO_LONG", "INVALID_INPUT", "INVALID")),
    ("can't be blank", ("BLANK", "MISSING_FIELD_REQUIRED", "INVALID_INPUT", "INVALID")),
    ("greater than or equal", ("GREATER_THAN_OR_EQUAL_TO", "INVALID_INPUT", "INVALID")),
    ("does not exist", ("NOT_FOUND", "PRODUCT_VARIANT_DOES_NOT_EXIST", "INVALID")),
)
# Documented `reason` values for inventory changes (shopify.dev/docs/apps/build/orders-fulfillment/
# inventory-management-apps/manage-quantities-states#set-inventory-quantities-on-hand).
INVENTORY_REASONS = {
    "correction", "cycle_count_available", "damaged", "movement_created", "movement_updated",
    "movement_received", "movement_canceled", "other", "promotion", "quality_control", "received",
    "reservation_created", "reservation_deleted", "reservation_updated", "restock", "safety_stock",
    "shrinkage",
}
QUANTITY_LIMIT = 1_000_000_000  # INVALID_QUANTITY_TOO_HIGH / _TOO_LOW in the schema's enum text


def code_for(message: str, codes: list[str] | None) -> str | None:
    if not codes:
        return None
    for needle, choices in MESSAGE_CODES:
        if needle in message:
            for c in choices:
                if c in codes:
                    return c
    for fallback in ("INVALID", "INVALID_INPUT", "GENERIC_ERROR"):
        if fallback in codes:
            return fallback
    return None


def _error_codes(info: GraphQLResolveInfo) -> list[str] | None:
    """The enum values of this payload's `userErrors.code`, or None when it has no code."""
    from graphql import get_named_type

    payload = get_named_type(info.return_type)
    ue = payload.fields.get("userErrors") if hasattr(payload, "fields") else None
    if ue is None:
        return None
    err_type = get_named_type(ue.type)
    code = err_type.fields.get("code")
    return list(get_named_type(code.type).values) if code is not None else None


def user_errors(err: HttpError, prefix: list[str], info: GraphQLResolveInfo,
                rename: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A REST error as GraphQL `userErrors` (one per message, Rails' full message)."""
    codes = _error_codes(info)
    out: list[dict[str, Any]] = []
    errors = err.extra.get("errors")
    if isinstance(errors, dict):
        for name, messages in errors.items():
            for m in messages if isinstance(messages, list) else [messages]:
                if name in ("base", "customer"):
                    out.append({"field": None, "message": m[:1].upper() + m[1:], "code": code_for(m, codes)})
                    continue
                gql = (rename or {}).get(name) or camel(name.split(".")[0])
                human = name.split(".")[-1].replace("_", " ").capitalize()
                out.append({"field": [*prefix, gql], "message": f"{human} {m}", "code": code_for(m, codes)})
    else:
        field = [*prefix, camel(err.field)] if err.field else None
        out.append({"field": field, "message": err.message, "code": code_for(err.message, codes)})
    return out


def rest(handler: Any, body: dict[str, Any], **params: str) -> dict[str, Any]:
    req = Request("POST", "/graphql.json", {}, json.dumps(body).encode())
    req.params = params
    return handler(req).body  # type: ignore[no-any-return]


def address_in(a: dict[str, Any]) -> dict[str, Any]:
    """MailingAddressInput -> the REST address body."""
    out: dict[str, Any] = {}
    for k, v in a.items():
        if k == "id":
            p = parse_gid(v)
            if p:
                out["id"] = p[1]
        elif k == "countryCode":
            out["country_code"] = v
        elif k in ("firstName", "lastName", "provinceCode"):
            out[{"firstName": "first_name", "lastName": "last_name", "provinceCode": "province_code"}[k]] = v
        else:
            out[k] = v
    return out


CUSTOMER_INPUT = {"email": "email", "firstName": "first_name", "lastName": "last_name", "phone": "phone",
                  "note": "note", "taxExempt": "tax_exempt", "multipassIdentifier": "multipass_identifier"}


def customer_body(inp: dict[str, Any]) -> dict[str, Any]:
    body = {rest_key: inp[k] for k, rest_key in CUSTOMER_INPUT.items() if k in inp}
    if "tags" in inp:
        body["tags"] = ", ".join(inp["tags"] or [])
    if "addresses" in inp and inp["addresses"] is not None:
        body["addresses"] = [address_in(a) for a in inp["addresses"]]
    return body


def register(api: GraphQLApi) -> None:  # noqa: C901 - one place lists every mutation
    app = api.app
    f = api.field

    # -- customers ------------------------------------------------------------------------------
    @f("Mutation", "customerCreate")
    def customer_create(src: Obj, info: GraphQLResolveInfo, input: dict[str, Any]) -> Any:  # noqa: A002
        if input.get("id") is not None:
            return {"customer": None, "userErrors": [{"field": ["id"], "message": "Id must not be set on create"}]}
        try:
            rec = rest(app.create_customer, {"customer": customer_body(input)})["customer"]
        except HttpError as err:
            return {"customer": None, "userErrors": user_errors(err, [], info)}
        return {"customer": Obj("Customer", rec), "userErrors": []}

    @f("Mutation", "customerUpdate")
    def customer_update(src: Obj, info: GraphQLResolveInfo, input: dict[str, Any]) -> Any:  # noqa: A002
        p = parse_gid(input.get("id"))
        if p is None or p[0] != "Customer" or p[1] not in app.customers.rows:
            return {"customer": None, "userErrors": [{"field": ["id"], "message": "Customer does not exist"}]}
        try:
            rec = rest(app.update_customer, {"customer": customer_body(input)}, id=str(p[1]))["customer"]
        except HttpError as err:
            return {"customer": None, "userErrors": user_errors(err, [], info)}
        return {"customer": Obj("Customer", rec), "userErrors": []}

    @f("Mutation", "customerDelete")
    def customer_delete(src: Obj, info: GraphQLResolveInfo, input: dict[str, Any]) -> Any:  # noqa: A002
        # https://shopify.dev/docs/api/admin-graphql/2026-07/mutations/customerDelete ("Customers with
        # orders can't be deleted": the REST rule answers that as a 422 the same way)
        p = parse_gid(input.get("id"))
        if p is None or p[0] != "Customer" or p[1] not in app.customers.rows:
            return {"deletedCustomerId": None, "shop": None,
                    "userErrors": [{"field": ["id"], "message": "Customer can't be found"}]}
        try:
            rest(app.delete_customer, {}, id=str(p[1]))
        except HttpError as err:
            return {"deletedCustomerId": None, "shop": None, "userErrors": user_errors(err, [], info)}
        return {"deletedCustomerId": gid("Customer", p[1]), "shop": None, "userErrors": []}

    # -- products -------------------------------------------------------------------------------
    def product_fields(inp: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for k, rest_key in (("title", "title"), ("descriptionHtml", "body_html"), ("vendor", "vendor"),
                            ("productType", "product_type"), ("handle", "handle"),
                            ("templateSuffix", "template_suffix")):
            if k in inp:
                body[rest_key] = inp[k]
        if "tags" in inp:
            body["tags"] = ", ".join(inp["tags"] or [])
        if inp.get("status"):
            body["status"] = str(inp["status"]).lower()
        return body

    def option_slots(product: dict[str, Any] | None, option_names: list[str]) -> list[str]:
        names = list(option_names)
        if not names and product:
            names = [o["name"] for o in product.get("options") or []]
        return names

    def variant_body(vin: dict[str, Any], names: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, rest_key in (("price", "price"), ("compareAtPrice", "compare_at_price"), ("barcode", "barcode"),
                            ("sku", "sku"), ("taxable", "taxable")):
            if k in vin:
                out[rest_key] = vin[k]
        if vin.get("inventoryPolicy"):
            out["inventory_policy"] = str(vin["inventoryPolicy"]).lower()
        item = vin.get("inventoryItem") or {}
        if "sku" in item:
            out["sku"] = item["sku"]
        if "tracked" in item:
            out["inventory_management"] = "shopify" if item["tracked"] else None
        if "requiresShipping" in item:
            out["requires_shipping"] = item["requiresShipping"]
        for n, ov in enumerate(vin.get("optionValues") or []):
            slot = names.index(ov["optionName"]) if ov.get("optionName") in names else n
            if slot < 3:
                out[f"option{slot + 1}"] = ov.get("name")
        if vin.get("id"):
            p = parse_gid(vin["id"])
            if p:
                out["id"] = p[1]
        return out

    def keep_option_names(rec: dict[str, Any], names: list[str]) -> dict[str, Any]:
        """REST derives option names ("Title", "Option2"); GraphQL sets them: keep the given ones."""
        if names and any(o["name"] != names[i] for i, o in enumerate(rec.get("options") or []) if i < len(names)):
            new = copy.deepcopy(rec)
            for i, o in enumerate(new["options"]):
                if i < len(names):
                    o["name"] = names[i]
            app.products.rows[new["id"]] = new
            return new
        return rec

    @f("Mutation", "productCreate")
    def product_create(src: Obj, info: GraphQLResolveInfo, product: dict[str, Any] | None = None,
                       input: dict[str, Any] | None = None, media: Any = None) -> Any:  # noqa: A002
        inp = product or input or {}
        names = [o["name"] for o in inp.get("productOptions") or [] if o.get("name")]
        body = product_fields(inp)
        if names:
            values = [(o.get("values") or [{}])[0].get("name") for o in inp["productOptions"]]
            body["variants"] = [{f"option{i + 1}": v for i, v in enumerate(values[:3]) if v}]
        try:
            rec = rest(app.create_product, {"product": body})["product"]
        except HttpError as err:
            return {"product": None, "userErrors": user_errors(err, ["product"] if product else ["input"], info),
                    "shop": Obj("Shop", {})}
        return {"product": Obj("Product", keep_option_names(rec, names)), "userErrors": [], "shop": None}

    @f("Mutation", "productUpdate")
    def product_update(src: Obj, info: GraphQLResolveInfo, product: dict[str, Any] | None = None,
                       input: dict[str, Any] | None = None, identifier: Any = None, media: Any = None) -> Any:  # noqa: A002
        inp = product or input or {}
        p = parse_gid(inp.get("id") or (identifier or {}).get("id"))
        if p is None or p[1] not in app.products.rows:
            return {"product": None, "userErrors": [{"field": ["id"], "message": "Product does not exist"}]}
        try:
            rec = rest(app.update_product, {"product": product_fields(inp)}, id=str(p[1]))["product"]
        except HttpError as err:
            return {"product": None, "userErrors": user_errors(err, ["product"] if product else ["input"], info)}
        return {"product": Obj("Product", rec), "userErrors": []}

    def bulk_variants(info: GraphQLResolveInfo, product_id: str, variants: list[dict[str, Any]],
                      creating: bool, strategy: str | None = None) -> Any:
        p = parse_gid(product_id)
        if p is None or p[1] not in app.products.rows:
            return {"product": None, "productVariants": None, "userErrors": [{
                "field": ["productId"], "message": "Product does not exist", "code": "PRODUCT_DOES_NOT_EXIST"}]}
        old = app.products.rows[p[1]]
        names = option_slots(old, [])
        current = [{"id": v["id"]} for v in old["variants"]]
        by_id = {v["id"]: i for i, v in enumerate(current)}
        touched: list[int] = []
        for n, vin in enumerate(variants):
            body = variant_body(vin, names)
            if creating:
                if "id" in body:
                    return {"product": None, "productVariants": None, "userErrors": [{
                        "field": ["variants", str(n), "id"], "message": "Id must not be set on create",
                        "code": "INVALID_INPUT"}]}
                current.append(body)
                touched.append(len(current) - 1)
            else:
                if "id" not in body:
                    return {"product": None, "productVariants": None, "userErrors": [{
                        "field": ["variants", str(n), "id"], "message": "Product variant id is missing",
                        "code": "PRODUCT_VARIANT_ID_MISSING"}]}
                if body["id"] not in by_id:
                    return {"product": None, "productVariants": None, "userErrors": [{
                        "field": ["variants", str(n), "id"], "message": "Product variant does not exist",
                        "code": "PRODUCT_VARIANT_DOES_NOT_EXIST"}]}
                current[by_id[body["id"]]].update(body)
                touched.append(by_id[body["id"]])
        if creating:
            # Strategy text from the schema: DEFAULT deletes a lone "Default Title" variant,
            # REMOVE_STANDALONE_VARIANT deletes any lone variant, PRESERVE keeps it.
            lone = len(old["variants"]) == 1
            default_title = lone and old["variants"][0].get("title") == "Default Title"
            strat = strategy or "DEFAULT"
            if lone and (strat == "REMOVE_STANDALONE_VARIANT" or (strat == "DEFAULT" and default_title)):
                current.pop(0)
                touched = [t - 1 for t in touched]
        try:
            rec = rest(app.update_product, {"product": {"variants": current}}, id=str(p[1]))["product"]
        except HttpError as err:
            return {"product": None, "productVariants": None,
                    "userErrors": user_errors(err, ["variants"], info)}
        rec = app.products.rows[rec["id"]]
        return {"product": Obj("Product", rec),
                "productVariants": [Obj("ProductVariant", rec["variants"][t]) for t in touched
                                    if t < len(rec["variants"])], "userErrors": []}

    @f("Mutation", "productVariantsBulkCreate")
    def variants_create(src: Obj, info: GraphQLResolveInfo, productId: str, variants: list[dict[str, Any]],  # noqa: N803
                        strategy: str | None = None, media: Any = None) -> Any:
        return bulk_variants(info, productId, variants, True, strategy)

    @f("Mutation", "productVariantsBulkUpdate")
    def variants_update(src: Obj, info: GraphQLResolveInfo, productId: str, variants: list[dict[str, Any]],  # noqa: N803
                        allowPartialUpdates: bool | None = None, media: Any = None) -> Any:  # noqa: N803
        return bulk_variants(info, productId, variants, False)

    @f("Mutation", "productSet")
    def product_set(src: Obj, info: GraphQLResolveInfo, input: dict[str, Any],  # noqa: A002
                    identifier: dict[str, Any] | None = None, synchronous: bool | None = True) -> Any:
        """Shopify's mutation for syncing a product from an outside source: the listed variants are the
        product's variants afterwards (matched by id, else by option values); unlisted ones are deleted."""
        ident = identifier or {}
        pid = None
        if input.get("id") or ident.get("id"):
            p = parse_gid(input.get("id") or ident.get("id"))
            if p is None or p[1] not in app.products.rows:
                return {"product": None, "productSetOperation": None, "userErrors": [{
                    "field": ["input", "id"], "message": "Product does not exist", "code": "PRODUCT_DOES_NOT_EXIST"}]}
            pid = p[1]
        elif ident.get("handle"):
            pid = next((r["id"] for r in app.products.rows.values() if r.get("handle") == ident["handle"]), None)
        old = app.products.rows.get(pid) if pid else None
        names = [o["name"] for o in input.get("productOptions") or [] if o.get("name")]
        if input.get("variants") is not None and old is None and not names:
            return {"product": None, "productSetOperation": None, "userErrors": [{
                "field": ["input", "productOptions"], "message": "Product options input is required when "
                "updating variants", "code": "PRODUCT_OPTIONS_INPUT_MISSING"}]}
        slots = option_slots(old, names)
        body = product_fields(input)
        if ident.get("handle") and "handle" not in body and old is None:
            body["handle"] = ident["handle"]
        if input.get("variants") is not None:
            existing = {tuple(v.get(f"option{n}") for n in (1, 2, 3)): v["id"] for v in (old or {}).get("variants", [])}
            vbodies = []
            for vin in input["variants"]:
                vb = variant_body(vin, slots)
                if "id" not in vb:
                    key = tuple(vb.get(f"option{n}") for n in (1, 2, 3))
                    if key in existing:
                        vb["id"] = existing[key]
                vbodies.append(vb)
            body["variants"] = vbodies
        prefix = ["input"]
        try:
            if old is None:
                rec = rest(app.create_product, {"product": body})["product"]
            else:
                rec = rest(app.update_product, {"product": body}, id=str(old["id"]))["product"]
        except HttpError as err:
            return {"product": None, "productSetOperation": None, "userErrors": user_errors(err, prefix, info)}
        rec = keep_option_names(app.products.rows[rec["id"]], names)
        if synchronous is False:
            op = {"id": gid("ProductSetOperation", rec["id"]), "status": "COMPLETE", "product": Obj("Product", rec),
                  "userErrors": []}
            return {"product": None, "productSetOperation": op, "userErrors": []}
        return {"product": Obj("Product", rec), "productSetOperation": None, "userErrors": []}

    # -- inventory ------------------------------------------------------------------------------
    idem_lock = threading.Lock()
    idempotency = api.idempotency  # the keys seen (GraphQLApi.reset forgets them: a reset is the seed state)

    @f("Mutation", "inventorySetQuantities")
    def inventory_set(src: Obj, info: GraphQLResolveInfo, input: dict[str, Any]) -> Any:  # noqa: A002
        key = idempotency_key(info)
        if key is None:
            # "As of 2026-04, the idempotency key is required and must be provided using the
            # @idempotent directive" (the mutation's description). The error's exact wording is not
            # documented; the sandbox answers a top-level error naming the directive.
            raise GraphQLError("The @idempotent directive with a key is required for inventorySetQuantities.",
                               extensions={"code": "BAD_REQUEST"})
        fingerprint = json.dumps(input, sort_keys=True, default=str)
        with idem_lock:
            seen = idempotency.get(key)
        if seen is not None:
            if seen[0] != fingerprint:
                return {"inventoryAdjustmentGroup": None, "userErrors": [{
                    "field": None, "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                    "message": "The same idempotency key cannot be used with different operation parameters."}]}
            return seen[1]
        result = set_quantities(info, input)
        with idem_lock:
            idempotency[key] = (fingerprint, result)
        return result

    def set_quantities(info: GraphQLResolveInfo, inp: dict[str, Any]) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        name = inp.get("name")
        if name not in ("available", "on_hand"):
            errors.append({"field": ["input", "name"], "code": "INVALID_NAME",
                           "message": "The quantity name must be either 'available' or 'on_hand'."})
        if inp.get("reason") not in INVENTORY_REASONS:
            errors.append({"field": ["input", "reason"], "code": "INVALID_REASON",
                           "message": "The specified reason is invalid."})
        plan: list[tuple[int, int, int]] = []
        seen: set[tuple[int, int]] = set()
        for n, q in enumerate(inp.get("quantities") or []):
            path = ["input", "quantities", str(n)]
            item = parse_gid(q.get("inventoryItemId"))
            loc = parse_gid(q.get("locationId"))
            if item is None or item[1] not in app.item_index:
                errors.append({"field": [*path, "inventoryItemId"], "code": "INVALID_INVENTORY_ITEM",
                               "message": "The specified inventory item could not be found."})
                continue
            if loc is None or loc[1] not in app.locations.rows:
                errors.append({"field": [*path, "locationId"], "code": "INVALID_LOCATION",
                               "message": "The specified location could not be found."})
                continue
            level = app.levels.get(item[1])
            if level is None or level["location_id"] != loc[1]:
                errors.append({"field": [*path, "locationId"], "code": "ITEM_NOT_STOCKED_AT_LOCATION",
                               "message": "The specified inventory item is not stocked at the location."})
                continue
            if (item[1], loc[1]) in seen:
                errors.append({"field": [*path], "code": "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                               "message": "The combination of inventoryItemId and locationId must be unique."})
                continue
            seen.add((item[1], loc[1]))
            qty = q["quantity"]
            if qty > QUANTITY_LIMIT:
                errors.append({"field": [*path, "quantity"], "code": "INVALID_QUANTITY_TOO_HIGH",
                               "message": "The total quantity can't be higher than 1,000,000,000."})
                continue
            if qty < -QUANTITY_LIMIT:
                errors.append({"field": [*path, "quantity"], "code": "INVALID_QUANTITY_TOO_LOW",
                               "message": "The total quantity can't be lower than -1,000,000,000."})
                continue
            # changeFromQuantity is mandatory (null opts out of the compare-and-swap check);
            # a mismatch is CHANGE_FROM_QUANTITY_STALE (InventoryQuantityInput's description).
            if "changeFromQuantity" not in q:
                errors.append({"field": [*path, "changeFromQuantity"], "code": "COMPARE_QUANTITY_REQUIRED",
                               "message": "The changeFromQuantity argument must be given to each quantity."})
                continue
            if q["changeFromQuantity"] is not None and q["changeFromQuantity"] != level["available"]:
                errors.append({"field": [*path, "changeFromQuantity"], "code": "CHANGE_FROM_QUANTITY_STALE",
                               "message": "The changeFromQuantity value does not match persisted value."})
                continue
            plan.append((item[1], loc[1], qty))
        if errors:
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}
        changes = []
        for item, loc, qty in plan:
            before = app.levels.rows[item]["available"]
            rest(lambda req: app.set_level(req), {"inventory_item_id": item, "location_id": loc, "available": qty})
            changes.append({"name": name, "delta": qty - before, "quantityAfterChange": qty,
                            "item": api.inventory_item(item), "location": Obj("Location", app.locations.rows[loc]),
                            "ledgerDocumentUri": None})
            if name == "available":
                changes.append({"name": "on_hand", "delta": qty - before, "quantityAfterChange": qty,
                                "item": api.inventory_item(item),
                                "location": Obj("Location", app.locations.rows[loc]), "ledgerDocumentUri": None})
        api.next_adjustment = getattr(api, "next_adjustment", 0) + 1
        group = {"id": gid("InventoryAdjustmentGroup", api.next_adjustment), "createdAt": app.now().astimezone(UTC)
                 .strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": inp.get("reason"),
                 "referenceDocumentUri": inp.get("referenceDocumentUri"), "changes": changes, "app": None,
                 "staffMember": None}
        return {"inventoryAdjustmentGroup": group, "userErrors": []}

    # -- orders ---------------------------------------------------------------------------------
    @f("Mutation", "orderCreate")
    def order_create(src: Obj, info: GraphQLResolveInfo, order: dict[str, Any],
                     options: dict[str, Any] | None = None) -> Any:
        body: dict[str, Any] = {}
        for k, rest_key in (("email", "email"), ("phone", "phone"), ("note", "note"), ("poNumber", "po_number"),
                            ("sourceIdentifier", "source_identifier"), ("currency", "currency"),
                            ("processedAt", "processed_at")):
            if order.get(k) is not None:
                body[rest_key] = order[k]
        if order.get("tags") is not None:
            body["tags"] = ", ".join(order["tags"])
        if order.get("userId"):  # OrderCreateOrderInput.userId: a StaffMember gid (checked like REST user_id)
            p = parse_gid(order["userId"])
            body["user_id"] = p[1] if p and p[0] == "StaffMember" else str(order["userId"])
        if order.get("financialStatus"):
            body["financial_status"] = str(order["financialStatus"]).lower()
        if order.get("taxesIncluded") is not None:  # "Whether taxes are included in the order subtotal."
            body["taxes_included"] = bool(order["taxesIncluded"])
        if order.get("taxLines"):  # the order's taxes, split across its taxable lines
            body["tax_lines"] = [{"title": t.get("title"), "rate": t.get("rate"),
                                  "price": ((t.get("priceSet") or {}).get("shopMoney") or {}).get("amount")}
                                 for t in order["taxLines"]]
        for k, rest_key in (("billingAddress", "billing_address"), ("shippingAddress", "shipping_address")):
            if order.get(k):
                body[rest_key] = address_in(order[k])
        cust = order.get("customer") or {}
        if order.get("customerId") and cust:
            return {"order": None, "userErrors": [{
                "field": ["order", "customer"], "code": "REDUNDANT_CUSTOMER_FIELDS",
                "message": "Cannot specify both customerId and customer."}]}
        if order.get("customerId"):
            p = parse_gid(order["customerId"])
            body["customer"] = {"id": p[1] if p else -1}
        elif cust.get("toAssociate"):
            assoc = cust["toAssociate"]
            p = parse_gid(assoc.get("id")) if assoc.get("id") else None
            body["customer"] = {"id": p[1]} if p else {"email": assoc.get("email")}
        elif cust.get("toUpsert"):
            up = cust["toUpsert"]
            body["customer"] = {k2: up.get(k1) for k1, k2 in (("email", "email"), ("firstName", "first_name"),
                                                             ("lastName", "last_name"), ("phone", "phone"))
                                if up.get(k1)}
        lines = []
        for li in order.get("lineItems") or []:
            line: dict[str, Any] = {"quantity": li["quantity"]}
            if li.get("variantId"):
                p = parse_gid(li["variantId"])
                line["variant_id"] = p[1] if p else -1
            price = ((li.get("priceSet") or {}).get("shopMoney") or {}).get("amount")
            if price is not None:
                line["price"] = str(price)
            for k, rest_key in (("title", "title"), ("sku", "sku"), ("variantTitle", "variant_title"),
                                ("vendor", "vendor")):
                if li.get(k) is not None:
                    line[rest_key] = li[k]
            lines.append(line)
        body["line_items"] = lines
        try:
            rec = rest(app.create_order, {"order": body})["order"]
        except HttpError as err:
            return {"order": None, "userErrors": user_errors(err, ["order"], info,
                                                             rename={"line_items": "lineItems"})}
        return {"order": Obj("Order", rec), "userErrors": []}

    @f("Mutation", "orderUpdate")
    def order_update(src: Obj, info: GraphQLResolveInfo, input: dict[str, Any]) -> Any:  # noqa: A002
        # https://shopify.dev/docs/api/admin-graphql/2026-07/mutations/orderUpdate: OrderInput changes
        # an order's email, note, tags, PO number, phone and shipping address (its lines are edited
        # through order editing, which the sync does not use); the REST update rules apply
        p = parse_gid(input.get("id"))
        if p is None or p[0] != "Order" or p[1] not in app.orders.rows:
            return {"order": None, "userErrors": [{"field": ["id"], "message": "Order does not exist"}]}
        body: dict[str, Any] = {}
        for k, rest_key in (("email", "email"), ("note", "note"), ("poNumber", "po_number"), ("phone", "phone")):
            if k in input:
                body[rest_key] = input[k]
        if input.get("tags") is not None:
            body["tags"] = ", ".join(input["tags"])
        if input.get("shippingAddress"):
            body["shipping_address"] = address_in(input["shippingAddress"])
        try:
            rec = rest(app.update_order, {"order": body}, id=str(p[1]))["order"]
        except HttpError as err:
            return {"order": None, "userErrors": user_errors(err, [], info)}
        return {"order": Obj("Order", rec), "userErrors": []}

    # -- webhooks -------------------------------------------------------------------------------
    def webhook_rec(topic: str, sub: dict[str, Any], wid: int) -> dict[str, Any]:
        now = app.now()
        return {"id": wid, "admin_graphql_api_id": gid("WebhookSubscription", wid), "topic": topic,
                "uri": sub.get("uri") or sub.get("callbackUrl"), "format": sub.get("format") or "JSON",
                "include_fields": list(sub.get("includeFields") or []), "filter": sub.get("filter"),
                "metafield_namespaces": list(sub.get("metafieldNamespaces") or []), "metafields": [],
                "name": sub.get("name"), "api_version": {"handle": "2026-07", "displayName": "2026-07",
                                                         "supported": True},
                "created_at": now.isoformat(), "updated_at": now.isoformat()}

    @f("Mutation", "webhookSubscriptionCreate")
    def webhook_create(src: Obj, info: GraphQLResolveInfo, topic: str, webhookSubscription: dict[str, Any]) -> Any:  # noqa: N803
        uri = webhookSubscription.get("uri") or webhookSubscription.get("callbackUrl")
        if not uri:
            return {"webhookSubscription": None, "userErrors": [{
                "field": ["webhookSubscription", "uri"], "message": "Address can't be blank"}]}
        # Shopify accepts HTTPS endpoints (and pubsub:// / arn: event buses). Plain http is allowed
        # here only to loopback, so tests on this machine can receive deliveries (sandbox allowance).
        from urllib.parse import urlsplit

        parts = urlsplit(uri)
        loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not (parts.scheme == "https" or loopback or uri.startswith(("pubsub://", "arn:aws:events:"))):
            return {"webhookSubscription": None, "userErrors": [{
                "field": ["webhookSubscription", "callbackUrl"], "message": "Address protocol http:// is not supported"
                if parts.scheme == "http" else "Address is invalid"}]}
        for w in api.webhooks.values():
            if w["topic"] == topic and w["uri"] == uri:
                return {"webhookSubscription": None, "userErrors": [{
                    "field": ["webhookSubscription", "callbackUrl"],
                    "message": "Address for this topic has already been taken"}]}
        wid = api.next_webhook
        api.next_webhook += 1
        rec = webhook_rec(topic, webhookSubscription, wid)
        api.webhooks[wid] = rec
        return {"webhookSubscription": Obj("WebhookSubscription", rec), "userErrors": []}

    @f("Mutation", "webhookSubscriptionDelete")
    def webhook_delete(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        p = parse_gid(id)
        if p is None or p[0] != "WebhookSubscription" or p[1] not in api.webhooks:
            return {"deletedWebhookSubscriptionId": None, "userErrors": [{
                "field": ["id"], "message": "Webhook subscription does not exist"}]}
        del api.webhooks[p[1]]
        return {"deletedWebhookSubscriptionId": id, "userErrors": []}

    @f("QueryRoot", "webhookSubscriptions")
    def q_webhooks(src: Obj, info: GraphQLResolveInfo, **args: Any) -> Any:
        topics = set(args.get("topics") or [])
        uri = args.get("uri") or args.get("callbackUrl")
        keyed = [((wid,), w) for wid, w in sorted(api.webhooks.items())
                 if (not topics or w["topic"] in topics) and (uri is None or w["uri"] == uri)]
        return api.connection(info, keyed, args, lambda w: Obj("WebhookSubscription", w), presorted=True)

    @f("QueryRoot", "webhookSubscription")
    def q_webhook(src: Obj, info: GraphQLResolveInfo, id: str) -> Any:  # noqa: A002
        p = parse_gid(id)
        rec = api.webhooks.get(p[1]) if p and p[0] == "WebhookSubscription" else None
        return Obj("WebhookSubscription", rec) if rec else None

    f("WebhookSubscription", "callbackUrl")(lambda o, i: o.rec["uri"])
    f("WebhookSubscription", "apiVersion")(lambda o, i: o.rec["api_version"])
    f("WebhookSubscription", "endpoint")(lambda o, i: {"callbackUrl": o.rec["uri"]})

    # -- bulk operations ------------------------------------------------------------------------
    from talk_assets.systems.shopify import graphql_bulk

    graphql_bulk.register(api, validate, parse)


def idempotency_key(info: GraphQLResolveInfo) -> str | None:
    """The `@idempotent(key: ...)` on this mutation field, if any (a blank key counts as none)."""
    from graphql import StringValueNode, VariableNode

    for node in info.field_nodes:
        for d in node.directives or ():
            if d.name.value != "idempotent":
                continue
            for a in d.arguments:
                if a.name.value == "key":
                    v = a.value
                    key = info.variable_values.get(v.name.value) if isinstance(v, VariableNode) else (
                        v.value if isinstance(v, StringValueNode) else None)
                    return key if isinstance(key, str) and key.strip() else None
    return None


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["_ctx", "register"]
