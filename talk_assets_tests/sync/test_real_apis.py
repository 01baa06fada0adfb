"""Issue 12, against the sandbox over HTTP and through sync cycles: Shopify staff users are merged on
what both systems really hold (the staff e-mail), never by a number that only matches in the sandbox,
and a product's name edited anywhere reaches the Shopify title and the Squarespace name."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from talk_assets.config import SYSTEMS
from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets_tests.conftest import Worlds
from talk_assets_tests.reliability.support import Harness

V = VIEWS_BY_KEY
# a few full cycles of the small world each; on a loaded machine that outlasts the default 300 s
pytestmark = pytest.mark.timeout(900)
TOKEN = {"X-Shopify-Access-Token": SYSTEMS["shopify"].value("access_token")}


def shopify_get(url: str, path: str, **params: Any) -> dict[str, Any]:
    r = requests.get(f"{url}/admin/api/2026-07/{path}", headers=TOKEN, params=params, timeout=10)
    r.raise_for_status()
    return r.json()


def crm_users(h: Harness) -> dict[int, dict[str, Any]]:
    return {int(u["id"]): u for u in h.client("customcrm").iter_records("users")}


def shop_staff(h: Harness) -> dict[int, dict[str, Any]]:
    return {int(u["id"]): u for u in h.client("shopify").iter_records("staff")}


@pytest.fixture(scope="module")
def h(rel: Harness, worlds: Worlds) -> Harness:
    """The suite's small world (`rel`), synced until quiet."""
    worlds.converge(rel)  # synced until quiet (once per test process; a copy of it here after)
    return rel


# -- 1. Shopify staff ------------------------------------------------------------------------------
def test_shopify_staff_ids_are_large_and_unrelated_to_the_crm_users(h: Harness) -> None:
    """The REST User resource (`users.json`): ids like a real shop's, e-mails like the CRM's users'."""
    url = h.box.url("shopify")
    staff = shopify_get(url, "users.json", limit=250)["users"]
    assert staff, "the sandbox serves Shopify's staff (users.json)"
    ids = {int(u["id"]) for u in staff}
    assert min(ids) > 10**8, ids
    assert not ids & set(crm_users(h)), "a Shopify staff id equals a CRM user id"
    crm_emails = {str(u["email"]).lower() for u in crm_users(h).values()}
    assert {str(u["email"]).lower() for u in staff} & crm_emails, "staff share e-mails with the CRM's users"
    one = shopify_get(url, f"users/{staff[0]['id']}.json")["user"]
    assert one["email"] == staff[0]["email"]
    orders = shopify_get(url, "orders.json", status="any", limit=250)["orders"]
    users = {o["user_id"] for o in orders if o.get("user_id") is not None}
    assert users and users <= ids, "an order's user_id is a staff member's id"


def test_users_merge_on_the_staff_email_not_on_a_number(h: Harness) -> None:
    crm = crm_users(h)
    staff = shop_staff(h)
    by_email = {str(u["email"]).lower(): sid for sid, u in staff.items()}
    both = [(cid, by_email[str(u["email"]).lower()]) for cid, u in crm.items() if str(u["email"]).lower() in by_email]
    assert both, "the seed has CRM users who are Shopify staff"
    for cid, sid in both:
        gid = h.gid_of(V["customcrm.user"], cid)
        assert gid is not None and h.member(gid, V["shopify.user"]) == str(sid), (cid, sid)


def test_an_order_pushed_to_shopify_never_carries_the_crm_user_id(h: Harness) -> None:
    crm = crm_users(h)
    staff = shop_staff(h)
    email_of_staff = {sid: str(u["email"]).lower() for sid, u in staff.items()}
    by_email = {e: sid for sid, e in email_of_staff.items()}
    # one user who is Shopify staff and one who is not: a new CRM order for each
    staffed = next(cid for cid, u in crm.items() if str(u["email"]).lower() in by_email)
    unstaffed_email = f"talk-staff-{uuid.uuid4().hex[:8]}@nordlyshandel.no"
    unstaffed = int(h.client("customcrm").create_record(
        "users", {"email": unstaffed_email, "first_name": "Ny", "last_name": "Ansatt"})["id"])
    customer = next(iter(h.client("customcrm").iter_records("customers")))
    product = next(p for p in h.client("customcrm").iter_records("products") if p.get("sku"))
    made = {}
    for uid in (staffed, unstaffed):
        order = h.client("customcrm").create_record("orders", {
            "customer_id": customer["id"], "user_id": uid, "currency": "NOK", "order_date": "2026-11-30",
            "lines": [{"sku": product["sku"], "quantity": 1, "unit_price": "100.00"}]})
        made[uid] = order["id"]
    h.until_quiet()
    shop = h.client("shopify")
    origins = {f"talk:customcrm-orders:{oid}": uid for uid, oid in made.items()}
    found = {origins[o["source_identifier"]]: o for o in shop.iter_records("order")
             if o.get("source_identifier") in origins}
    assert set(found) == set(made), "both orders reached Shopify"
    assert found[staffed]["user_id"] == by_email[str(crm[staffed]["email"]).lower()]
    assert found[unstaffed]["user_id"] is None, "a user with no Shopify staff account: no staff user, no foreign id"
    crm_ids = set(crm) | {unstaffed}
    for o in shop.iter_records("order"):
        if str(o.get("source_identifier") or "").startswith("talk:customcrm-orders:") and o.get("user_id") is not None:
            assert o["user_id"] not in crm_ids or o["user_id"] in staff, o
            assert o["user_id"] in staff, f"order {o['id']} names user {o['user_id']}, no staff member of the shop"


# -- 2. two-way product names -----------------------------------------------------------------------
def test_a_product_name_edited_in_poweroffice_reaches_shopify_title_and_squarespace_name(h: Harness) -> None:
    """A product of the CRM (created in Shopify by flow 000, in Squarespace by flow 002) that PowerOffice
    holds under the same SKU: after the first create, its name edited in PowerOffice reaches both."""
    sku = f"TALK-NAME-{uuid.uuid4().hex[:6].upper()}"
    crm = h.client("customcrm").create_record("products", {"sku": sku, "name": "Vare før", "unit_price": "100.00"})
    po = h.client("poweroffice").create_record("products", {"Code": sku, "Name": "Vare før", "UnitPrice": 100.0})
    h.until_quiet()
    gid = h.gid_of(V["customcrm.product"], crm["id"])
    assert gid and h.member(gid, V["poweroffice.product"]) == str(po["Id"])
    shop_variant, sq_variant = h.member(gid, V["shopify.sesamproduct"]), h.member(gid, V["squarespace.sesamproducts"])
    assert shop_variant and sq_variant, "created in Shopify and Squarespace"

    name = f"Omdøpt vare {uuid.uuid4().hex[:6]} ✓"
    h.client("poweroffice").update_record("products", str(po["Id"]), {"Name": name})
    h.until_quiet()
    shop = next(pr for pr in h.client("shopify").iter_records("product")
                if any(str(v["id"]) == shop_variant for v in pr["variants"]))
    assert shop["title"] == name
    sq_product = next(str(p["id"]) for p in h.client("squarespace").iter_records("products")
                      if any(str(v["id"]) == sq_variant for v in p["variants"]))
    assert h.client("squarespace").get_record("products", sq_product)["name"] == name
    assert h.client("customcrm").get_record("products", str(crm["id"]))["name"] == name

    # and back: the title edited in Shopify reaches PowerOffice and Squarespace
    again = f"Tilbake {uuid.uuid4().hex[:6]}"
    h.client("shopify").update_record("product", str(shop["id"]), {"title": again})
    h.until_quiet()
    assert h.client("poweroffice").get_record("products", str(po["Id"]))["Name"] == again
    assert h.client("squarespace").get_record("products", sq_product)["name"] == again


# Names a user might type, each ending in the variant's label as the systems that keep the label inside the
# name (PowerOffice GO, the CRM) hold it: brackets that look like Squarespace's inventory descriptor, emoji,
# name particles, a label that is also the end of a word
HOSTILE_NAMES = (
    ("42", "Navn {t} [Variant: 7]"),
    ("Mørk ☕", "Kaffe 🇳🇴 {t} (økologisk)"),
    ("van der Berg", "Ost fra {t} av"),
)


def _variant_and_product(products: list[dict[str, Any]], variant_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    product = next(p for p in products if any(str(v["id"]) == variant_id for v in p["variants"]))
    return product, next(v for v in product["variants"] if str(v["id"]) == variant_id)


def test_an_edited_name_of_a_labelled_variant_stays_as_edited_through_quiet_cycles(h: Harness) -> None:
    """A labelled variant's name edited in PowerOffice GO (or the CRM) reaches the Shopify title and the
    Squarespace name without its label, and nothing brings it back with a second label: Squarespace's
    inventory `descriptor` ('Navn X [Variant: 42]', which Squarespace derives from the product name and the
    variant's attributes) once won as the newest name after the name was written, and the label grew."""
    made = []
    for n, (label, _) in enumerate(HOSTILE_NAMES):
        sku = f"TALK-LBL-{uuid.uuid4().hex[:6].upper()}"
        first = f"Vare {sku[-6:]} {label}"
        po = h.client("poweroffice").create_record(
            "products", {"Code": sku, "Name": first, "Description": label, "UnitPrice": 100.0 + n})
        crm = h.client("customcrm").create_record("products", {"sku": sku, "name": first, "unit_price": f"{100 + n}.00"})
        made.append((sku, label, po, crm))
    h.until_quiet()
    edited = {}
    for n, ((label, template), (sku, _, po, crm)) in enumerate(zip(HOSTILE_NAMES, made, strict=True)):
        gid = h.gid_of(V["poweroffice.product"], po["Id"])
        assert gid and h.member(gid, V["customcrm.product"]) == str(crm["id"]), sku
        assert h.member(gid, V["shopify.sesamproduct"]) and h.member(gid, V["squarespace.sesamproducts"]), sku
        base = template.format(t=uuid.uuid4().hex[:6])
        edited[sku] = (gid, label, base, f"{base} {label}")
        if n == 1:  # edited in the CRM, the others in PowerOffice GO
            h.client("customcrm").update_record("products", str(crm["id"]), {"name": f"{base} {label}"})
        else:
            h.client("poweroffice").update_record("products", str(po["Id"]), {"Name": f"{base} {label}"})
    h.until_quiet()
    for _ in range(2):  # and quiet it stays
        assert h.cycle(allow_errors=False).writes == 0
    shop_products = list(h.client("shopify").iter_records("product"))
    sq_products = list(h.client("squarespace").iter_records("products"))
    for sku, (gid, label, base, whole) in edited.items():
        shop, shop_variant = _variant_and_product(shop_products, h.member(gid, V["shopify.sesamproduct"]))
        sq, sq_variant = _variant_and_product(sq_products, h.member(gid, V["squarespace.sesamproducts"]))
        assert (shop["title"], shop_variant["title"]) == (base, label), sku
        assert (sq["name"], sq_variant["attributes"].get("Variant")) == (base, label), sku
        po_id, crm_id = h.member(gid, V["poweroffice.product"]), h.member(gid, V["customcrm.product"])
        assert h.client("poweroffice").get_record("products", po_id)["Name"] == whole, sku
        assert h.client("customcrm").get_record("products", crm_id)["name"] == whole, sku
        merged = h.sql("SELECT name, variant_title FROM merged_product WHERE gid = ?", [gid])
        assert merged == [(whole, label)], sku
