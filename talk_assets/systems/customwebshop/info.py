"""The Custom Webshop's identity and connection settings (a leaf module: the client and sandbox read it)."""

from talk_assets.settings import Setting, SystemInfo

INFO = SystemInfo(
    key="customwebshop",
    title="Custom Webshop",
    port_offset=4,
    url_env="TALK_CUSTOMWEBSHOP_URL",
    settings={
        "api_key": Setting("TALK_CUSTOMWEBSHOP_API_KEY", "webshop-sandbox-api-key", secret=True,
                           help="Bearer key of your webshop's API"),
    },
)
