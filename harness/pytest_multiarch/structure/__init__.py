"""container-structure-test files (schemaVersion 2.0.0) checked on every platform.

``config`` reads and validates a file into typed checks, ``re2`` translates the format's Go RE2
regular expressions to Python's ``re``, ``checks`` evaluates one check against one image variant
through an abstract ``ImageAccess``. ``access`` implements ``ImageAccess`` on the engine, and
``items`` turns each file into pytest items, one per (check, platform).
"""
