"""What every API view shares: token authentication, scopes, throttling, problem details,
strict inputs, pagination and schema helpers, and the ``/api/v1/`` URL map.

Each domain keeps its own views in its ``api/`` package; they only authenticate, validate,
call a service or selector, and shape the answer.
"""
