"""The Custom CRM's identity and connection settings (a leaf module: the client and sandbox read it)."""

from talk_assets.settings import Setting, SystemInfo

INFO = SystemInfo(
    key="customcrm",
    title="Custom CRM",
    port_offset=3,
    url_env="TALK_CUSTOMCRM_URL",
    settings={
        "api_key": Setting("TALK_CUSTOMCRM_API_KEY", "crm-sandbox-api-key", secret=True,
                           help="Bearer key of your CRM's API"),
    },
)
