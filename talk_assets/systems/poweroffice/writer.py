"""Writing to PowerOffice GO: updates are JSON Patch `replace` ops (the client builds them from
nested changes, e.g. /MailAddress/City), guarded by the last collected LastChangedDateTimeOffset."""

from __future__ import annotations

from talk_assets.sync.writer import Writer


class SystemWriter(Writer):
    pass
