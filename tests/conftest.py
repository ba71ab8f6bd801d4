"""Shared pytest configuration. Fixtures that need real parts live beside their tests
(tests/runtime/conftest.py, tests/compat/conftest.py, ...) or in runtime.testing."""
