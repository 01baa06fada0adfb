"""The merge rules on small hand-made tables (DuckDB in memory, no HTTP)."""

from __future__ import annotations

from datetime import timedelta

import duckdb

from talk_assets.sync.links import links_at, resolve_version, update_links
from talk_assets.sync.merge import merge_type
from talk_assets_tests.sync.small_world import T0, put, ts  # noqa: F401 - `con` is the fixture in conftest.py


def merged(con: duckdb.DuckDBPyConnection, gtype: str) -> list[dict]:
    merge_type(con, gtype)
    df = con.execute(f"SELECT * FROM merged_{gtype} ORDER BY gid").df()
    return df.to_dict("records")


def group_of(rows: list[dict], nsid: str) -> dict:
    return next(r for r in rows if nsid in list(r["records"]))


def test_transitive_merge_by_email_and_organisation_number(con: duckdb.DuckDBPyConnection) -> None:
    put(con, "shopify.customer", {"id": 1, "email": "ola@firma.no", "first_name": "Ola", "updated_at": ts(1)})
    put(con, "poweroffice.customers", {"Id": 2, "EmailAddress": "OLA@firma.no ", "Name": "Firma AS", "IsPerson": False,
                                       "OrganizationNumber": "987 654 321", "LastChangedDateTimeOffset": ts(1)})
    put(con, "customcrm.customers", {"id": 3, "email": "regnskap@firma.no", "name": "Firma AS", "customer_type": "company",
                                     "organization_number": "987654321", "updated_at": ts(1)},
        {"id": 4, "email": "someone@else.no", "name": "Else AS", "customer_type": "company", "updated_at": ts(1)})
    rows = merged(con, "customer")
    g = group_of(rows, "shopify-customer:1")
    assert sorted(g["records"]) == ["customcrm-customers:3", "poweroffice-customers:2", "shopify-customer:1"]
    assert g["organization_number"] == "987654321"
    assert group_of(rows, "customcrm-customers:4")["record_count"] == 1
    assert len(rows) == 2


def test_latest_change_wins_per_property_not_per_record(con: duckdb.DuckDBPyConnection) -> None:
    put(con, "shopify.customer", {"id": 1, "email": "kari@x.no", "updated_at": ts(1),
                                  "default_address": {"phone": "91111111", "city": "Oslo"}})
    put(con, "customwebshop.customers", {"id": 9, "email": "kari@x.no", "phone": "92222222", "updated_at": ts(2),
                                         "billing_address": {"city": "Bergen"}})
    # Shopify edits only the city later: its phone stays the older value and must not win
    put(con, "shopify.customer", {"id": 1, "email": "kari@x.no", "updated_at": ts(3),
                                  "default_address": {"phone": "91111111", "city": "Trondheim"}})
    g = group_of(merged(con, "customer"), "shopify-customer:1")
    assert g["city"] == "Trondheim"
    assert g["phone"] == "+4792222222"
    assert g["phone__from"]["nsid"] == "customwebshop-customers:9"
    assert g["city__from"]["nsid"] == "shopify-customer:1"
    assert g["city__from"]["at"] == T0 + timedelta(hours=3)


def test_empty_value_never_overwrites(con: duckdb.DuckDBPyConnection) -> None:
    put(con, "shopify.customer", {"id": 1, "email": "kari@x.no", "first_name": "Kari", "updated_at": ts(1),
                                  "default_address": {"phone": "91111111"}})
    put(con, "customwebshop.customers", {"id": 9, "email": "kari@x.no", "first_name": "", "phone": None,
                                         "updated_at": ts(5)})
    g = group_of(merged(con, "customer"), "shopify-customer:1")
    assert g["first_name"] == "Kari"
    assert g["phone"] == "+4791111111"


def test_generic_and_shared_mailboxes_do_not_merge_persons(con: duckdb.DuckDBPyConnection) -> None:
    put(con, "shopify.customer", {"id": 1, "email": "post@familien.no", "first_name": "Per", "updated_at": ts(1)})
    put(con, "customwebshop.customers",
        {"id": 2, "email": "post@familien.no", "first_name": "Pål", "updated_at": ts(1)},
        {"id": 3, "email": "felles@hjem.no", "first_name": "Espen", "updated_at": ts(1)},
        {"id": 4, "email": "felles@hjem.no", "first_name": "Askeladd", "updated_at": ts(1)})
    put(con, "customcrm.customers", {"id": 5, "email": "felles@hjem.no", "name": "Espen Ask", "customer_type": "person",
                                     "updated_at": ts(1)})
    rows = merged(con, "customer")
    assert all(r["record_count"] == 1 for r in rows), [r["records"] for r in rows]
    # an organisation's post@ mailbox does identify the organisation
    put(con, "poweroffice.customers", {"Id": 7, "EmailAddress": "post@firma.no", "Name": "Firma AS", "IsPerson": False,
                                       "LastChangedDateTimeOffset": ts(1)})
    put(con, "customcrm.customers", {"id": 8, "email": "post@firma.no", "name": "Firma AS", "customer_type": "company",
                                     "updated_at": ts(1)})
    assert group_of(merged(con, "customer"), "poweroffice-customers:7")["record_count"] == 2


def test_products_merge_by_sku_across_variants_and_empty_sku_never_merges(con: duckdb.DuckDBPyConnection) -> None:
    put(con, "shopify.product", {"id": 100, "title": "Ullgenser", "updated_at": ts(1), "variants": [
        {"id": 1, "sku": "ullg-1-m", "title": "M", "price": "899.00", "inventory_quantity": 4},
        {"id": 2, "sku": "", "title": "L", "price": "899.00"}]})
    put(con, "customcrm.products", {"id": 7, "sku": "ULLG-1-M", "name": "Ullgenser M", "unit_price": "719.2",
                                    "stock_quantity": 9, "updated_at": ts(2)},
        {"id": 8, "sku": " ", "name": "Uten SKU", "unit_price": "10", "updated_at": ts(2)})
    rows = merged(con, "product")
    g = group_of(rows, "shopify-product:1")
    assert sorted(g["records"]) == ["customcrm-products:7", "shopify-product:1"]
    assert g["price_ex_vat"] == "719.20"  # 899.00 incl. VAT and 719.2 ex. VAT are the same price
    assert g["stock"] == "9"
    assert group_of(rows, "shopify-product:2")["record_count"] == 1
    assert group_of(rows, "customcrm-products:8")["record_count"] == 1


def test_links_keep_records_together_and_are_versioned(con: duckdb.DuckDBPyConnection) -> None:
    put(con, "shopify.customer", {"id": 1, "email": "kari@x.no", "updated_at": ts(1)})
    put(con, "customwebshop.customers", {"id": 9, "email": "kari@x.no", "updated_at": ts(1)})
    for t in ("customer", "user", "product", "order"):
        merge_type(con, t)
    v1 = update_links(con, T0)
    assert (v1.version, v1.created, v1.rows) == (1, True, 2)
    assert update_links(con, T0).created is False  # same content: no new version
    # the webshop changes the e-mail: the link keeps the two records one customer
    put(con, "customwebshop.customers", {"id": 9, "email": "kari.nordmann@x.no", "updated_at": ts(2)})
    put(con, "customcrm.customers", {"id": 3, "email": "new@y.no", "name": "Ny AS", "updated_at": ts(2)})
    g = group_of(merged(con, "customer"), "shopify-customer:1")
    assert g["record_count"] == 2 and g["email"] == "kari.nordmann@x.no"
    v2 = update_links(con, T0 + timedelta(hours=5))
    assert (v2.version, v2.added, v2.removed, v2.rows) == (2, 1, 0, 3)
    assert v2.data_version != v1.data_version
    assert len(links_at(con, 1)) == 2 and len(links_at(con, 2)) == 3
    assert resolve_version(con, v1.data_version[:10]) == 1
    assert resolve_version(con, (T0 + timedelta(hours=1)).isoformat()) == 1
    assert resolve_version(con, None) == 2


def test_a_name_joined_from_the_parts_never_beats_them_and_a_real_edit_of_it_does(
        con: duckdb.DuckDBPyConnection) -> None:
    put(con, "customwebshop.customers", {"id": 1, "email": "anne@x.no", "first_name": "Anne Marie",
                                         "last_name": "van der Berg", "updated_at": ts(1)},
        {"id": 2, "email": "cher@x.no", "first_name": "Cher", "updated_at": ts(1)})
    # the CRM records the sync wrote from them, newer than the parts
    put(con, "customcrm.customers", {"id": 7, "email": "anne@x.no", "name": "Anne Marie van der Berg",
                                     "customer_type": "person", "updated_at": ts(2)},
        {"id": 8, "email": "cher@x.no", "name": "Cher", "customer_type": "person", "updated_at": ts(2)})
    rows = merged(con, "customer")
    anne, cher = group_of(rows, "customwebshop-customers:1"), group_of(rows, "customwebshop-customers:2")
    assert (anne["first_name"], anne["last_name"]) == ("Anne Marie", "van der Berg")
    assert cher["first_name"] == "Cher" and not isinstance(cher["last_name"], str)  # none (NaN in pandas)
    # a real edit of the CRM name, later still: its split wins
    put(con, "customcrm.customers", {"id": 7, "email": "anne@x.no", "name": "Anne Marie de la Cruz",
                                     "customer_type": "person", "updated_at": ts(3)})
    anne = group_of(merged(con, "customer"), "customwebshop-customers:1")
    assert (anne["first_name"], anne["last_name"]) == ("Anne Marie", "de la Cruz")
    assert anne["last_name__from"]["nsid"] == "customcrm-customers:7"


def test_a_field_emptied_in_a_later_version_reads_as_empty_not_as_its_old_value(
        con: duckdb.DuckDBPyConnection) -> None:
    put(con, "customwebshop.customers", {"id": 1, "email": "a@x.no", "updated_at": ts(1),
                                         "billing_address": {"city": "Hamar"}})
    put(con, "customwebshop.customers", {"id": 1, "email": "a@x.no", "updated_at": ts(2),
                                         "billing_address": {"city": None}})
    merge_type(con, "customer")
    assert con.execute("SELECT city FROM norm_customwebshop_customer").fetchall() == [(None,)]
