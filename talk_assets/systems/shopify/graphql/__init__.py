"""Every GraphQL document the Shopify client can send, in one place (`documents.py`), and the cost pacer."""
