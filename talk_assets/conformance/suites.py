"""What each system adds to the shared checks: the rate-limit header it is paced by, the records it
leaves out of a sample, its own contract (Shopify's staff scope, PowerOffice's locked orders) and a
write cycle on a record kind it can delete again."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talk_assets.conformance.base import Fail, Skip, Suite, check, get_path
from talk_assets.core.http import ApiError
from talk_assets.sync.model import View


@dataclass
class ShopifySuite(Suite):
    # GraphQL paces by calculated query cost, not by a header: every answer's `extensions.cost`
    # (https://shopify.dev/docs/api/usage/limits#graphql-admin-api-rate-limits), checked below
    page_entity: str | None = "customer"

    @check("rate-limit headers")
    def check_rate_limit_headers(self) -> str:
        """The cost bucket the client paces by: `extensions.cost.throttleStatus` on an answer."""
        from talk_assets.systems.shopify.graphql import documents as D

        resp = self.client.request("POST", "graphql.json", json={"query": D.SHOP, "variables": {}}, idempotent=True)
        cost = (resp.json().get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        missing = [k for k in ("maximumAvailable", "currentlyAvailable", "restoreRate") if status.get(k) is None]
        if cost.get("requestedQueryCost") is None or missing:
            raise Fail("no extensions.cost.throttleStatus (" + ", ".join(missing or ["requestedQueryCost"])
                       + ") on a GraphQL answer: the client paces itself by it")
        return (f"extensions.cost: bucket {status['currentlyAvailable']}/{status['maximumAvailable']}, "
                f"restores {status['restoreRate']}/s")

    def optional(self, view: View, path: str) -> bool:
        # a customer without addresses has no `default_address`; an order may have no customer
        return path.startswith("default_address.") or path.startswith("customer.")

    @check("staff (read_users)")
    def check_staff(self) -> str:
        """Orders name their staff user by Shopify's staff id; users merge on the staff e-mail, which
        only the staff list holds (`read_users` scope, Shopify Plus or Advanced)."""
        if not self.client.has_scope("read_users"):
            raise Skip("the token may not read staff (no read_users scope, or not a Plus/Advanced store): "
                       "orders are created without a staff user")
        staff = list(self.client.iter_staff())
        if not staff:
            raise Skip("the staff list is empty")
        without = [s["id"] for s in staff if not s.get("email")]
        if without:
            raise Fail(f"staff without an e-mail: {without[:5]}")
        return f"{len(staff)} staff members with e-mails"

    def write_cycle(self) -> str:
        email = f"{self.tag}@example.com"
        body = {"email": email, "first_name": "Talk", "last_name": "Conformance ✓",
                "addresses": [{"address1": "Testveien 1", "city": "Oslo", "zip": "0150", "country_code": "NO"}]}
        created = self.client.create_record("customer", body)
        cid = str(created["id"])
        try:
            updated = self.client.update_record("customer", cid, {"first_name": "Talk2"},
                                                expected_version=created.get("updated_at"))
            if updated.get("first_name") != "Talk2":
                raise Fail(f"the edit did not hold: {updated.get('first_name')!r}")
            again = self.client.get_record("customer", cid)
            if not again or str(again.get("email", "")).lower() != email:
                raise Fail("the created customer does not read back")
        finally:
            self.client.delete_record("customer", cid)
        if self.client.get_record("customer", cid) is not None:
            raise Fail(f"customer {cid} ({email}) was not deleted")
        return f"customer {email}: created, edited, read back, deleted"


@dataclass
class PowerOfficeSuite(Suite):
    rate_limit_note: str = ("the client paces PowerOffice GO at its documented request rate and honours "
                            "Retry-After on 429; it reads no rate-limit header")
    page_entity: str | None = "customers"

    def missing_id(self) -> str:
        return "999999999"

    def optional(self, view: View, path: str) -> bool:
        # nullable in PowerOffice's schema; an order entered in GO without one may come without it (the
        # sandbox leaves it out); the sync writes it when it creates an order
        return path == "ExternalImportReference"

    @check("locks")
    def check_locks(self) -> str:
        """Sales orders the engine may not change (confirmed) are recognisable by their status."""
        statuses: dict[str, int] = {}
        for r in self.client.iter_records("salesorders"):
            s = str(r.get("SalesOrderStatus") or "")  # OrderStatus: Draft | Confirmed (PowerOffice's schema)
            statuses[s] = statuses.get(s, 0) + 1
            if sum(statuses.values()) >= 200:
                break
        if not statuses:
            raise Skip("no sales orders to look at")
        if "" in statuses and len(statuses) == 1:
            raise Fail("no sales order carries a SalesOrderStatus (locked orders cannot be told apart)")
        shown = ", ".join(f"{k or '(none)'}: {n}" for k, n in sorted(statuses.items()))
        return f"SalesOrderStatus read ({shown}); Confirmed orders are locked against edits; patching a confirmed order is not tried (the suite edits only its own records)"

    @check("product VAT")
    def check_product_vat(self) -> str:
        """Each product's VAT rate is its standard sales account's VAT code's (the client reads ProductGroups,
        GeneralLedgerAccounts and VatCodes): readable with the integration's roles, and known per product."""
        vat = self.client.sales_vat()
        if vat.unreadable:
            raise Fail(vat.unreadable)
        rates: dict[str, int] = {}
        for n, r in enumerate(self.client.iter_records("products")):
            rate = vat.rate(r)
            key = "unknown" if rate is None else f"{rate * 100:g} %"
            rates[key] = rates.get(key, 0) + 1
            if n >= 199:
                break
        if not rates:
            raise Skip("no products to look at")
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(rates.items()))
        unknown = (" (unknown: no account on the product or its group, the client's general sales settings "
                   "decide, which the API does not expose; the other systems' rate or the standard one is used)"
                   if "unknown" in rates else "")
        return f"{len(vat.accounts)} accounts, {len(vat.codes)} VAT codes read; product rates {shown}{unknown}"

    def declared_read_only(self) -> dict[str, set[str]] | None:
        """From PowerOffice's own OpenAPI document: the `readOnly` properties of the DTO each entity is
        answered and patched with (talk_assets/systems/poweroffice/schema.py)."""
        from talk_assets.systems.poweroffice.schema import DTOS, read_only_props

        return {entity: set(read_only_props(dto)) for entity, (dto, _create, _aliases) in DTOS.items()}

    def write_cycle(self) -> str:
        raise Skip("PowerOffice GO records are not deleted by the suite (not verified that the API lets us), "
                   "so it writes nothing there")


@dataclass
class SquarespaceSuite(Suite):
    rate_limit_note: str = ("Squarespace documents its limits (300 requests/min, 100 order imports/hour) and "
                            "answers 429 with a cool-down; the client paces itself and reads no rate-limit header")
    page_entity: str | None = "products"

    def missing_id(self) -> str:
        return "000000000000000000000000"

    def optional(self, view: View, path: str) -> bool:
        return path.startswith("variants.attributes")  # a variant without a label has no attribute

    def write_cycle(self) -> str:
        raise Skip("the sandbox does not serve Delete a product, so the suite writes nothing to Squarespace")


@dataclass
class CustomApiSuite(Suite):
    # our own OpenAPI documents these on every response (talk_assets/systems/customapi/openapi.py)
    rate_limit_headers: tuple[str, ...] = ("X-RateLimit-Limit", "X-RateLimit-Remaining")
    page_entity: str | None = "customers"

    def write_cycle(self) -> str:
        email = f"{self.tag}@example.com"
        body: dict[str, Any] = {"email": email, "name": "Talk Conformance ✓"}
        if self.key == "customwebshop":
            body = {"email": email, "first_name": "Talk", "last_name": "Conformance ✓"}
        # the address field as each API nests it (a JSON merge patch)
        city = "city" if self.key == "customcrm" else "billing_address.city"
        edit = {"city": "Oslo"} if self.key == "customcrm" else {"billing_address": {"city": "Oslo"}}
        created = self.client.create_record("customers", body)
        rid = str(created["id"])
        try:
            with_version = self.client.update_record("customers", rid, edit, expected_version=created.get("version"))
            if get_path(with_version, city)[1] != "Oslo":
                raise Fail(f"the edit did not hold: {get_path(with_version, city)[1]!r}")
            try:
                self.client.update_record("customers", rid, edit, expected_version=created.get("version"))
            except ApiError as e:
                if e.status != 412:
                    raise Fail(f"a stale version gave HTTP {e.status}, not 412") from None
            else:
                raise Fail("a stale version was accepted (optimistic locking does not hold)")
        finally:
            self.client.delete_record("customers", rid)
        if self.client.get_record("customers", rid) is not None:
            raise Fail(f"customer {rid} ({email}) was not deleted")
        return f"customer {email}: created, edited, stale edit refused (412), deleted"

    def declared_read_only(self) -> dict[str, set[str]] | None:
        """From our own OpenAPI document (`talk_assets/systems/<key>/openapi.json`): `readOnly` properties."""
        doc = json.loads((Path(sys.modules[self.system.client.__module__].__file__ or "").parent
                          / "openapi.json").read_text(encoding="utf-8"))
        schemas = doc["components"]["schemas"]
        out = {}
        for src in self.system.sources:
            name = src.entity[:-1].capitalize() if src.entity.endswith("s") else src.entity.capitalize()
            props = schemas.get(name, {}).get("properties", {})
            out[src.entity] = {k for k, v in props.items() if v.get("readOnly")}
        return out


SUITES: dict[str, type[Suite]] = {
    "shopify": ShopifySuite,
    "poweroffice": PowerOfficeSuite,
    "squarespace": SquarespaceSuite,
    "customcrm": CustomApiSuite,
    "customwebshop": CustomApiSuite,
}

__all__ = ["SUITES", "CustomApiSuite", "PowerOfficeSuite", "ShopifySuite", "SquarespaceSuite"]
