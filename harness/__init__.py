"""pytest-multiarch: build container images per platform and test each architecture."""

from harness.platforms import Platform

__all__ = ["Platform"]
__version__ = "0.1.0"
