"""Shopify's identity and connection settings (a leaf module: the client and sandbox read it)."""

from talk_assets.settings import Setting, SystemInfo

INFO = SystemInfo(
    key="shopify",
    title="Shopify",
    port_offset=0,
    url_env="TALK_SHOPIFY_URL",
    settings={
        "api_version": Setting("TALK_SHOPIFY_API_VERSION", "2026-07", help="Admin REST API version"),
        "access_token": Setting(
            "TALK_SHOPIFY_ACCESS_TOKEN", "shpat_sandbox0000000000000000000000", secret=True,
            help="Admin API access token of a custom app",
        ),
    },
)
