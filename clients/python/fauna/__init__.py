"""Fauna's Python client (docs/PROTOCOL.md, docs/AUDIT.md)."""
