"""The shared seed world: one company's customers, products, staff and orders.

Every sandbox system draws its records from the same world, so the systems overlap the way a real
company's do: many customers exist in several systems under the same e-mail but with different
details, products share SKUs, orders reference customers and products that exist, and some
records are incomplete. Generation is deterministic for a seed and fast enough for 100,000
records per entity (plain `random.Random`, pools of names, no per-record objects beyond dicts).
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)  # seed timestamps lie in the year before this

FIRST_NAMES = ["Ola", "Kari", "Nora", "Emma", "Jakob", "Lukas", "Ingrid", "Sofie", "Henrik", "Magnus", "Ida", "Sindre", "Thea", "Aksel", "Maja", "Olav", "Astrid", "Eirik", "Sigrid", "Håkon", "Mari", "Jonas", "Synnøve", "Øystein", "Åse", "Bjørn", "Marte", "Even", "Tuva", "Vegard", "Solveig", "Torbjørn", "Ragnhild", "Ahmed", "Fatima", "Piotr", "Anna", "Mohammed", "Sara", "Maria", "Jan", "Elena", "Wei", "Amir", "Leila", "John", "Emily", "Carlos", "Sofia", "Yusuf", "Aisha", "Mikael", "Linnea", "Erik", "Freja"]
LAST_NAMES = ["Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen", "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen", "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen", "Lund", "Sørensen", "Moen", "Gundersen", "Iversen", "Strand", "Solberg", "Bakken", "Lie", "Nowak", "Kowalski", "Ali", "Khan", "Nguyen", "Müller", "Smith", "García", "Rossi", "Ahmadi", "Lindqvist", "Nielsen"]
STREETS = (
    "Storgata", "Kirkegata", "Dronningens gate", "Parkveien", "Skolegata", "Strandveien", "Kongens gate",
    "Torggata", "Fjellveien", "Sjøgata", "Industriveien", "Havnegata", "Løkkeveien", "Bjørnstjerne Bjørnsons gate",
    "Nedre Slottsgate", "Øvre Holmegate", "Ringveien", "Bryggen",
)
CITIES = (
    ("0150", "Oslo", "NO"), ("0557", "Oslo", "NO"), ("5003", "Bergen", "NO"), ("7010", "Trondheim", "NO"),
    ("4006", "Stavanger", "NO"), ("9008", "Tromsø", "NO"), ("3015", "Drammen", "NO"), ("1606", "Fredrikstad", "NO"),
    ("4610", "Kristiansand", "NO"), ("6002", "Ålesund", "NO"), ("8006", "Bodø", "NO"), ("2609", "Lillehammer", "NO"),
    ("3110", "Tønsberg", "NO"), ("6413", "Molde", "NO"), ("111 22", "Stockholm", "SE"), ("1050", "København", "DK"),
    ("411 03", "Göteborg", "SE"), ("00100", "Helsinki", "FI"),
)
COMPANY_WORDS = ["Nordlys", "Fjord", "Viking", "Fjell", "Kyst", "Havblikk", "Bakeri", "Bygg", "Elektro", "Rør", "Regnskap", "Data", "Transport", "Design", "Kaffe", "Sport", "Marin", "Tre", "Blomster", "Maskin", "Auto", "Frisør", "Catering", "Eiendom"]
COMPANY_PLACES = ["Vest", "Nord", "Sør", "Øst", "Bergen", "Oslo", "Trøndelag", "Agder", "Sunnmøre", "Viken", "Lofoten"]
COMPANY_FORMS = ("AS", "AS", "AS", "ASA", "ENK", "DA")
MAIL_DOMAINS = ("gmail.com", "online.no", "hotmail.com", "outlook.com", "icloud.com", "yahoo.no", "live.no")
GENERIC_MAILBOXES = ("post", "info", "firmapost", "kontakt")

# (name, type, vendor, incl.-VAT price points in NOK, options)
PRODUCT_FAMILIES = (
    ("Ullgenser", "Klær", "Fjellull", (899, 999, 1299), ("S", "M", "L", "XL")),
    ("Regnjakke", "Klær", "Kystkledd", (1499, 1799, 2199), ("S", "M", "L", "XL")),
    ("Strikkelue", "Tilbehør", "Fjellull", (249, 299, 349), ("Grå", "Rød", "Marine")),
    ("Ullvotter", "Tilbehør", "Fjellull", (199, 249), ("S/M", "L/XL")),
    ("Turstøvler", "Sko", "Vidde", (1999, 2499), ("40", "41", "42", "43", "44")),
    ("Ryggsekk 30L", "Utstyr", "Vidde", (899, 1199), ("Sort", "Grønn")),
    ("Termokopp", "Kjøkken", "Heim", (249, 299), ("Stål", "Sort")),
    ("Kaffe 500g", "Mat", "Brenneriet", (129, 149, 169), ("Hele bønner", "Filtermalt")),
    ("Skjærefjøl eik", "Kjøkken", "Heim", (399, 549), ("Liten", "Stor")),
    ("Kaffekvern", "Kjøkken", "Brenneriet", (1299, 1699), ("Standard",)),
    ("Ullpledd", "Interiør", "Fjellull", (1199, 1499), ("Grå", "Natur")),
    ("Hodelykt", "Utstyr", "Vidde", (499, 699), ("Standard",)),
    ("Sitteunderlag", "Utstyr", "Vidde", (149, 199), ("Standard",)),
    ("Keramikkrus", "Kjøkken", "Heim", (189, 229), ("Hvit", "Blå", "Sand")),
)
VAT_RATE = Decimal("0.25")
CURRENCY = "NOK"


def ascii_slug(text: str) -> str:
    """'Jørgensen' -> 'jorgensen' (e-mail local parts and domains are ASCII)."""
    text = text.lower().replace("ø", "o").replace("æ", "ae").replace("å", "a")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in text if c.isalnum())


def org_number(n: int) -> str:
    """A 9-digit Norwegian organisation number with a valid mod-11 check digit."""
    weights = (3, 2, 7, 6, 5, 4, 3, 2)
    base = 80000000 + n * 7 % 19999999
    while True:
        digits = [int(c) for c in f"{base:08d}"]
        rest = 11 - sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if rest == 11:
            return f"{base:08d}0"
        if rest != 10:
            return f"{base:08d}{rest}"
        base += 1


def gtin13(n: int) -> str:
    body = f"70{n:010d}"[:12]
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


@dataclass(slots=True)
class Address:
    line1: str
    line2: str
    zip: str
    city: str
    country: str


@dataclass(slots=True)
class Person:
    key: int
    first_name: str
    last_name: str
    email: str
    phone: str
    address: Address
    changed: datetime


@dataclass(slots=True)
class Organisation:
    key: int
    name: str
    org_number: str
    email: str
    phone: str
    website: str
    address: Address
    contact: int  # key of a person who is the contact
    changed: datetime


@dataclass(slots=True)
class Variant:
    sku: str
    option: str
    price_incl_vat: Decimal
    cost: Decimal
    gtin: str
    stock: int

    @property
    def price_ex_vat(self) -> Decimal:
        return (self.price_incl_vat / (1 + VAT_RATE)).quantize(Decimal("0.01"))


@dataclass(slots=True)
class Family:
    key: int
    name: str
    product_type: str
    vendor: str
    description: str
    variants: list[Variant]
    changed: datetime


@dataclass(slots=True)
class Staff:
    key: int
    first_name: str
    last_name: str
    email: str
    phone: str
    role: str


@dataclass(slots=True)
class OrderLine:
    sku: str
    quantity: int


@dataclass(slots=True)
class Order:
    key: int
    number: int
    person: int | None  # a person customer, or
    organisation: int | None  # an organisation customer
    staff: int
    lines: list[OrderLine]
    created: datetime
    status: str
    po_number: str


@dataclass
class World:
    seed: int
    size: int
    persons: list[Person] = field(default_factory=list)
    organisations: list[Organisation] = field(default_factory=list)
    families: list[Family] = field(default_factory=list)
    staff: list[Staff] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)

    @property
    def variants(self) -> list[tuple[Family, Variant]]:
        return [(f, v) for f in self.families for v in f.variants]

    def variant_by_sku(self) -> dict[str, tuple[Family, Variant]]:
        return {v.sku: (f, v) for f, v in self.variants}

    def rng(self, system: str) -> random.Random:
        """A generator for one system's variations, deterministic for the world's seed."""
        return random.Random(f"{self.seed}:{system}")

    def member(self, system: str, kind: str, key: int, share: float) -> bool:
        """Whether record `key` of `kind` exists in `system` (a stable hash, not a random draw)."""
        return self.membership(system, kind, share)(key)

    def membership(self, system: str, kind: str, share: float) -> Callable[[int], bool]:
        """`member(system, kind, ·, share)` as a function of the key, for loops over 100,000 keys:
        the hash of the fixed prefix is computed once and only the key's digits are added."""
        prefix = _fnv(FNV_OFFSET, f"{self.seed}:{system}:{kind}:".encode())
        limit = share * 10_000
        return lambda key: (_fnv(prefix, str(key).encode()) % 10_000) < limit


FNV_OFFSET = 1469598103934665603


def _fnv(h: int, data: bytes) -> int:
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def hash_int(text: str) -> int:
    """A stable hash (Python's `hash` of str is salted per process): 64-bit FNV-1a."""
    return _fnv(FNV_OFFSET, text.encode())


def _time(rng: random.Random, days: int = 365) -> datetime:
    return ANCHOR - timedelta(seconds=rng.randrange(days * 86400))


def _address(rng: random.Random) -> Address:
    zip_, city, country = rng.choice(CITIES)
    line2 = f"{rng.choice(('H0101', 'H0201', 'H0302', 'c/o', 'Postboks'))} {rng.randrange(1, 400)}" if rng.random() < 0.15 else ""
    return Address(f"{rng.choice(STREETS)} {rng.randrange(1, 120)}", line2, zip_, city, country)


def _phone(rng: random.Random) -> str:
    return f"+47 {rng.choice('49')}{rng.randrange(1000000, 9999999):07d}"


@lru_cache(maxsize=4)
def build_world(seed: int = 1, size: int = 50) -> World:
    """The world for `seed`, with about `size` records per entity in each system."""
    rng = random.Random(seed)
    w = World(seed, size)
    used_emails: set[str] = set()
    for k in range(1, size + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = f"{ascii_slug(first)}.{ascii_slug(last)}"
        email = f"{local}@{rng.choice(MAIL_DOMAINS)}"
        if email in used_emails:
            email = f"{local}{k}@{rng.choice(MAIL_DOMAINS)}"
        used_emails.add(email)
        w.persons.append(Person(k, first, last, email, _phone(rng), _address(rng), _time(rng)))
    for k in range(1, max(2, size // 2) + 1):
        word = rng.choice(COMPANY_WORDS)
        place = rng.choice(COMPANY_PLACES)
        name = f"{word} {place} {rng.choice(COMPANY_FORMS)}"
        domain = f"{ascii_slug(word)}{ascii_slug(place)}{k}.no"
        email = f"{rng.choice(GENERIC_MAILBOXES)}@{domain}"
        phone = f"+47 {rng.randrange(21000000, 79999999)}"
        w.organisations.append(
            Organisation(k, name, org_number(k), email, phone, f"https://www.{domain}", _address(rng),
                         rng.randrange(1, size + 1), _time(rng))
        )
    n_families = max(2, size // 3)
    for k in range(1, n_families + 1):
        name, ptype, vendor, prices, options = PRODUCT_FAMILIES[(k - 1) % len(PRODUCT_FAMILIES)]
        series = (k - 1) // len(PRODUCT_FAMILIES)
        title = name if series == 0 else f"{name} {series + 1}"
        prefix = ascii_slug(name)[:4].upper()
        price = Decimal(rng.choice(prices))
        variants = [
            Variant(
                sku=f"{prefix}-{k:05d}-{ascii_slug(opt).upper() or 'STD'}",
                option=opt,
                price_incl_vat=price,
                cost=(price / Decimal("2.6")).quantize(Decimal("0.01")),
                gtin=gtin13(k * 10 + i),
                stock=rng.randrange(0, 250),
            )
            for i, opt in enumerate(options[: 1 + rng.randrange(len(options))])
        ]
        desc = f"{title} fra {vendor}. {ptype} av god kvalitet."
        w.families.append(Family(k, title, ptype, vendor, desc, variants, _time(rng)))
    for k in range(1, max(5, size // 20) + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        w.staff.append(Staff(k, first, last, f"{ascii_slug(first)}.{ascii_slug(last)}{k}@nordlyshandel.no",
                             _phone(rng), rng.choice(("Sales", "Sales", "Support", "Manager"))))
    skus = [v.sku for _, v in w.variants]
    for k in range(1, size + 1):
        is_org = rng.random() < 0.35
        lines = [OrderLine(rng.choice(skus), rng.randrange(1, 5)) for _ in range(rng.randrange(1, 4))]
        w.orders.append(
            Order(
                key=k,
                number=1000 + k,
                person=None if is_org else rng.randrange(1, size + 1),
                organisation=rng.randrange(1, len(w.organisations) + 1) if is_org else None,
                staff=rng.randrange(1, len(w.staff) + 1),
                lines=lines,
                created=_time(rng, 200),
                status=rng.choice(("open", "open", "open", "closed", "cancelled")),
                po_number=f"PO-{rng.randrange(10000, 99999)}" if is_org and rng.random() < 0.6 else "",
            )
        )
    return w


def vary_email(rng: random.Random, email: str) -> str:
    """The same mailbox as another system might store it (case differs now and then)."""
    return email.upper() if rng.random() < 0.03 else (email.capitalize() if rng.random() < 0.05 else email)


def vary_phone(rng: random.Random, phone: str) -> str:
    """Phone numbers are formatted differently from system to system, or missing."""
    r = rng.random()
    if r < 0.1:
        return ""
    if r < 0.3:
        return phone.replace("+47 ", "")
    return phone


def maybe(rng: random.Random, value: str, missing: float = 0.08) -> str:
    """Some records are incomplete."""
    return "" if rng.random() < missing else value
