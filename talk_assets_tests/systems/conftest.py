"""The system tests check each client's own pace: no suite-wide override of it applies here."""

from __future__ import annotations

import pytest

from talk_assets.config import SYSTEMS


@pytest.fixture(autouse=True)
def documented_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session sandbox fixture speeds every client up (TALK_<SYSTEM>_MAX_RPS); not for these tests."""
    for key in SYSTEMS:
        monkeypatch.delenv(f"TALK_{key.upper()}_MAX_RPS", raising=False)
