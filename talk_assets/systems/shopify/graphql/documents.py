"""Every GraphQL document the Shopify client sends, as constants in one place.

Field names, arguments and input types are Shopify's GraphQL Admin API 2026-07 (the schema in
`talk_assets/systems/shopify/schema/`, from `@shopify/dev-mcp`); a test validates each document here
(`DOCUMENTS` and the bulk queries in `BULK_QUERIES`) against that schema with graphql-core, so a field
that does not exist in 2026-07 fails the test, not the first sync of a real shop.

Selections are shared as text so a paged read, a single read, a bulk read and a mutation's answer
return the same shape (the client turns it into the record the views read, `models.from_graphql`).
"""

from __future__ import annotations

import json

ADDRESS = "id firstName lastName name company address1 address2 city province provinceCode zip countryCodeV2 phone"

CUSTOMER = f"""id legacyResourceId firstName lastName note tags state verifiedEmail createdAt updatedAt
  defaultEmailAddress {{ emailAddress }}
  defaultPhoneNumber {{ phoneNumber }}
  defaultAddress {{ {ADDRESS} }}"""

VARIANT = """id legacyResourceId title sku price compareAtPrice barcode taxable position inventoryQuantity createdAt updatedAt
  selectedOptions { name value }
  inventoryItem { id legacyResourceId }"""

# vendor, productType and handle are not read: the sync uses none of them
PRODUCT = """id legacyResourceId title descriptionHtml status tags createdAt updatedAt
  options { id name position values }"""

LINE_ITEM = """id sku title variantTitle quantity
  originalUnitPriceSet { shopMoney { amount currencyCode } }
  variant { id legacyResourceId }
  product { id legacyResourceId }"""

# staffMember needs `read_users` (Shopify Plus / Advanced only; https://shopify.dev/docs/api/admin-graphql/
# latest/objects/StaffMember): asked for only when the installation has that scope
ORDER = """id legacyResourceId name email currencyCode poNumber sourceIdentifier sourceName note tags taxesIncluded
  createdAt processedAt updatedAt closedAt cancelledAt displayFinancialStatus displayFulfillmentStatus
  totalPriceSet { shopMoney { amount currencyCode } }
  subtotalPriceSet { shopMoney { amount } }
  totalTaxSet { shopMoney { amount } }
  customer { id legacyResourceId firstName lastName defaultEmailAddress { emailAddress } }
  staffMember @include(if: $withStaff) { id }"""

PAGE_INFO = "pageInfo { hasNextPage endCursor }"
USER_ERRORS = "userErrors { field message }"
CODED_USER_ERRORS = "userErrors { field message code }"

# -- reads -----------------------------------------------------------------------------------------
ACCESS_SCOPES = "query AccessScopes { currentAppInstallation { accessScopes { handle } } }"

SHOP = "query Shop { shop { currencyCode taxesIncluded } }"

# The shop's staff (`read_users`; Plus/Advanced). The docs name no change filter for staff.
STAFF_MEMBERS = f"""query StaffMembers($first: Int!, $after: String) {{
  staffMembers(first: $first, after: $after) {{
    {PAGE_INFO}
    nodes {{ id email firstName lastName phone isShopOwner active }}
  }}
}}"""

# Reads of changes: `query: "updated_at:>'…'"`, `sortKey: UPDATED_AT`, cursor paging
# (https://shopify.dev/docs/api/usage/pagination-graphql, https://shopify.dev/docs/api/usage/search-syntax)
CUSTOMERS = f"""query Customers($first: Int!, $after: String, $query: String) {{
  customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    {PAGE_INFO}
    nodes {{ {CUSTOMER} }}
  }}
}}"""

PRODUCTS = f"""query Products($first: Int!, $after: String, $query: String, $variants: Int!) {{
  products(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    {PAGE_INFO}
    nodes {{
      {PRODUCT}
      variants(first: $variants) {{ {PAGE_INFO} nodes {{ {VARIANT} }} }}
    }}
  }}
}}"""

PRODUCT_VARIANTS = f"""query ProductVariants($id: ID!, $first: Int!, $after: String) {{
  product(id: $id) {{ variants(first: $first, after: $after) {{ {PAGE_INFO} nodes {{ {VARIANT} }} }} }}
}}"""

ORDERS = f"""query Orders($first: Int!, $after: String, $query: String, $lines: Int!, $withStaff: Boolean!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    {PAGE_INFO}
    nodes {{
      {ORDER}
      lineItems(first: $lines) {{ {PAGE_INFO} nodes {{ {LINE_ITEM} }} }}
    }}
  }}
}}"""

ORDER_LINE_ITEMS = f"""query OrderLineItems($id: ID!, $first: Int!, $after: String) {{
  order(id: $id) {{ lineItems(first: $first, after: $after) {{ {PAGE_INFO} nodes {{ {LINE_ITEM} }} }} }}
}}"""

CUSTOMER_BY_ID = f"query Customer($id: ID!) {{ customer(id: $id) {{ {CUSTOMER} }} }}"

PRODUCT_BY_ID = f"""query Product($id: ID!, $variants: Int!) {{
  product(id: $id) {{ {PRODUCT} variants(first: $variants) {{ {PAGE_INFO} nodes {{ {VARIANT} }} }} }}
}}"""

ORDER_BY_ID = f"""query Order($id: ID!, $lines: Int!, $withStaff: Boolean!) {{
  order(id: $id) {{ {ORDER} lineItems(first: $lines) {{ {PAGE_INFO} nodes {{ {LINE_ITEM} }} }} }}
}}"""

LOCATIONS = f"""query Locations($first: Int!, $after: String) {{
  locations(first: $first, after: $after) {{
    {PAGE_INFO}
    nodes {{ id legacyResourceId name isActive address {{ address1 city zip countryCode }} }}
  }}
}}"""

INVENTORY_LEVEL_FIELDS = """id updatedAt quantities(names: ["available"]) { name quantity }
  item { id legacyResourceId } location { id legacyResourceId }"""

INVENTORY_LEVELS = f"""query InventoryLevels($location: ID!, $first: Int!, $after: String) {{
  location(id: $location) {{
    inventoryLevels(first: $first, after: $after) {{ {PAGE_INFO} nodes {{ {INVENTORY_LEVEL_FIELDS} }} }}
  }}
}}"""

# an item's levels (one per location it is stocked at; the client picks the location)
INVENTORY_LEVEL = f"""query InventoryLevel($item: ID!) {{
  inventoryItem(id: $item) {{ inventoryLevels(first: 50) {{ nodes {{ {INVENTORY_LEVEL_FIELDS} }} }} }}
}}"""

# A cheap change probe: the count and the newest update time (documented arguments only: the count
# query's `limit: null` lifts the default cap of 10000, `sortKey: UPDATED_AT, reverse: true` gives the newest)
PROBE_CUSTOMERS = """query ProbeCustomers {
  customersCount(limit: null) { count precision }
  customers(first: 1, sortKey: UPDATED_AT, reverse: true) { nodes { updatedAt } }
}"""
PROBE_PRODUCTS = """query ProbeProducts {
  productsCount(limit: null) { count precision }
  products(first: 1, sortKey: UPDATED_AT, reverse: true) { nodes { updatedAt } }
}"""
PROBE_ORDERS = """query ProbeOrders {
  ordersCount(limit: null) { count precision }
  orders(first: 1, sortKey: UPDATED_AT, reverse: true) { nodes { updatedAt } }
}"""

# How many records changed since a time, before reading them (issue #15): the first page is sized to
# the count, so reading a few changes requests a few records' cost, and more changes than the cost
# bucket holds are read by a bulk operation with the same filter. `<x>Count(query:, limit:)` takes the
# same search syntax as the connection (https://shopify.dev/docs/api/admin-graphql/2026-07/queries/ordersCount).
COUNT_CUSTOMERS = """query CountCustomers($query: String) { customersCount(query: $query, limit: null) { count precision } }"""
COUNT_PRODUCTS = """query CountProducts($query: String) { productsCount(query: $query, limit: null) { count precision } }"""
COUNT_ORDERS = """query CountOrders($query: String) { ordersCount(query: $query, limit: null) { count precision } }"""

# -- full reads: bulk operations (https://shopify.dev/docs/api/usage/bulk-operations/queries) --------
# The query inside a bulk operation takes no variables; nested connections come back as their own JSONL
# lines with `__parentId`. `groupObjects: true` keeps a parent's children right after it, so the
# client can rebuild each record while streaming the file.
BULK_CUSTOMERS = f"""{{
  customers {{ edges {{ node {{ {CUSTOMER} }} }} }}
}}"""
BULK_PRODUCTS = f"""{{
  products {{ edges {{ node {{ {PRODUCT} variants {{ edges {{ node {{ {VARIANT} }} }} }} }} }} }}
}}"""
BULK_ORDERS_TEMPLATE = """{
  orders { edges { node { %s lineItems { edges { node { %s } } } } } }
}"""


def bulk_orders(with_staff: bool) -> str:
    """The bulk query for orders; the staff member only with `read_users` (no variables in a bulk query)."""
    order = ORDER.replace(" @include(if: $withStaff)", "")
    if not with_staff:
        order = order.replace("\n  staffMember { id }", "")
    return BULK_ORDERS_TEMPLATE % (order, LINE_ITEM)


BULK_QUERIES = {"customer": BULK_CUSTOMERS, "product": BULK_PRODUCTS, "order": bulk_orders(True),
                "order_without_staff": bulk_orders(False)}
BULK_ROOTS = {"customer": "customers", "product": "products", "order": "orders"}


def bulk_filtered(query: str, entity: str, search: str) -> str:
    """A bulk query whose top connection takes a `query:` filter (a bulk query takes no variables, so
    the search string is a literal; the guide's example filters `products(query: "created_at:>=...")`,
    https://shopify.dev/docs/api/usage/bulk-operations/queries)."""
    root = BULK_ROOTS[entity]
    literal = json.dumps(search)  # a GraphQL string literal: JSON's escapes are GraphQL's
    head = f"{{\n  {root} {{"
    assert query.startswith(head), query[:40]
    return f"{{\n  {root}(query: {literal}) {{" + query[len(head):]

BULK_RUN = f"""mutation BulkRun($query: String!) {{
  bulkOperationRunQuery(query: $query, groupObjects: true) {{
    bulkOperation {{ id status }}
    {CODED_USER_ERRORS}
  }}
}}"""

BULK_STATUS = """query BulkStatus($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount rootObjectCount url partialDataUrl }
}"""

# -- writes ----------------------------------------------------------------------------------------
CUSTOMER_CREATE = f"""mutation CustomerCreate($input: CustomerInput!) {{
  customerCreate(input: $input) {{ customer {{ {CUSTOMER} }} {USER_ERRORS} }}
}}"""

CUSTOMER_UPDATE = f"""mutation CustomerUpdate($input: CustomerInput!) {{
  customerUpdate(input: $input) {{ customer {{ {CUSTOMER} }} {USER_ERRORS} }}
}}"""

# productSet: "sync information from an external data source into Shopify" (2026-07 description)
PRODUCT_SET = f"""mutation ProductSet($input: ProductSetInput!, $variants: Int!) {{
  productSet(input: $input, synchronous: true) {{
    product {{ {PRODUCT} variants(first: $variants) {{ {PAGE_INFO} nodes {{ {VARIANT} }} }} }}
    {CODED_USER_ERRORS}
  }}
}}"""

PRODUCT_UPDATE = f"""mutation ProductUpdate($product: ProductUpdateInput!) {{
  productUpdate(product: $product) {{ product {{ {PRODUCT} }} {USER_ERRORS} }}
}}"""

VARIANTS_UPDATE = f"""mutation VariantsUpdate($productId: ID!, $variants: [ProductVariantsBulkInput!]!) {{
  productVariantsBulkUpdate(productId: $productId, variants: $variants) {{
    productVariants {{ {VARIANT} }}
    {CODED_USER_ERRORS}
  }}
}}"""

# `changeFromQuantity` is the compare quantity (an optimistic lock); the mutation takes an idempotency
# key through `@idempotent` since 2026-01 and requires one since 2026-04 (its 2026-07 description)
INVENTORY_SET = f"""mutation InventorySet($input: InventorySetQuantitiesInput!, $key: String!) {{
  inventorySetQuantities(input: $input) @idempotent(key: $key) {{
    inventoryAdjustmentGroup {{ id changes {{ name delta quantityAfterChange }} }}
    {CODED_USER_ERRORS}
  }}
}}"""

ORDER_CREATE = f"""mutation OrderCreate($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput, $lines: Int!,
    $withStaff: Boolean!) {{
  orderCreate(order: $order, options: $options) {{
    order {{ {ORDER} lineItems(first: $lines) {{ {PAGE_INFO} nodes {{ {LINE_ITEM} }} }} }}
    {CODED_USER_ERRORS}
  }}
}}"""

CUSTOMER_DELETE = f"""mutation CustomerDelete($input: CustomerDeleteInput!) {{
  customerDelete(input: $input) {{
    deletedCustomerId
    {USER_ERRORS}
  }}
}}"""

ORDER_UPDATE = f"""mutation OrderUpdate($input: OrderInput!, $lines: Int!, $withStaff: Boolean!) {{
  orderUpdate(input: $input) {{
    order {{ {ORDER} lineItems(first: $lines) {{ {PAGE_INFO} nodes {{ {LINE_ITEM} }} }} }}
    {USER_ERRORS}
  }}
}}"""

DOCUMENTS: dict[str, str] = {name: value for name, value in globals().items()
                             if name.isupper() and isinstance(value, str)
                             and value.lstrip().startswith(("query", "mutation"))}
