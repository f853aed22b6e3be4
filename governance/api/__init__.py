"""What every API view shares: token authentication, scopes, throttling, errors, pagination.

Each domain keeps its own views (``audit/api.py``, ``governance/api/promotions.py``,
``access/api.py``); they only authenticate, validate, call a service or selector,
and shape the answer.
"""
