"""Squarespace's identity and connection settings (a leaf module: the client and sandbox read it)."""

from talk_assets.settings import Setting, SystemInfo

INFO = SystemInfo(
    key="squarespace",
    title="Squarespace",
    port_offset=2,
    url_env="TALK_SQUARESPACE_URL",
    settings={
        "api_key": Setting("TALK_SQUARESPACE_API_KEY", "sqsp-sandbox-api-key", secret=True,
                           help="Commerce API key (Settings > Advanced > Developer API keys)"),
    },
)
