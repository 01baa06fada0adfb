"""Drives Shopify's own Python library (ShopifyAPI) against a sandbox; run as a separate process.

It runs in its own interpreter because pytest imports this test folder as a package named
`shopify`, which would shadow the library. Usage: python official_client_script.py URL TOKEN.
Prints one JSON document with what the library saw.
"""

from __future__ import annotations

import json
import sys

import shopify


def main(url: str, token: str) -> dict:
    # The only change from production: the site. A real app would use
    # shopify.Session("shop.myshopify.com", "2026-07", token) and activate it the same way.
    session = shopify.Session("sandbox.myshopify.com", "2026-07", token)
    shopify.ShopifyResource.activate_session(session)
    shopify.ShopifyResource.set_site(f"{url}/admin/api/2026-07")
    out: dict = {}

    page = shopify.Customer.find(limit=5)
    ids = [c.id for c in page]
    pages = 1
    while page.has_next_page():
        page = page.next_page()
        ids.extend(c.id for c in page)
        pages += 1
    out["customer_ids"] = ids
    out["pages"] = pages

    first = shopify.Customer.find(ids[0])
    out["first_email"] = first.email

    new = shopify.Customer({"email": "offisiell@example.no", "first_name": "Offisiell", "last_name": "Klient"})
    out["created"] = new.save()
    new.last_name = "Bibliotek"
    out["updated"] = new.save()
    out["customer"] = shopify.Customer.find(new.id).to_dict()

    dup = shopify.Customer({"email": "offisiell@example.no"})
    out["dup_saved"] = dup.save()
    out["dup_errors"] = dup.errors.full_messages()

    product = shopify.Product({"title": "Bibliotekgenser", "vendor": "Fjellull",
                               "variants": [{"option1": "S", "price": "899.00", "sku": "BIB-S"},
                                            {"option1": "M", "price": "899.00", "sku": "BIB-M"}]})
    out["product_created"] = product.save()
    product.title = "Bibliotekgenser 2"
    product.variants[0].price = "799.00"
    out["product_updated"] = product.save()
    out["product"] = shopify.Product.find(product.id).to_dict()

    order = shopify.Order({"line_items": [{"variant_id": product.variants[1].id, "quantity": 2}],
                           "customer": {"id": new.id}})
    out["order_created"] = order.save()
    order.note = "Fra ShopifyAPI"
    out["order_updated"] = order.save()
    out["order"] = shopify.Order.find(order.id).to_dict()
    out["orders_any"] = len(shopify.Order.find(status="any", limit=250))
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2]), default=str))
