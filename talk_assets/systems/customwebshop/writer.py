"""This system is a custom API: see `talk_assets/systems/customapi/writer.py`."""

from talk_assets.systems.customapi.writer import CustomApiWriter as SystemWriter

__all__ = ["SystemWriter"]
