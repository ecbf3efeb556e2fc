"""Fake providers (small Flask apps run by ``tests.connectors.harness.serve``) and touch factories."""
