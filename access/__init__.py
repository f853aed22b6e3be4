"""Access governance: who may touch which data and models, until when, and who said so.

The data catalog (datasets, their classification and PII categories), service accounts and their API
tokens, roles, time-bound grants mirrored into django-guardian, access requests, access reviews and the
access check. Access sits on the ledger (``audit``) and imports nothing of the domains above it:
governance makes its objects grantable through ``access.resources`` and follows the catalog through
``access.signals``.
"""
