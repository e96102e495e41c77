"""TEMPORARY stand-ins for the client package's own modules (fauna/errors.py, fauna/client.py),
so that the verification modules can be written and tested before the two branches merge.
Delete this file at the merge; nothing else imports it once fauna/errors.py exists.
"""
from __future__ import annotations


class FaunaError(Exception):
    """Stand-in for fauna.errors.FaunaError."""


class VerificationError(FaunaError):
    """Stand-in for fauna.errors.VerificationError."""
