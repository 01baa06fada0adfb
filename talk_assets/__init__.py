"""talk-assets: a self-hosted two-way data sync between business systems, as a Dagster asset graph."""

__version__ = "0.1.0"
