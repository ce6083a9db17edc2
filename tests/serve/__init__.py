"""Tests of `carvision serve` (a package, so that its conftest does not take the place of tests/conftest.py as
the `conftest` module that other test files import)."""
