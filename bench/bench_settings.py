"""Settings for bench/ledger.py: the project's settings plus django-auditlog (the baseline).

DEBUG is switched off as in production, so Django does not wrap every cursor in
its query-logging debug wrapper (that would tax the many-query code paths).
The production guard rails in config.settings have already run with the
environment's DEBUG by the time this module changes it; the bench uses the dev
signing key on purpose.
"""
from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "auditlog"]
DEBUG = False
