"""The project: settings, URL map, Celery app, WSGI/ASGI entry points.

Nothing in the domains (``audit``, ``access``, ``governance``) or in ``web`` imports this
package; it is the top of the dependency graph (see docs/architecture.md).
"""
from __future__ import annotations

# Imported here so that ``celery -A config`` and Django's start-up both load the one Celery app.
from config.celery import app as celery_app

__all__ = ["celery_app"]
