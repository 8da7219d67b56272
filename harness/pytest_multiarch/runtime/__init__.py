"""The engine side of a run: builds, verification, containers, cleanup."""
