"""The ledger event types the access domain writes (registered from ``AccessConfig.ready()``).

Users and roles (``auth.*``), datasets and their classification (``dataset.*``), lineage
(``lineage.linked``), grants, requests, reviews, service accounts, API tokens and denied
checks (``access.*``). The registry and its rules are the ledger's (``audit.event_types``).
"""
from __future__ import annotations

from audit.event_types import EventType, Field, registry

_r = registry.register
S = Field
OPT = Field(required=False)
_LIST = Field("list")
_MV = {"model": S(), "version": Field("int")}
_GRANT = {"grant_id": Field("int"), "principal": S(), "resource": S(), "permission": S()}
# Access events are about the resource: a dataset, a registered model or an environment.
_ACCESS_RESOURCE = "dataset | registered_model | environment"

# --- users and roles -----------------------------------------------------------------
_r(EventType("auth.role_added", "A user was given a role (group).", {"role": S(), "reason": OPT}, subject="user"))
_r(EventType("auth.role_removed", "A role (group) was taken from a user.", {"role": S(), "reason": OPT},
             subject="user"))

# --- access: datasets, classification, lineage ----------------------------------------------------------
# Principals are "user:<id>" or "group:<name>"; resources "dataset:<name>", "registered_model:<name>",
# "environment:<name>".
_r(EventType("dataset.created", "A dataset was registered.",
             {"dataset": S(), "owner": S(), "source_uri": S(), "description": OPT}, subject="dataset"))
_r(EventType("dataset.classified", "A dataset's own classification or PII categories changed.",
             {"dataset": S(), "level": S(), "previous_level": Field(nullable=True), "pii_categories": _LIST,
              "previous_pii_categories": _LIST, "reason": S(), "effective_level": S()}, subject="dataset"))
_r(EventType("dataset.field_classified", "A dataset field's classification or PII categories changed.",
             {"dataset": S(), "field": S(), "level": S(), "previous_level": Field(nullable=True),
              "pii_categories": _LIST, "previous_pii_categories": _LIST, "reason": S(), "effective_level": S()},
             subject="dataset"))
_r(EventType("lineage.linked", "A model version was linked to a dataset it was trained or evaluated on.",
             {**_MV, "dataset": S(), "role": S(), "source": S()}, subject="model_version"))

# --- access: principals, grants, requests, reviews -------------------------------------------------------
_r(EventType("access.service_account_created", "A service account (machine principal) was created.",
             {"name": S(), "owner": S(), "description": OPT}, subject="service_account"))
_r(EventType("access.grant_created", "Access was granted until a deadline.",
             {**_GRANT, "expires_at": S(), "justification": S(), "request_id": Field("int", nullable=True)},
             subject=_ACCESS_RESOURCE))
_r(EventType("access.grant_revoked", "A grant was revoked before it expired.", {**_GRANT, "reason": S()},
             subject=_ACCESS_RESOURCE))
_r(EventType("access.grant_expired", "A grant reached its expiry and was removed.", {**_GRANT, "expired_at": S()},
             subject=_ACCESS_RESOURCE))
_r(EventType("access.request_created", "Someone asked for access to a resource.",
             {"request_id": Field("int"), "principal": S(), "resource": S(), "permission": S(),
              "duration_days": Field("int"), "justification": S(), "needs_infosec": Field("bool")},
             subject=_ACCESS_RESOURCE))
_r(EventType("access.request_approved", "An access request was approved by its owner or by InfoSec.",
             {"request_id": Field("int"), "as_role": S(), "comment": S(), "final": Field("bool")},
             subject=_ACCESS_RESOURCE))
_r(EventType("access.request_rejected", "An access request was rejected.",
             {"request_id": Field("int"), "comment": S()}, subject=_ACCESS_RESOURCE))
_r(EventType("access.request_withdrawn", "The requester withdrew an access request.",
             {"request_id": Field("int"), "reason": OPT}, subject=_ACCESS_RESOURCE))
_r(EventType("access.check_denied", "An access check on a sensitive resource was denied.",
             {"principal": S(), "resource": S(), "permission": S(), "level": Field(nullable=True)},
             subject=f"{_ACCESS_RESOURCE} | ledger_entry"))
_r(EventType("access.review_started", "An access review campaign started.",
             {"campaign_id": Field("int"), "name": S(), "deadline": S(), "items": Field("int")},
             subject="access_review"))
_r(EventType("access.review_decided", "A reviewer certified or revoked a grant in a campaign.",
             {"campaign_id": Field("int"), "grant_id": Field("int"), "decision": S(), "comment": OPT},
             subject="access_review"))
_r(EventType("access.review_closed", "An access review campaign closed; uncertified grants were revoked.",
             {"campaign_id": Field("int"), "certified": Field("int"), "revoked": Field("int"),
              "auto_revoked": Field("int")}, subject="access_review"))

# --- privacy --------------------------------------------------------------------------------------------

# --- privacy --------------------------------------------------------------------------------------------
_r(EventType("auth.user_registered", "A person's account was created.",
             {"username": Field(pii=True), "email": Field(required=False, pii=True),
              "full_name": Field(required=False, pii=True)}, subject="user"))

# --- API tokens -------------------------------------------------------------------------------------------

# --- API tokens -------------------------------------------------------------------------------------------
_r(EventType("access.api_token_created", "An API token was issued to a service account (never kept itself).",
             {"service_account": S(), "token_id": Field("int"), "name": S(), "prefix": S(), "scopes": _LIST,
              "expires_at": S()}, subject="service_account"))
_r(EventType("access.api_token_revoked", "An API token was revoked.",
             {"service_account": S(), "token_id": Field("int"), "prefix": S(), "reason": S()},
             subject="service_account"))

# --- denied access checks, summarised per interval (access.services.checks, issue 8g) --------------------------------
# access.check_denied is written once per principal, resource and permission per ACCESS_DENIAL_INTERVAL; the
# repeats are counted, and this entry closes the interval with the count (principals are user:<id>/group:<name>).
_r(EventType("access.check_denials_summarised",
             "Denied access checks of one principal on one resource and permission during an interval, counted.",
             {"principal": S(), "resource": S(), "permission": S(), "count": Field("int"), "first_at": S(),
              "last_at": S()}, subject=f"{_ACCESS_RESOURCE} | ledger_entry"))

# --- closing accounts (access.accounts, issue 8f) ----------------------------------------------------------------
# The retention clock of a person's personal data starts at this entry (docs/retention.md); the account is named
# as user:<id> only, and the reason must not hold personal data.
_r(EventType("auth.account_closed", "A person's account was closed: it cannot sign in, and retention of its "
             "personal data starts now.", {"account": S(), "reason": S()}, subject="user"))

# --- single sign-on (access.services.sso, docs/identity.md) ---------------------------------------------------
# No personal data: accounts as user:<id>, the provider's claims amr/acr are method names, never identities.
_r(EventType("auth.step_up", "A signed-in person authenticated again at the identity provider (step-up).",
             {"amr": _LIST, "acr": S(), "mfa": Field("bool")}, subject="user"))
_r(EventType("auth.account_disabled", "An account was disabled: it cannot sign in until InfoSec enables it.",
             {"account": S(), "reason": S(), "last_seen_at": Field(nullable=True), "inactive_days": Field("int")},
             subject="user"))
_r(EventType("auth.account_enabled", "InfoSec enabled a disabled account again.",
             {"account": S(), "reason": S()}, subject="user"))
_r(EventType("auth.identity_linked", "An existing account was linked to a person at an identity provider "
             "(an operator moving local accounts to single sign-on).", {"account": S(), "issuer": S()},
             subject="user"))

# --- console sessions (access.services.sessions, issue 18) -------------------------------------------------------
# A session that ended without a sign-out: "idle" (CONSOLE_IDLE_TIMEOUT_SECONDS without a request) or "lifetime"
# (CONSOLE_SESSION_MAX_AGE_SECONDS after its sign-in). Times only: never the session's key (a credential), no address.
_r(EventType("auth.session_expired", "A person's console session ended without a sign-out: idle for too long, or "
             "at the end of its lifetime.",
             {"reason": S(), "signed_in_at": Field(nullable=True), "last_seen_at": Field(nullable=True),
              "method": Field(nullable=True)}, subject="user"))

# --- authentication events (access.services.authentication; docs/identity.md "Authentication events") ------------
# No password ever, no username of an unknown account (its subject is login:<keyed hash>, audit.pii.pseudonym),
# no address in a hashed body: `origin` is the client's address as personal data of the account (a commitment,
# revealable by InfoSec), `origin_hash` its keyed hash where there is no account to hold it.
_ORIGIN = Field(required=False, pii=True)
_ORIGIN_HASH = Field(required=False)
_r(EventType("auth.login_succeeded", "A person signed in (password or SSO).",
             {"method": S(), "amr": Field("list", required=False), "acr": OPT, "origin": _ORIGIN}, subject="user"))
_r(EventType("auth.login_failed", "A password sign-in failed (wrong password, unknown or inactive account). "
             "Attempts refused during a lockout are not recorded one by one (auth.locked_out).",
             {"channel": S(), "origin": _ORIGIN, "origin_hash": _ORIGIN_HASH}, subject="user | login"))
_r(EventType("auth.locked_out", "Too many failed password sign-ins: the username or the address is locked out "
             "until the time given; one entry per lockout.",
             {"channel": S(), "scope": _LIST, "until": S(), "origin": _ORIGIN, "origin_hash": _ORIGIN_HASH},
             subject="user | login"))
_r(EventType("auth.logged_out", "A person signed out.", {"origin": _ORIGIN}, subject="user"))
_r(EventType("auth.password_changed", "A local account's password was changed (by its owner in the console, "
             "or on the host with manage.py changepassword).", {"channel": S()}, subject="user"))
_r(EventType("auth.token_first_use_from_address", "An API token was used from an address it had never been used "
             "from (one entry per token and address).",
             {"service_account": S(), "token_id": Field("int"), "prefix": S(), "origin": _ORIGIN},
             subject="service_account"))
