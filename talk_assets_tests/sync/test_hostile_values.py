"""Hostile values against the five sandboxes over HTTP: names that do not split on the last word,
odd characters that must not keep a cycle from being quiet, nulls in one system, and records linked
by e-mail without a dataflow between them (issue 17, "Data corrupted")."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from talk_assets.sync.declaration import VIEWS_BY_KEY
from talk_assets_tests.conftest import Worlds
from talk_assets_tests.reliability.support import Harness

V = VIEWS_BY_KEY
WS, CRM, PO, SHOP = V["customwebshop.customer"], V["customcrm.customer"], V["poweroffice.customers_person"], \
    V["shopify.customer"]


@pytest.fixture(scope="module")
def h(rel: Harness, worlds: Worlds) -> Harness:
    """The suite's small world (`rel`), synced until quiet."""
    worlds.converge(rel)  # synced until quiet (once per test process; a copy of it here after)
    return rel


def uid() -> str:
    return uuid.uuid4().hex[:8]


def ws_customer(h: Harness, t: str, first: str | None, last: str | None, **extra: Any) -> dict[str, Any]:
    body = {"email": f"hostile.{t}@example.no", "first_name": first, "last_name": last, **extra}
    return h.client("customwebshop").create_record("customers", body)


def get(h: Harness, system: str, entity: str, rid: Any) -> dict[str, Any]:
    return h.client(system).get_record(entity, str(rid))


# -- 1. a name derived by joining or splitting never beats its parts -----------------------------------
NAMES = [  # (first, last) as the webshop holds them
    ("Anne Marie", "van der Berg"),
    ("José", "de la Cruz"),
    ("Ahmad", "bin Abdullah"),
    ("Cher", None),
    ("Jean-Luc", "Picard-Dupont"),
    ("Mary Ann", "Smith"),
]


def test_webshop_names_reach_the_crm_joined_and_are_never_rewritten(h: Harness) -> None:
    made = [(ws_customer(h, uid(), first, last), first, last) for first, last in NAMES]
    h.until_quiet()
    for rec, first, last in made:
        crm_id = h.counterpart(WS, rec["id"], CRM)
        assert crm_id, (first, last)
        crm = get(h, "customcrm", "customers", crm_id)
        assert (crm["name"], crm["customer_type"]) == (" ".join(x for x in (first, last) if x), "person")
        ws = get(h, "customwebshop", "customers", rec["id"])
        assert (ws["first_name"], ws["last_name"] or None) == (first, last), "the webshop's parts were rewritten"


def _po_people_in_four_systems(h: Harness, names: list[tuple[str, str]]) -> list[tuple[Any, str, str, str]]:
    """PowerOffice persons and webshop customers sharing an e-mail each: Shopify (from PowerOffice) and the
    CRM (from the webshop) get them too. Returns (PowerOffice id, webshop id, CRM id, Shopify id) each."""
    made = []
    for first, last in names:
        email = f"fire.{uid()}@example.no"
        po = h.client("poweroffice").create_record("customers", {
            "IsPerson": True, "FirstName": first, "LastName": last, "Name": f"{first} {last}", "EmailAddress": email})
        ws = h.client("customwebshop").create_record("customers", {"email": email, "first_name": first,
                                                                   "last_name": last})
        made.append((po["Id"], str(ws["id"])))
    h.until_quiet()
    out = []
    for po_id, ws_id in made:
        crm_id, shop_id = h.counterpart(WS, ws_id, CRM), h.counterpart(PO, po_id, SHOP)
        assert crm_id and shop_id and h.counterpart(PO, po_id, WS) == ws_id
        out.append((po_id, ws_id, crm_id, shop_id))
    return out


def _names_everywhere(h: Harness, po_id: Any, ws_id: str, crm_id: str, shop_id: str) -> dict[str, Any]:
    po = get(h, "poweroffice", "customers", po_id)
    ws = get(h, "customwebshop", "customers", ws_id)
    shop = get(h, "shopify", "customer", shop_id)
    return {"po": (po["FirstName"], po["LastName"], po["Name"]), "ws": (ws["first_name"], ws["last_name"]),
            "shopify": (shop["first_name"], shop["last_name"]), "crm": get(h, "customcrm", "customers", crm_id)["name"]}


def _everywhere(first: str, last: str) -> dict[str, Any]:
    whole = f"{first} {last}"
    return {"po": (first, last, whole), "ws": (first, last), "shopify": (first, last), "crm": whole}


CRM_EDITS = [  # a real edit of the CRM's one name: (new name, the parts it splits into)
    ("Anne Marie de la Cruz", ("Anne Marie", "de la Cruz")),
    ("Siti binti Abdullah", ("Siti", "binti Abdullah")),
    ("Karl-Johan Berg-Hansen", ("Karl-Johan", "Berg-Hansen")),
    ("Prince", ("Prince", None)),  # one word is a first name; an empty part never wins: the last name stays
]


def test_an_edit_of_the_parts_or_of_the_whole_name_reaches_every_system_and_then_nothing_moves(h: Harness) -> None:
    people = _po_people_in_four_systems(h, [("Vegard", "Olsen"), ("Ola", "Nordmann")] + [("Kari", "Nordmann")] * 4
                                        + [("Per", "Hansen")])
    (po_ed, *_), (_, ws_ed, *_), (po_name, *_) = people[0], people[1], people[-1]
    # PowerOffice's Name is written from its FirstName/LastName: a Name that disagrees is rewritten
    h.client("poweroffice").update_record("customers", po_name, {"Name": "Per Feil"})
    # PowerOffice's last name gets particles; the webshop's parts get a double first name and a particle
    h.client("poweroffice").update_record("customers", po_ed, {"LastName": "van der Berg"})
    h.client("customwebshop").update_record("customers", ws_ed, {"first_name": "Ola Magnus", "last_name": "ter Horst"})
    for (_, _, crm_id, _), (new_name, _) in zip(people[2:-1], CRM_EDITS, strict=True):
        h.client("customcrm").update_record("customers", crm_id, {"name": new_name})
    h.until_quiet()
    got = [_names_everywhere(h, *p) for p in people]
    assert got[0] == _everywhere("Vegard", "van der Berg")
    assert got[1] == _everywhere("Ola Magnus", "ter Horst")
    for g, (new_name, (first, last)) in zip(got[2:-1], CRM_EDITS, strict=True):
        assert g == _everywhere(first, last or "Nordmann"), (new_name, g)
    assert got[-1] == _everywhere("Per", "Hansen")
    # the cycle after is quiet (until_quiet ended on one), and another one is too
    h.reset_stats()
    assert h.cycle().writes == 0 and not any(h.writes().values())


# -- 2. no odd value keeps a cycle from being quiet -----------------------------------------------------
LONG = "Å" * 9_990 + "bcdefghij"
HOSTILE = [  # (first name, street): content arrives as written, only leading/trailing whitespace goes
    ("Anne\nMarie", "Storgata 1\nBakgården"),
    ("Tab\tbed", "Gate\t2"),
    ("  Spacey  ", "  Veien 3  "),
    ("Zero\u200bWidth\u200d", "Zero\u200bgata 4"),
    ("Emoji 😀👩‍👩‍👧", "Regnbuegata 🌈 5"),
    (LONG, LONG),
]


def test_odd_values_in_names_and_addresses_arrive_as_written_and_the_next_cycle_is_quiet(h: Harness) -> None:
    made = []
    for first, street in HOSTILE:
        t = uid()
        made.append((ws_customer(h, t, first, f"Etter{t}", billing_address={"street": street, "city": f"By {street}"}),
                     first, street, t))
    h.until_quiet()
    h.reset_stats()
    report = h.cycle()
    assert report.writes == 0 and not any(h.writes().values()), h.writes()
    for rec, first, street, t in made:
        crm_id = h.counterpart(WS, rec["id"], CRM)
        assert crm_id, repr(first[:40])
        crm = get(h, "customcrm", "customers", crm_id)
        assert crm["name"] == f"{first.strip()} Etter{t}", repr(crm["name"][:60])
        assert (crm["street_address1"], crm["city"]) == (street.strip(), f"By {street}".strip())
        ws = get(h, "customwebshop", "customers", rec["id"])
        assert (ws["first_name"], ws["billing_address"]["street"]) == (first, street), "the source was rewritten"


# -- 3. an empty value never wins: the system that lost it is re-filled --------------------------------
def test_a_null_written_into_an_address_field_is_refilled_from_the_linked_record(h: Harness) -> None:
    t = uid()
    rec = ws_customer(h, t, "Null", f"Test{t}", billing_address={"street": "Nullveien 1", "city": "Hamar",
                                                                  "postal_code": "2317"})
    h.until_quiet()
    crm_id = h.counterpart(WS, rec["id"], CRM)
    assert crm_id
    h.client("customwebshop").update_record("customers", rec["id"], {"billing_address": {"city": None}})
    h.client("customcrm").update_record("customers", crm_id, {"zip_code": None})
    assert get(h, "customwebshop", "customers", rec["id"])["billing_address"].get("city") is None
    h.until_quiet()
    assert get(h, "customwebshop", "customers", rec["id"])["billing_address"]["city"] == "Hamar"
    crm = get(h, "customcrm", "customers", crm_id)
    assert (crm["city"], crm["zip_code"]) == ("Hamar", "2317")


# -- 4. linked by e-mail without a dataflow; a webshop customer with a company --------------------------
def test_records_linked_by_email_without_a_dataflow_receive_each_others_edits(h: Harness) -> None:
    t = uid()
    email = f"uten.flyt.{t}@example.no"
    shop = h.client("shopify").create_record("customer", {"email": email, "first_name": "Liv", "last_name": f"Lenke{t}"})
    crm = h.client("customcrm").create_record("customers", {"name": f"Liv Lenke{t}", "email": email,
                                                             "customer_type": "person"})
    h.until_quiet()
    assert h.counterpart(SHOP, shop["id"], CRM) == str(crm["id"])
    h.client("shopify").update_record("customer", shop["id"], {"last_name": f"Ny{t}"})
    h.client("customcrm").update_record("customers", crm["id"], {"phone": "+4790011223"})
    h.until_quiet()
    assert get(h, "customcrm", "customers", crm["id"])["name"] == f"Liv Ny{t}"
    assert (get(h, "shopify", "customer", shop["id"]).get("default_address") or {}).get("phone") == "+4790011223"


def test_a_webshop_customer_with_a_company_is_a_company_in_the_crm_and_keeps_its_persons_name(h: Harness) -> None:
    t = uid()
    rec = ws_customer(h, t, "Kari", f"Kjøper{t}", company=f"Kjøpefirma {t} AS")
    h.until_quiet()
    crm_id = h.counterpart(WS, rec["id"], CRM)
    assert crm_id
    crm = get(h, "customcrm", "customers", crm_id)
    assert (crm["name"], crm["customer_type"]) == (f"Kjøpefirma {t} AS", "company")
    # renaming the company in the CRM renames it in the webshop; the buyer's name stays
    h.client("customcrm").update_record("customers", crm_id, {"name": f"Nytt Firma {t} AS"})
    h.until_quiet()
    ws = get(h, "customwebshop", "customers", rec["id"])
    assert (ws["company"], ws["first_name"], ws["last_name"]) == (f"Nytt Firma {t} AS", "Kari", f"Kjøper{t}")
