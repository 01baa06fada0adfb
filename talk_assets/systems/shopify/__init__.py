"""Shopify Admin REST API: sandbox, models and client."""
