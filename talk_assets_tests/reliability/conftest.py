"""The reliability suite's switches (its module fixture `rel` is the suite's, in talk_assets_tests/conftest.py)."""

from __future__ import annotations

import os


def soak() -> bool:
    """`TALK_SOAK=1` runs the long variants (more rounds, more kills)."""
    return os.environ.get("TALK_SOAK", "").strip().lower() in ("1", "true", "yes")
