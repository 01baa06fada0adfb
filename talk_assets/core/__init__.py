"""Pieces shared by every system: settings from the environment and the one HTTP client layer."""
