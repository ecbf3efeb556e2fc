"""Connectors: one module per provider, a base class and a registry.

A connector gets plain data (a batch of touches) and returns results; it never touches
the database and imports nothing of ``abm``.
"""
