"""Delivery plumbing shared by every domain's API, console and admin.

API authentication, scopes and throttling, problem details, strict inputs, pagination and
schema helpers (``web.api``); the console's base view and context (``web.console``); the
admin site and its read-only base (``web.admin_site``); request-id, idle-session, logging and
metrics middleware; the health endpoints. It may import the domains; the domains never
import it.
"""
