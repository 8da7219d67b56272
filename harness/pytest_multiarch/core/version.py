"""The version of pytest-multiarch (the verification cache key names it)."""

__version__ = "0.1.0"
