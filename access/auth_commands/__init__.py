"""An app that only replaces Django's ``changepassword`` command with one that goes through
``access.services.authentication.user_password_set_by_system`` (validated, recorded in the ledger).

It is listed before ``django.contrib.auth`` in ``INSTALLED_APPS`` because the first app with a command of a
given name wins; it has no models, templates or signals.
"""
