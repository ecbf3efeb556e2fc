"""Fake providers (small Flask apps run by ``tests.connectors.harness.serve``), one module per provider, and the
touch factories and settings checks the connector tests share (``touches``)."""
