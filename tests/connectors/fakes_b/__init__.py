"""Fake providers for the ad and CRM connectors (part B), each a small Flask app."""
