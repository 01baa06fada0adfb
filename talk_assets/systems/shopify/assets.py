"""Shopify's assets: where its records live, what was collected, what it should hold, what was written.

Generated from the declaration (talk_assets/sync/declaration.py) by the asset factory."""

from talk_assets.sync.assets import system_assets

assets = system_assets("shopify")
