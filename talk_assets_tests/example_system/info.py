"""The example newsletter tool's identity and connection settings."""

from talk_assets.settings import Setting, SystemInfo

INFO = SystemInfo(
    key="newsletter",
    title="Example Newsletter",
    port_offset=5,
    url_env="TALK_NEWSLETTER_URL",
    settings={"api_key": Setting("TALK_NEWSLETTER_API_KEY", "newsletter-sandbox-key", secret=True,
                                 help="Bearer key of the newsletter tool")},
)
