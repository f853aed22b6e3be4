"""The services of the access domain: every state change, one module per thing it changes.

Each service is keyword-only, ``@transaction.atomic``, takes the acting person as ``actor`` and
the thing acted on by its own name, checks who may do it first and writes its ledger entry in the
same transaction; a refusal raises an ``access.errors`` error before anything is written.

* ``datasets``: the catalog (register, classify a dataset or a field); tells governance through
  ``access.signals``.
* ``grants``: time-bound grants (create, revoke, expire), mirrored into django-guardian.
* ``access_requests``: asking for access, and the owner's / InfoSec's decision on it.
* ``reviews``: access review campaigns (start, decide an item, close at the deadline).
* ``service_accounts``: machine principals.
* ``tokens``: API tokens of service accounts (issue, revoke, authenticate).
* ``roles``: role (group) changes and registering a user.
* ``accounts``: closing an account.
* ``inputs``: the input checks the services share.
"""
