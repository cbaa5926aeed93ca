"""Fixtures and helpers shared by the system tests (tests/system/test_*.py)."""
