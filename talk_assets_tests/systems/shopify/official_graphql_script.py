"""Drives Shopify's own Python library's GraphQL helper (`shopify.GraphQL().execute`) against a sandbox.

Run as a separate process for the same reason as `official_client_script.py` (this test folder is a
package named `shopify` under pytest). Usage: python official_graphql_script.py URL TOKEN.
Prints one JSON document with what the library saw.
"""

from __future__ import annotations

import json
import sys

import shopify


def main(url: str, token: str) -> dict:
    session = shopify.Session("sandbox.myshopify.com", "2026-07", token)
    shopify.ShopifyResource.activate_session(session)
    shopify.ShopifyResource.set_site(f"{url}/admin/api/2026-07")
    client = shopify.GraphQL()
    out: dict = {}
    out["shop"] = json.loads(client.execute("{ shop { name currencyCode } }"))
    out["customers"] = json.loads(client.execute(
        "query($n: Int!) { customers(first: $n) { nodes { id email } pageInfo { hasNextPage } } }", {"n": 3}))
    out["created"] = json.loads(client.execute(
        "mutation Create($input: CustomerInput!) { customerCreate(input: $input) { customer { id email } "
        "userErrors { field message } } }", {"input": {"email": "graphql-offisiell@example.no", "lastName": "Klient"}},
        operation_name="Create"))
    new_id = out["created"]["data"]["customerCreate"]["customer"]["id"].rsplit("/", 1)[-1]
    out["rest_view"] = shopify.Customer.find(int(new_id)).to_dict()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
