"""The gateway fixtures of tests/cloud_gateway (real gateway on loopback, SQLite store)."""

from tests.cloud_gateway.conftest import gateway, keys, settings  # noqa: F401
