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
        "inventory_full_read_s": Setting(
            "TALK_SQUARESPACE_INVENTORY_FULL_READ_S", "900",
            help="seconds between reads of the whole inventory when no order or product change suggests a "
                 "stock change (its API has no change filter: a stock edit in Squarespace's own pages waits "
                 "this long)"),
    },
)
