"""pytest wiring for pytest-multiarch."""
