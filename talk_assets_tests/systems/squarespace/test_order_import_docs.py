"""Squarespace order import as the create-order documentation requires it, over HTTP against the sandbox.

https://developers.squarespace.com/commerce-apis/create-order: "Requests to create an order
without an existing Squarespace products results in an error"; channelName, externalOrderReference,
createdOn, lineItems (lineItemType, variantId, quantity, unitPricePaid), priceTaxInterpretation,
the five totals (subtotal, shippingTotal, discountTotal, taxTotal, grandTotal) and fulfillmentStatus
are required (a public connector's captured traffic shows a body without `subtotal` answered 400).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from talk_assets.sandbox.server import SandboxServer
from talk_assets.systems.squarespace.client import Client

from .test_squarespace import api, assert_error


def documented_body(variant_id: str, ref: str = "DOC-1") -> dict[str, Any]:
    nok = lambda v: {"currency": "NOK", "value": v}  # noqa: E731
    return {"channelName": "Nettbutikk B", "externalOrderReference": ref, "createdOn": "2026-10-01T10:00:00.000Z",
            "customerEmail": "kari.hansen@gmail.com", "priceTaxInterpretation": "INCLUSIVE",
            "fulfillmentStatus": "PENDING", "inventoryBehavior": "SKIP",
            "lineItems": [{"lineItemType": "PHYSICAL_PRODUCT", "variantId": variant_id, "quantity": 2,
                           "unitPricePaid": nok("250.00")}],
            "subtotal": nok("500.00"), "shippingTotal": nok("99.00"), "discountTotal": nok("0.00"),
            "taxTotal": nok("100.00"), "grandTotal": nok("599.00")}


@pytest.mark.parametrize("name", ["subtotal", "shippingTotal", "discountTotal", "taxTotal", "grandTotal",
                                  "fulfillmentStatus", "priceTaxInterpretation", "createdOn", "lineItems"])
def test_a_documented_required_field_missing_is_400(fresh: SandboxServer, raw: requests.Session, client: Client,
                                                     name: str) -> None:
    vid = client.list_inventory()[0].variantId
    body = {k: v for k, v in documented_body(vid).items() if k != name}
    before = len(fresh.app.orders)
    assert_error(raw.post(api(fresh, "orders"), json=body, headers={"Idempotency-Key": f"miss-{name}"}), 400,
                 "INVALID_REQUEST_ERROR", name)
    assert len(fresh.app.orders) == before


def test_a_line_without_a_squarespace_product_is_refused(fresh: SandboxServer, raw: requests.Session,
                                                          client: Client) -> None:
    vid = client.list_inventory()[0].variantId
    body = documented_body(vid, "DOC-CUSTOM")
    custom = {"lineItemType": "CUSTOM", "title": "KAFFE-500G", "quantity": 1,
              "unitPricePaid": {"currency": "NOK", "value": "99.00"}}
    for i, line in enumerate([custom, {k: v for k, v in body["lineItems"][0].items() if k != "variantId"}]):
        bad = {**body, "lineItems": [line]}
        field = "lineItems[0].lineItemType" if i == 0 else "lineItems[0].variantId"
        assert_error(raw.post(api(fresh, "orders"), json=bad, headers={"Idempotency-Key": f"cust-{i}"}), 400,
                     "INVALID_REQUEST_ERROR", field)


def test_the_documented_body_is_accepted_and_kept(fresh: SandboxServer, raw: requests.Session,
                                                   client: Client) -> None:
    vid = client.list_inventory()[0].variantId
    resp = raw.post(api(fresh, "orders"), json=documented_body(vid), headers={"Idempotency-Key": "doc-ok"})
    assert resp.status_code == 201, resp.text
    o = resp.json()
    assert o["subtotal"]["value"] == "500.00" and o["shippingTotal"]["value"] == "99.00"
    assert o["taxTotal"]["value"] == "100.00" and o["grandTotal"]["value"] == "599.00"
    assert o["lineItems"][0]["variantId"] == vid and o["lineItems"][0]["sku"]
