"""The Custom CRM sandbox: the shared world as the CRM stores it.

Customers are organisations (companies, ~90 %) and persons (~30 %); every company customer has
its world contact person as a contact; products are one per variant (prices ex. VAT); orders are
the world's orders whose customer is in the CRM (~40 %), owned by a user (staff); quotes exist for
~10 % of companies. Records are plain dicts in exactly the shape the models dump.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from talk_assets.sandbox.world import ANCHOR, World, maybe, vary_email, vary_phone
from talk_assets.systems.customapi.sandbox import CustomApiApp, SeedData
from talk_assets.systems.customapi.seeding import seed_ts
from talk_assets.systems.customapi.spec import Record
from talk_assets.systems.customcrm.spec import SPEC, line_totals

SYSTEM = "customcrm"
TITLES = ("Daglig leder", "Innkjøpsansvarlig", "Økonomisjef", "Kontaktperson", None)
STATUS = {"open": "open", "closed": "completed", "cancelled": "cancelled"}


def _stamp(rec: Record, created: datetime, changed: datetime) -> Record:
    rec["created_at"] = seed_ts(created)
    rec["updated_at"] = seed_ts(changed)
    rec["version"] = 1
    return rec


class App(CustomApiApp):
    """Custom CRM: `/api/v1`, `Authorization: Bearer <key>`."""

    spec = SPEC

    def build_seed(self, world: World) -> SeedData:
        rng = world.rng(SYSTEM)
        is_organisation = world.membership(SYSTEM, "organisation", 0.9)
        is_person = world.membership(SYSTEM, "person", 0.3)
        is_family = world.membership(SYSTEM, "family", 0.95)
        is_order = world.membership(SYSTEM, "order", 0.4)
        is_quote = world.membership(SYSTEM, "quote", 0.1)
        size = world.size
        out: SeedData = {}

        def add(entity: str, rec: Record, created: datetime, changed: datetime) -> None:
            records, times = out.setdefault(entity, ([], []))
            records.append(_stamp(rec, created, changed))
            times.append(changed)

        persons = world.persons
        # customers: companies get id size + key, persons their key (stable across systems' seeds)
        company_ids: dict[int, int] = {}
        for o in world.organisations:
            if not is_organisation(o.key):
                continue
            cid = size + o.key
            company_ids[o.key] = cid
            a = o.address
            created = o.changed - timedelta(days=rng.randrange(0, 400))
            add("customers", {
                "id": cid, "name": o.name, "email": maybe(rng, vary_email(rng, o.email)) or None,
                "phone": vary_phone(rng, o.phone) or None,
                "fax": None, "website": maybe(rng, o.website, 0.2) or None,
                "description": None, "street_address1": maybe(rng, a.line1, 0.05) or None,
                "street_address2": a.line2 or None, "city": a.city, "zip_code": a.zip, "country": a.country,
                "organization_number": maybe(rng, o.org_number, 0.1) or None, "customer_type": "company",
            }, created, o.changed)
            p = persons[o.contact - 1]
            add("contacts", {
                "id": o.key, "customer_id": cid, "first_name": p.first_name, "last_name": p.last_name,
                "email": maybe(rng, vary_email(rng, p.email), 0.1) or None,
                "phone": vary_phone(rng, p.phone) or None, "title": rng.choice(TITLES),
            }, created, o.changed)
        person_ids: set[int] = set()
        for p in persons:
            if not is_person(p.key):
                continue
            person_ids.add(p.key)
            a = p.address
            add("customers", {
                "id": p.key, "name": f"{p.first_name} {p.last_name}",
                "email": maybe(rng, vary_email(rng, p.email), 0.05) or None,
                "phone": vary_phone(rng, p.phone) or None, "fax": None, "website": None, "description": None,
                "street_address1": maybe(rng, a.line1) or None, "street_address2": a.line2 or None,
                "city": a.city, "zip_code": a.zip, "country": a.country,
                "organization_number": None, "customer_type": "person",
            }, p.changed - timedelta(days=rng.randrange(0, 400)), p.changed)

        # products: one per variant of the CRM's families, price ex. VAT
        product_by_sku: dict[str, Record] = {}
        pid = 0
        for f in world.families:
            if not is_family(f.key):
                continue
            for v in f.variants:
                pid += 1
                rec = {
                    "id": pid, "sku": v.sku, "name": f"{f.name} {v.option}", "description": f.description,
                    "unit_price": str(v.price_ex_vat), "vat_rate": "0.25", "cost_price": str(v.cost),
                    "currency": "NOK", "gtin": maybe(rng, v.gtin, 0.15) or None, "stock_quantity": v.stock,
                    "active": rng.random() > 0.05,
                }
                product_by_sku[v.sku] = rec
                add("products", rec, f.changed - timedelta(days=rng.randrange(0, 300)), f.changed)
        variants = world.variant_by_sku()

        def lines_for(skus: list[tuple[str, int]]) -> list[Record]:
            lines = []
            for sku, qty in skus:
                fam, var = variants[sku]
                prod = product_by_sku.get(sku)
                lines.append({"product_id": prod["id"] if prod else None, "sku": sku,
                              "description": f"{fam.name} {var.option}", "quantity": qty,
                              "unit_price": str(var.price_ex_vat), "vat_rate": "0.25"})
            return lines

        for o in world.orders:
            if o.organisation is not None:
                cid = company_ids.get(o.organisation)
            else:
                cid = o.person if o.person in person_ids else None
            if cid is None or not is_order(o.key):
                continue
            lines = lines_for([(ln.sku, ln.quantity) for ln in o.lines])
            ex, incl = line_totals(lines)
            changed = min(o.created + timedelta(hours=rng.randrange(0, 72)), ANCHOR)
            add("orders", {
                "id": o.key, "order_number": str(o.number), "customer_id": cid, "user_id": o.staff,
                "status": STATUS.get(o.status, "open"), "currency": "NOK",
                "order_date": o.created.date().isoformat(), "reference": o.po_number or None,
                "external_reference": None, "note": "Levering før jul" if rng.random() < 0.05 else None, "lines": lines,
                "total_ex_vat": ex, "total_incl_vat": incl,
            }, o.created, changed)

        skus = list(product_by_sku)
        qid = 0
        for okey, cid in company_ids.items():
            if not skus or not is_quote(okey):
                continue
            qid += 1
            lines = lines_for([(rng.choice(skus), rng.randrange(1, 20)) for _ in range(rng.randrange(1, 4))])
            created = ANCHOR - timedelta(seconds=rng.randrange(200 * 86400))
            add("quotes", {
                "id": qid, "quote_number": f"Q-{1000 + qid}", "customer_id": cid,
                "user_id": rng.randrange(1, len(world.staff) + 1),
                "status": rng.choice(("draft", "sent", "sent", "accepted", "rejected")),
                "valid_until": (created + timedelta(days=30)).date().isoformat(), "lines": lines,
                "total_ex_vat": line_totals(lines)[0],
            }, created, created + timedelta(hours=rng.randrange(0, 48)))

        for s in world.staff:
            created = ANCHOR - timedelta(days=400 + rng.randrange(0, 1000))
            add("users", {
                "id": s.key, "email": s.email, "first_name": s.first_name, "last_name": s.last_name,
                "phone": vary_phone(rng, s.phone) or None, "role": s.role, "active": rng.random() > 0.1,
            }, created, created + timedelta(days=rng.randrange(0, 300)))
        return out

