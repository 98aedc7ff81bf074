"""Fixtures shared by every test: real SMTP servers and real databases."""

pytest_plugins = ["tests.support.smtp", "tests.support.database"]
