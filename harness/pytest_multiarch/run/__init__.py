"""The pytest side of a run: its options, its typed model, and the reports made from it."""
