"""The model's typed declarations: what a conversion means is declared, never read back out of its SQL."""

from __future__ import annotations

import pytest

from talk_assets.sync import conversions as c
from talk_assets.sync.declaration import VIEWS, VIEWS_BY_KEY
from talk_assets.sync.model import Conversion, View, record_field
from talk_assets.sync.model import Prop as P


def test_a_read_declares_the_record_fields_it_looks_up() -> None:
    sql = f"concat({{v}}, {record_field('a.b')}, {record_field('c')})"
    assert Conversion(sql, record_fields=("a.b", "c")).record_fields == ("a.b", "c")
    with pytest.raises(ValueError, match="does not declare"):
        Conversion(sql, record_fields=("a.b",))
    with pytest.raises(ValueError, match="does not read"):
        Conversion(sql, record_fields=("a.b", "c", "d"))
    with pytest.raises(ValueError, match="order of appearance"):
        Conversion(sql, record_fields=("c", "a.b"))


def test_a_view_declares_the_fields_its_where_looks_up() -> None:
    with pytest.raises(ValueError, match="does not declare"):
        View("x", "things", "Thing", "customer", (P("email", "email", "string", c.EMAIL),),
             where=f"{record_field('kind')} = 'a'")


def test_conversions_carry_their_types() -> None:
    assert (c.DEC.sql_type, c.DEC.expects) == ("DECIMAL(18,4)", "a number")
    assert (c.DATE.sql_type, c.DATE.expects) == ("TIMESTAMPTZ", "a date")
    assert c.EMAIL.sql_type is None and c.EMAIL.expects == "text"
    crm_customer = VIEWS_BY_KEY["customcrm.customer"]
    order = VIEWS_BY_KEY["customcrm.order"]
    ref = order.reader("customer")
    assert ref is not None and (ref.conversion.refers_to, ref.namespace) == ("customer", crm_customer.namespace)
    lines = order.reader("lines")
    assert lines is not None and (lines.conversion.refers_to, lines.json_type) == ("product", "list")


def test_every_field_reading_a_number_or_date_declares_it() -> None:
    """A read that casts its field (`TRY_CAST({v} AS ...)`) says so by its `sql_type`, so collect can
    reject a value that does not convert."""
    for v in VIEWS:
        for p in v.props:
            if p.read and "TRY_CAST({v} AS" in p.read:
                assert p.converts_to, (v.vkey, p.field)
