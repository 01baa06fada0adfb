"""PowerOffice GO's identity and connection settings (a leaf module: the client and sandbox read it)."""

from talk_assets.settings import Setting, SystemInfo

INFO = SystemInfo(
    key="poweroffice",
    title="PowerOffice GO",
    port_offset=1,
    url_env="TALK_POWEROFFICE_URL",
    settings={
        "app_key": Setting("TALK_POWEROFFICE_APP_KEY", "sandbox-application-key", secret=True,
                           help="Application key (from PowerOffice's partner program)"),
        "client_key": Setting("TALK_POWEROFFICE_CLIENT_KEY", "sandbox-client-key", secret=True,
                              help="Client key (the customer's integration key)"),
        "subscription_key": Setting("TALK_POWEROFFICE_SUBSCRIPTION_KEY", "sandbox-subscription-key",
                                    secret=True, help="Ocp-Apim-Subscription-Key"),
    },
)
