"""The Custom Webshop sandbox: the shared world as the webshop stores it.

Customers are persons (~70 %) plus a few organisations (~10 %, registered by their contact
person with the company's e-mail); products one per variant (~75 % of families, price in øre
incl. VAT); orders are the world's orders of person customers in the shop (~35 %).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from talk_assets.sandbox.world import ANCHOR, Address, World, maybe, vary_email, vary_phone
from talk_assets.systems.customapi.sandbox import CustomApiApp, SeedData
from talk_assets.systems.customapi.seeding import seed_ts
from talk_assets.systems.customapi.spec import Record
from talk_assets.systems.customwebshop.spec import SPEC

SYSTEM = "customwebshop"


def _address(a: Address) -> Record:
    return {"street": a.line1 or None, "street2": a.line2 or None, "postal_code": a.zip, "city": a.city,
            "country_code": a.country}


class App(CustomApiApp):
    """Custom Webshop: `/api`, `X-Api-Key: <key>`."""

    spec = SPEC

    def build_seed(self, world: World) -> SeedData:
        rng = world.rng(SYSTEM)
        is_person = world.membership(SYSTEM, "person", 0.7)
        is_organisation = world.membership(SYSTEM, "organisation", 0.1)
        is_family = world.membership(SYSTEM, "family", 0.75)
        is_order = world.membership(SYSTEM, "order", 0.35)
        out: SeedData = {}

        def add(entity: str, rec: Record, created: datetime, changed: datetime) -> None:
            rec["created_at"] = seed_ts(created)
            rec["updated_at"] = seed_ts(changed)
            rec["version"] = 1
            records, times = out.setdefault(entity, ([], []))
            records.append(rec)
            times.append(changed)

        members: dict[int, Record] = {}
        for p in world.persons:
            if not is_person(p.key):
                continue
            rec = {"id": p.key, "email": vary_email(rng, p.email), "first_name": p.first_name,
                   "last_name": maybe(rng, p.last_name, 0.03) or None, "phone": vary_phone(rng, p.phone) or None,
                   "company": None,
                   "billing_address": _address(p.address) if rng.random() > 0.1 else None,
                   "accepts_marketing": rng.random() < 0.4}
            members[p.key] = rec
            add("customers", rec, p.changed - timedelta(days=rng.randrange(0, 500)), p.changed)
        for o in world.organisations:
            if not is_organisation(o.key):
                continue
            c = world.persons[o.contact - 1]
            add("customers", {
                "id": world.size + o.key, "email": vary_email(rng, o.email), "first_name": c.first_name,
                "last_name": c.last_name, "phone": vary_phone(rng, o.phone) or None, "company": o.name,
                "billing_address": _address(o.address), "accepts_marketing": False,
            }, o.changed - timedelta(days=rng.randrange(0, 500)), o.changed)

        product_ids: dict[str, int] = {}
        pid = 0
        for f in world.families:
            if not is_family(f.key):
                continue
            for v in f.variants:
                pid += 1
                product_ids[v.sku] = pid
                r = rng.random()
                add("products", {
                    "id": pid, "sku": v.sku, "title": f"{f.name} – {v.option}",
                    "description": maybe(rng, f.description, 0.1) or None, "price": int(v.price_incl_vat * 100),
                    "tax_rate": 25.0, "currency": "NOK", "gtin": maybe(rng, v.gtin, 0.3) or None,
                    "stock": v.stock, "status": "active" if r > 0.08 else ("draft" if r > 0.03 else "archived"),
                    "category": f.product_type,
                }, f.changed - timedelta(days=rng.randrange(0, 300)), f.changed)

        variants = world.variant_by_sku()
        for o in world.orders:
            cust = members.get(o.person) if o.person is not None else None
            if cust is None or not is_order(o.key):
                continue
            items = []
            for ln in o.lines:
                fam, var = variants[ln.sku]
                items.append({"product_id": product_ids.get(ln.sku), "sku": ln.sku,
                              "name": f"{fam.name} – {var.option}", "quantity": ln.quantity,
                              "unit_price": int(var.price_incl_vat * 100)})
            if o.status == "cancelled":
                status = "cancelled"
            elif o.status == "closed":
                status = "shipped"
            else:
                status = "paid" if rng.random() < 0.7 else "pending"
            person = world.persons[o.person - 1]  # type: ignore[operator]
            add("orders", {
                "id": o.key, "number": f"WS-{o.number}", "customer_id": cust["id"], "email": cust["email"],
                "status": status, "currency": "NOK", "placed_at": seed_ts(o.created), "items": items,
                "total": sum(it["quantity"] * it["unit_price"] for it in items),
                "shipping_address": _address(person.address) if rng.random() > 0.1 else None,  # pickup
            }, o.created, min(o.created + timedelta(hours=rng.randrange(0, 96)), ANCHOR))
        return out
