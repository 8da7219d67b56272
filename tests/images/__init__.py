"""Behavioural tests of the example images under images/, run on every platform."""
