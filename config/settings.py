"""Project settings, all read from the environment through config.env.

With no configuration at all the project runs on SQLite under var/, runs Celery
tasks eagerly in-process and signs checkpoints with a generated dev key. With
DEBUG off it refuses to start on a dev secret or a dev signing key.
"""
from __future__ import annotations

import base64
import binascii
import re
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from audit.cosignature import Cosigner
from audit.note import NoteError
from audit.offline_verify import parse_trusted_key_line
from config.env import env_bool, env_float, env_int, env_json, env_list, env_pair, env_secret, env_str
from governance.policy_floor import DEFAULT_FLOOR, parse_floor

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)
TESTING = "pytest" in sys.modules or env_bool("TESTING", False)

DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env_secret("SECRET_KEY") or DEV_SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "web.apps.GovernanceAdminConfig",
    # Before django.contrib.auth so that its ``changepassword`` command (recorded in the ledger) replaces
    # Django's (the first app that has a command wins); it holds nothing else.
    "access.auth_commands",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "guardian",
    # django-axes: failed password sign-ins counted per username and per address, lockouts (docs/identity.md).
    "axes",
    "audit",
    "access",
    "governance",
    # Events out: notifications, signed webhooks, the SIEM stream (above the domains; README "Architecture").
    "integrations",
    "web",
]

MIDDLEWARE = [
    # First: /healthz and /readyz answer whatever the Host header (probes use 127.0.0.1, a pod IP...),
    # before host validation; nothing else does (web/probes.py, docs/security.md).
    "web.probes.ProbeMiddleware",
    "web.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Static files (console, admin, API docs) served by the app itself: compose's proxy only ends TLS
    # and forwards, and gunicorn alone serves none with DEBUG=0.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "web.idle_session.IdleSessionMiddleware",
    # Turns a refused (locked-out) password sign-in into the lockout page (web.console.login.lockout_response).
    "axes.middleware.AxesMiddleware",
    # How the session's person signed in (access.authn), for the services' multi-factor rule.
    "web.middleware.AuthenticationContextMiddleware",
    # The viewer's time zone (a console preference, kept in the session) for console pages; /api/ stays UTC.
    "web.preferences.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Styled 403/404 pages outside /api/ even with DEBUG on (never Django's URL-pattern listing).
    "web.console.chrome.ErrorPagesMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "web.logging.RequestLogMiddleware",
    "web.metrics.MetricsMiddleware",
    # Unsafe /api/ requests with an Idempotency-Key: replayed, or run with their response stored in the
    # same transaction (after authentication: keys are per principal).
    "web.api.idempotency.IdempotencyMiddleware",
    # Last, so its process_exception sees a view's exception first: dependency outages become 503
    # (unavailable, Retry-After) and a read on a dropped database connection is retried once.
    "web.outage.DependencyOutageMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.console.base.console",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = env_secret("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'governance.sqlite3'}"
try:
    # Persistent connections on PostgreSQL (60 s by default), checked at the start of each request
    # (CONN_HEALTH_CHECKS below): a connection the server dropped (pg_terminate_backend, a restarted
    # pooler) is replaced before the request uses it instead of failing it. SQLite opens a file: 0.
    _conn_max_age_default = 60 if DATABASE_URL.startswith(("postgres", "pgsql")) else 0
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", _conn_max_age_default,
                                                                   minimum=0),
                                conn_health_checks=True)
except (ValueError, KeyError) as exc:  # dj-database-url raises these on unknown schemes
    raise ImproperlyConfigured(f"DATABASE_URL is not a usable database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so two writers queue
    # on the busy timeout instead of failing with "database is locked" on upgrade.
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db.setdefault("TEST", {})["NAME"] = env_str("TEST_DATABASE_NAME") or "test_governance"
    # Server-side binding keeps a query's text the same whatever its values, so psycopg can prepare
    # it once per connection: PostgreSQL then skips planning (4 ms of the visibility-filtered
    # detail query's 5). Turn it off behind a transaction-mode pooler (PgBouncer < 1.21), which
    # cannot keep prepared statements.
    if env_bool("DB_PREPARED_STATEMENTS", True):
        _db["OPTIONS"] = {
            "server_side_binding": True,
            "prepare_threshold": env_int("DB_PREPARE_THRESHOLD", 5, minimum=0),
        }
else:
    raise ImproperlyConfigured(f"DATABASE_URL engine {_db['ENGINE']} is not supported (SQLite or PostgreSQL)")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a password sign-in while its username or its address is locked out (django-axes).
    "access.backends.LoginThrottleBackend",
    # Django's password backend, answering nothing while LOCAL_LOGIN is off (permissions still work).
    "access.backends.LocalPasswordBackend",
    # guardian's backend, but a dataset/model/environment permission holds only while an active grant backs it
    # (a lapsed grant stops at its expires_at even when the expiry task has not run).
    "access.backends.GrantBackedObjectPermissionBackend",
    # OpenID Connect sign-in: answers only the SSO callback (access.oidc); idle without OIDC_RP_CLIENT_ID.
    "access.oidc.OIDCBackend",
]
# --- Local password sign-in and its throttle (docs/identity.md "Local sign-in and lockout") -----------------
# The password form of the console and the admin. Off by default in production (DEBUG=0): people sign in
# through SSO (OIDC_RP_CLIENT_ID); LOCAL_LOGIN=1 keeps it for the demo and break-glass admin accounts.
# Production refuses to start with neither (nobody could sign in).
LOCAL_LOGIN = env_bool("LOCAL_LOGIN", DEBUG)
# Failed password sign-ins allowed per username and, separately, per client address within the lockout
# window; the next one locks that username (or address) out for LOGIN_LOCKOUT_MINUTES.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
# How many reverse proxies in front of the app append the client's address to X-Forwarded-For
# (compose: 1, Caddy). 0: the address is REMOTE_ADDR. Only set it when the app's port is reachable through
# those proxies alone: a client talking to the app directly could otherwise claim any address
# (access.client_address, used by the lockout and as the `origin` of authentication events).
CLIENT_IP_PROXY_COUNT = env_int("CLIENT_IP_PROXY_COUNT", 0, minimum=0)
AXES_ENABLED = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
# Two independent counters: one per username (whatever the address: a distributed guess at one account) and
# one per address (whatever the username: one host spraying many accounts). Either reaching the limit refuses.
AXES_LOCKOUT_PARAMETERS = [["username"], ["ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A refused attempt during a lockout does not extend it: the lockout ends LOGIN_LOCKOUT_MINUTES after the
# failure that caused it, which is what the lockout page promises (and an attacker cannot keep a victim's
# account locked with one request per window any more than with LOGIN_FAILURE_LIMIT of them).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "access.client_address.client_address"
# Only password attempts count (an SSO callback that fails is not a guessed password, and an office's shared
# address must not lose SSO because someone mistyped a password five times).
AXES_WHITELIST_CALLABLE = "access.backends.not_a_password_attempt"
AXES_LOCKOUT_CALLABLE = "web.console.login.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# axes' own tables: attempts are deleted once their window passes; no per-login access log (the ledger's
# auth.login_succeeded is the record) and no admin pages (the admin is read-only, web/admin_site.py).
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ACCESS_FAILURE_LOG = False
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
# Masked in what axes keeps of the POST (the password always is): usernames and addresses too.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address"]

# guardian looks for its own backend's dotted path; ours is a subclass of it (access/backends.py).
SILENCED_SYSTEM_CHECKS = ["guardian.W001"]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user object

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# WhiteNoise finds the files in the installed apps at start-up, so the image needs no collectstatic
# step (which would have to run with production settings, secrets and all, at build time).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
LOGIN_URL = "/console/login/"
LOGIN_REDIRECT_URL = "/console/"
LOGOUT_REDIRECT_URL = "/console/login/"

# --- Transport security, cookies, sessions, Content-Security-Policy (docs/deploy.md) --------------
# TLS ends at the proxy in front of gunicorn, which sets this header (e.g. "HTTP_X_FORWARDED_PROTO,https")
# on every request it forwards. Set it only when that proxy always overwrites the header and the app's port
# is reachable through it alone: a client talking to gunicorn directly could otherwise claim HTTPS.
SECURE_PROXY_SSL_HEADER = env_pair("SECURE_PROXY_SSL_HEADER")
if SECURE_PROXY_SSL_HEADER is not None and not re.fullmatch(r"HTTP_[A-Z0-9_]+", SECURE_PROXY_SSL_HEADER[0]):
    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must name a request header as Django sees it, e.g. HTTP_X_FORWARDED_PROTO,https"
    )
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes and scrapers inside the cluster talk plain HTTP to the pod, not through the TLS proxy.
# MLflow delivers its webhooks to web:8000 inside the compose network (docker/compose.yml): the delivery is
# authenticated by its HMAC signature and timestamp, not by the transport, so it is not redirected either.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$", r"^webhooks/mlflow$"]
# One year once in production. A browser that saw the header refuses plain HTTP to the host for that
# long, so a first deployment may start lower (e.g. 300) and raise it once HTTPS is known to work.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading is a commitment for the whole registrable domain (anyone may submit a host that sends the
# flag to the browsers' list), so it is the operator's explicit choice; off, Django's reminder is silenced.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS += [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

SESSION_COOKIE_HTTPONLY = True
# The console's pages send the CSRF token from the form field, never from script reading the cookie.
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Sessions are the console's (and the admin's): signed out after this long without a request (PCI DSS 8.2.8:
# 15 minutes), and this long after signing in however active (docs/identity.md "Sessions"). Requests push
# the last-seen clock forward (web.idle_session, at most once a minute rather than a write per page); the
# cookie itself also ends with the browser.
CONSOLE_IDLE_TIMEOUT_SECONDS = env_int("CONSOLE_IDLE_TIMEOUT_SECONDS", 15 * 60, minimum=60)
CONSOLE_SESSION_MAX_AGE_SECONDS = env_int("CONSOLE_SESSION_MAX_AGE_SECONDS", 12 * 3600, minimum=300)
if CONSOLE_SESSION_MAX_AGE_SECONDS < CONSOLE_IDLE_TIMEOUT_SECONDS:
    raise ImproperlyConfigured(
        f"CONSOLE_SESSION_MAX_AGE_SECONDS={CONSOLE_SESSION_MAX_AGE_SECONDS} is shorter than "
        f"CONSOLE_IDLE_TIMEOUT_SECONDS={CONSOLE_IDLE_TIMEOUT_SECONDS}: a session's lifetime includes its idle time")
# The timeouts are enforced by web.idle_session from the session's own clocks; the row is kept an hour
# longer so that the next request, or the sweep (access-sessions-expire), records how the session ended.
SESSION_TOMBSTONE_SECONDS = 3600
SESSION_COOKIE_AGE = CONSOLE_IDLE_TIMEOUT_SECONDS + SESSION_TOMBSTONE_SECONDS
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# --- Multi-factor rule (access.authn, docs/identity.md) ---------------------------------------------------
# Approvals, rejections, break-glass, policy changes, grants on restricted data, PII reveal and exports need
# a sign-in with a second factor no older than MFA_MAX_AGE_SECONDS. On by default once SSO is configured
# (OIDC_RP_CLIENT_ID): the local password login has no second factor, so it cannot do these actions then.
MFA_REQUIRED = env_bool("MFA_REQUIRED", bool(env_str("OIDC_RP_CLIENT_ID")))
MFA_MAX_AGE_SECONDS = env_int("MFA_MAX_AGE_SECONDS", 15 * 60, minimum=60)
# ID-token values that count as a second factor: any amr (RFC 8176) in OIDC_MFA_AMR, or acr in OIDC_MFA_ACR.
OIDC_MFA_AMR = env_list("OIDC_MFA_AMR", ["mfa", "otp", "hwk", "swk", "sms", "fpt", "face", "sc"])
OIDC_MFA_ACR = env_list("OIDC_MFA_ACR", [])

# --- Single sign-on through OpenID Connect (access.oidc, web.console.sso, docs/identity.md) -------------------
# SSO is on iff OIDC_RP_CLIENT_ID is set. The provider's endpoints are configured explicitly (no discovery at
# start-up: a slow or unreachable provider must not stop the console from starting; `manage.py oidc_discover
# <issuer>` prints these lines from the provider's /.well-known/openid-configuration).
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID") or ""
OIDC_RP_CLIENT_SECRET = env_secret("OIDC_RP_CLIENT_SECRET") or ""
OIDC_OP_ISSUER = (env_str("OIDC_OP_ISSUER") or "").strip()
OIDC_OP_AUTHORIZATION_ENDPOINT = (env_str("OIDC_OP_AUTHORIZATION_ENDPOINT") or "").strip()
OIDC_OP_TOKEN_ENDPOINT = (env_str("OIDC_OP_TOKEN_ENDPOINT") or "").strip()
# Optional: the profile (email, name) is read from it when set; identity, groups and MFA claims never are.
OIDC_OP_USER_ENDPOINT = (env_str("OIDC_OP_USER_ENDPOINT") or "").strip()
OIDC_OP_JWKS_ENDPOINT = (env_str("OIDC_OP_JWKS_ENDPOINT") or "").strip()
# Optional: the provider's end_session_endpoint; console logout then ends the provider's session too.
OIDC_OP_LOGOUT_ENDPOINT = (env_str("OIDC_OP_LOGOUT_ENDPOINT") or "").strip()
# Asymmetric signatures only: with HS256 the client secret would also be the ID token's signing key.
OIDC_RP_SIGN_ALGO = (env_str("OIDC_RP_SIGN_ALGO") or "RS256").strip()
if OIDC_RP_SIGN_ALGO not in ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512"):
    raise ImproperlyConfigured(f"OIDC_RP_SIGN_ALGO={OIDC_RP_SIGN_ALGO!r}: use RS256/384/512 or ES256/384/512")
OIDC_RP_SCOPES = (env_str("OIDC_RP_SCOPES") or "openid email profile").strip()
if "openid" not in OIDC_RP_SCOPES.split():
    raise ImproperlyConfigured("OIDC_RP_SCOPES must include openid")
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_USE_NONCE = True
OIDC_AUTHENTICATION_CALLBACK_URL = "console-sso-callback"
# The ID token is kept in the session by the callback itself (after login, which may flush the session).
OIDC_STORE_ID_TOKEN = False
OIDC_TIMEOUT = env_float("OIDC_TIMEOUT", 10.0, minimum=0.5)
OIDC_VERIFY_SSL = env_bool("OIDC_VERIFY_SSL", True)
# Tolerated clock difference with the provider when checking exp/iat/auth_time.
OIDC_CLOCK_SKEW_SECONDS = env_int("OIDC_CLOCK_SKEW_SECONDS", 60, minimum=0)
OIDC_PROVIDER_NAME = (env_str("OIDC_PROVIDER_NAME") or "single sign-on").strip()
OIDC_GROUPS_CLAIM = (env_str("OIDC_GROUPS_CLAIM") or "groups").strip()
# Step-up asks the provider for this acr (e.g. Okta's urn:okta:loa:2fa:any); empty: prompt=login and max_age=0 only.
OIDC_STEP_UP_ACR = (env_str("OIDC_STEP_UP_ACR") or "").strip()
# Accounts linked to the provider and not signed in for this many days are disabled (PCI DSS 8.2.6).
OIDC_INACTIVE_DAYS = env_int("OIDC_INACTIVE_DAYS", 90, minimum=1)


def _oidc_role_map() -> dict[str, str]:
    """OIDC_ROLE_MAP: IdP group → product role, as a JSON object or ``group=role,group=role``.

    Only the roles named here are managed by the provider (docs/identity.md); an unknown role stops start-up.
    """
    from access.roles import ROLES

    raw = (env_str("OIDC_ROLE_MAP") or "").strip()
    if not raw:
        return {}
    if raw.startswith("{"):
        parsed = env_json("OIDC_ROLE_MAP", {})
        if not isinstance(parsed, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in parsed.items()):
            raise ImproperlyConfigured('OIDC_ROLE_MAP must map group names to role names, e.g. {"ml-approvers": '
                                       '"approver"}')
        mapping = {k.strip(): v.strip() for k, v in parsed.items()}
    else:
        mapping = {}
        for item in raw.split(","):
            group, sep, role = item.strip().rpartition("=")
            if not sep or not group.strip() or not role.strip():
                raise ImproperlyConfigured(f"OIDC_ROLE_MAP: {item.strip()!r} is not group=role")
            mapping[group.strip()] = role.strip()
    unknown = sorted({r for r in mapping.values() if r not in ROLES})
    if unknown or not all(mapping):
        raise ImproperlyConfigured(f"OIDC_ROLE_MAP names unknown roles {', '.join(unknown) or '(empty group)'}; "
                                   f"roles are {', '.join(ROLES)}")
    return mapping


OIDC_ROLE_MAP = _oidc_role_map()


def _oidc_required() -> None:
    from urllib.parse import urlsplit

    names = ("OIDC_RP_CLIENT_SECRET", "OIDC_OP_ISSUER", "OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT",
             "OIDC_OP_JWKS_ENDPOINT")
    missing = [name for name in names if not globals()[name]]
    if missing:
        raise ImproperlyConfigured(f"OIDC_RP_CLIENT_ID is set (SSO on) but {', '.join(missing)} not: "
                                   "`manage.py oidc_discover <issuer>` prints them")
    for name in (*names[1:], "OIDC_OP_USER_ENDPOINT", "OIDC_OP_LOGOUT_ENDPOINT"):
        url = urlsplit(globals()[name])
        if globals()[name] and (url.scheme not in ("https", "http") or not url.hostname):
            raise ImproperlyConfigured(f"{name} is not an http(s) URL")
        # Tokens and keys travel over these: plain http only to the same host (a provider in a test or the demo).
        if globals()[name] and not DEBUG and url.scheme != "https" and url.hostname not in ("127.0.0.1",
                                                                                            "localhost", "::1"):
            raise ImproperlyConfigured(f"DEBUG is off: {name} must be an https URL")


if OIDC_RP_CLIENT_ID:
    _oidc_required()

# Same-origin everything, no inline script or style anywhere (the console's scripts and styles are static
# files); data: images for the Swagger UI's icons. The API docs page gets its init script as a separate
# file (SpectacularSwaggerSplitView) and needs no exception.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}

# --- API ----------------------------------------------------------------------
# One budget per API token (per user for console sessions); "<n>/<sec|min|hour|day>".
API_THROTTLE_RATE = env_str("API_THROTTLE_RATE") or "6000/min"
# The events batch is the largest body the API takes (1,000 events).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 5 * 1024 * 1024, minimum=64 * 1024)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "web.api.auth.TokenAuthentication",
        "web.api.auth.ConsoleSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["web.api.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["web.api.auth.TokenRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["web.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_PAGINATION_CLASS": "web.api.pagination.StandardPagination",
    "DEFAULT_SCHEMA_CLASS": "web.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "web.api.problems.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ML governance ledger API",
    "DESCRIPTION": "Ledger, promotions, access governance and runtime events. See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "PromotionStateEnum": "governance.models.PromotionRequest.State",
        "BreakGlassReviewStateEnum": "governance.models.BreakGlassReview.State",
        "ClassificationLevelEnum": "access.classification.LEVEL_CHOICES",
        "ReviewCampaignStateEnum": "access.models.ReviewCampaign.State",
        "OpenClosedFilterEnum": ["open", "closed"],
        "AccessRequestStateEnum": "access.models.AccessRequest.State",
    },
}
# Seconds a client is told to wait (Retry-After) when a dependency (cache, database, broker) is down
# (503 unavailable) or its Idempotency-Key is still in progress (409). docs/api.md, "Retrying".
RETRY_AFTER_SECONDS = env_int("RETRY_AFTER_SECONDS", 5, minimum=1)
# A change that commits queues its follow-up task after the commit (a deployment, a rollout's completion, a
# rollback, an export); a broker failing in between loses the task. The beat's sweep (web.follow_ups) runs every
# SWEEP_INTERVAL seconds and re-queues a follow-up outstanding for longer than GRACE_SECONDS since it was
# queued or last started an attempt. The grace must exceed what a live task can go without starting an attempt
# (a time limit of 90 s plus a retry countdown of at most 16 s), or a slow task gets a (harmless) twin.
FOLLOW_UP_SWEEP_INTERVAL = env_float("FOLLOW_UP_SWEEP_INTERVAL", 30.0, minimum=1)
FOLLOW_UP_GRACE_SECONDS = env_int("FOLLOW_UP_GRACE_SECONDS", 120, minimum=10)
# How long an Idempotency-Key's response is kept for replays; the beat task below deletes expired ones.
IDEMPOTENCY_KEY_TTL_HOURS = env_float("IDEMPOTENCY_KEY_TTL_HOURS", 24.0, minimum=1)
# The cache holds only the API throttle's and the webhook rate limit's counters (both fail open,
# within a local budget for the throttle, while it is down); sessions are in the database.
_cache_url = env_secret("CACHE_URL")
CACHE_SOCKET_TIMEOUT = env_float("CACHE_SOCKET_TIMEOUT", 1.0, minimum=0.05)
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url,
         # A Redis that hangs (rather than refusing) must cost a request this long, not a worker forever.
         "OPTIONS": {"socket_connect_timeout": CACHE_SOCKET_TIMEOUT, "socket_timeout": CACHE_SOCKET_TIMEOUT}}
        if _cache_url
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Celery -------------------------------------------------------------------
_broker = env_secret("CELERY_BROKER_URL") or None
# No broker configured: run tasks eagerly in-process (the embedded default); the
# in-memory transport only keeps Celery from reaching for a default AMQP host.
CELERY_BROKER_URL = _broker or "memory://"
CELERY_TASK_ALWAYS_EAGER = _broker is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 90, minimum=1)
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# No broker, so no celery beat: the serving process (runserver, gunicorn) runs CELERY_BEAT_SCHEDULE itself in a
# thread (web/embedded_scheduler.py). On by default without a broker; 0 turns it off (then nothing signs
# checkpoints or expires grants after start-up). Ignored with a broker: celery beat runs the schedule.
EMBEDDED_SCHEDULER = env_bool("EMBEDDED_SCHEDULER", CELERY_TASK_ALWAYS_EAGER) and CELERY_TASK_ALWAYS_EAGER

# --- Ledger -------------------------------------------------------------------
LEDGER_ORIGIN = env_str("LEDGER_ORIGIN") or "ledger.example.internal/governance"
DEV_SIGNING_KEY_PATH = VAR_DIR / "dev-ledger-signing-key.pem"
_signing_key = env_str("LEDGER_SIGNING_KEY")
LEDGER_SIGNING_KEY = Path(_signing_key) if _signing_key else DEV_SIGNING_KEY_PATH
LEDGER_SIGNING_KEY_IS_DEV = _signing_key is None or LEDGER_SIGNING_KEY.resolve() == DEV_SIGNING_KEY_PATH.resolve()
# Verifier keys (signed-note format) of earlier signing keys whose checkpoints
# verify_ledger must still accept, as trusted-key lines "VKEY[ from=N][ until=M]" (the
# tree sizes each may sign, docs/verifying.md). Trust comes from here, never from the database.
def _trusted_key_lines(lines: list[str], where: str) -> list[str]:
    out = []
    for n, line in enumerate(lines, 1):
        try:
            parsed = parse_trusted_key_line(line)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{where} line {n}: {exc}") from None
        if parsed is not None:
            out.append(" ".join(line.split()))
    return out


LEDGER_TRUSTED_KEYS = _trusted_key_lines(env_list("LEDGER_TRUSTED_KEYS", []), "LEDGER_TRUSTED_KEYS")
_trusted_file = env_str("LEDGER_TRUSTED_KEYS_FILE")
if _trusted_file:
    LEDGER_TRUSTED_KEYS += _trusted_key_lines(Path(_trusted_file).read_text().splitlines(), _trusted_file)
def _kek_setting(name: str) -> str | None:
    """A key-encryption key: the base64 of 32 random bytes, checked here so that a typo stops the
    process at start-up rather than at the first personal value (the message never shows the value)."""
    value = env_secret(name) or None
    if value is not None:
        try:
            size = len(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            size = -1
        if size != 32:
            raise ImproperlyConfigured(f"{name} must be the base64 of 32 random bytes")
    return value


# Key-encryption key wrapping each data subject's key for personal data kept out of the
# ledger body (docs/pii.md).
LEDGER_PII_KEK = _kek_setting("LEDGER_PII_KEK")
# The KEK being rotated away from (docs/pii.md "KEK rotation"): while set, keys still
# wrapped with it unwrap too, and `manage.py rotate_pii_kek` re-wraps them under LEDGER_PII_KEK.
LEDGER_PII_KEK_PREVIOUS = _kek_setting("LEDGER_PII_KEK_PREVIOUS")
# Seconds between signed checkpoints (only made when the tree has grown).
LEDGER_CHECKPOINT_INTERVAL = env_float("LEDGER_CHECKPOINT_INTERVAL", 10.0, minimum=0.5)
# Seconds between sequencer runs that integrate pending entries into the tree.
LEDGER_INTEGRATE_INTERVAL = env_float("LEDGER_INTEGRATE_INTERVAL", 1.0, minimum=0.1)
LEDGER_INTEGRATE_BATCH = env_int("LEDGER_INTEGRATE_BATCH", 5000, minimum=1)
# Integrate right after each committing transaction. The default with eager Celery,
# so the embedded setup needs no beat; with a broker the beat schedule does it.
LEDGER_INTEGRATE_ON_COMMIT = env_bool("LEDGER_INTEGRATE_ON_COMMIT", CELERY_TASK_ALWAYS_EAGER)

# --- Witnesses (c2sp.org/tlog-witness; docs/witness.md) ------------------------------------------
# Each witness cosigns a checkpoint only if it is consistent with every checkpoint it cosigned before.
# LEDGER_WITNESSES: entries separated by newlines or ";", each "URL VKEY" (the witness's cosigner verifier
# key, c2sp.org/tlog-cosignature; its name is the witness's name). Unset: no witnesses, nothing changes.
def _witnesses() -> list[dict[str, str]]:
    from urllib.parse import urlsplit

    value = env_str("LEDGER_WITNESSES") or ""
    witnesses: list[dict[str, str]] = []
    for raw in re.split(r"[;\n]", value):
        item = raw.strip()
        if not item:
            continue
        parts = item.split()
        if len(parts) != 2:
            raise ImproperlyConfigured(f"LEDGER_WITNESSES: {item!r} must be 'URL VKEY' (one space between)")
        url, vkey = parts
        split = urlsplit(url)
        if split.scheme not in ("http", "https") or not split.hostname or split.query or split.fragment:
            raise ImproperlyConfigured(f"LEDGER_WITNESSES: {url!r} is not an http(s) URL without query or fragment")
        witnesses.append({"name": vkey.split("+", 1)[0], "url": url.rstrip("/"), "verifier_key": vkey})
    return witnesses


def witness_settings_check(witnesses: list[dict[str, str]], quorum: int) -> None:
    """Refuse a malformed witness list or an impossible quorum (also called by tests that override them)."""
    names: set[str] = set()
    for witness in witnesses:
        try:
            cosigner = Cosigner.parse(witness["verifier_key"])
        except (NoteError, ValueError) as exc:
            raise ImproperlyConfigured(f"LEDGER_WITNESSES: bad witness verifier key: {exc}") from None
        if cosigner.name != witness["name"]:
            raise ImproperlyConfigured(f"LEDGER_WITNESSES: {witness['name']!r} is not its key's name")
        if cosigner.name in names:
            raise ImproperlyConfigured(f"LEDGER_WITNESSES: witness {cosigner.name!r} is listed twice")
        names.add(cosigner.name)
    if quorum > len(witnesses) or (witnesses and quorum < 1):
        raise ImproperlyConfigured(
            f"LEDGER_WITNESS_QUORUM={quorum} must be between 1 and the number of witnesses ({len(witnesses)})"
        )


LEDGER_WITNESSES = _witnesses()
# Cosignatures a checkpoint needs: all of one or two witnesses, else a majority.
_n_witnesses = len(LEDGER_WITNESSES)
LEDGER_WITNESS_QUORUM = env_int(
    "LEDGER_WITNESS_QUORUM", _n_witnesses if _n_witnesses <= 2 else _n_witnesses // 2 + 1, minimum=0
)
if LEDGER_WITNESSES or LEDGER_WITNESS_QUORUM:
    witness_settings_check(LEDGER_WITNESSES, LEDGER_WITNESS_QUORUM)
# Seconds a checkpoint may wait for its quorum before that is an integrity violation.
LEDGER_WITNESS_DEADLINE = env_float("LEDGER_WITNESS_DEADLINE", 60.0, minimum=1)
# Seconds one HTTP exchange with a witness may take (a slow witness never delays the others).
LEDGER_WITNESS_TIMEOUT = env_float("LEDGER_WITNESS_TIMEOUT", 10.0, minimum=0.1)
# Seconds between quorum checks (which also resubmit the latest checkpoint to witnesses behind it).
LEDGER_WITNESS_CHECK_INTERVAL = env_float("LEDGER_WITNESS_CHECK_INTERVAL", 30.0, minimum=1)

# --- MLflow -------------------------------------------------------------------
MLFLOW_TRACKING_URI = env_str("MLFLOW_TRACKING_URI") or f"sqlite:///{VAR_DIR / 'mlflow.db'}"
MLFLOW_REGISTRY_URI = env_str("MLFLOW_REGISTRY_URI") or MLFLOW_TRACKING_URI
DEV_MLFLOW_WEBHOOK_SECRET = "dev-mlflow-webhook-secret"  # noqa: S105
MLFLOW_WEBHOOK_SECRET = env_secret("MLFLOW_WEBHOOK_SECRET") or DEV_MLFLOW_WEBHOOK_SECRET
MLFLOW_WEBHOOK_TOLERANCE_SECONDS = env_int("MLFLOW_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=1)
MLFLOW_RECONCILE_INTERVAL = env_float("MLFLOW_RECONCILE_INTERVAL", 300.0, minimum=5)
MLFLOW_WEBHOOK_MAX_BYTES = env_int("MLFLOW_WEBHOOK_MAX_BYTES", 1048576, minimum=1024)
# The artifact digest (governance.artifact_digest): artifacts over these limits get no digest (the gate says why);
# a remote version whose artifact listing (names, sizes) is unchanged is re-downloaded after RECHECK_HOURS.
MLFLOW_DIGEST_MAX_BYTES = env_int("MLFLOW_DIGEST_MAX_BYTES", 1024**3, minimum=1)
# CI attestations (docs/attestations.md): the largest document accepted, and the Sigstore trusted_root.json
# bundles are verified against offline ("" → Sigstore bundles are stored but never verify).
ATTESTATION_MAX_BYTES = env_int("ATTESTATION_MAX_BYTES", 1024 * 1024, minimum=1024)
SIGSTORE_TRUSTED_ROOT = env_str("SIGSTORE_TRUSTED_ROOT", "") or ""
MLFLOW_DIGEST_MAX_FILES = env_int("MLFLOW_DIGEST_MAX_FILES", 20_000, minimum=1)
MLFLOW_DIGEST_RECHECK_HOURS = env_float("MLFLOW_DIGEST_RECHECK_HOURS", 24.0, minimum=0)
# Webhook deliveries per source address (REMOTE_ADDR) per fixed window, "<n>/<sec|min|hour|day>";
# over it the endpoint answers 429 with Retry-After (MLflow's delivery retries honour it).
MLFLOW_WEBHOOK_RATE = (env_str("MLFLOW_WEBHOOK_RATE") or "120/min").strip()
if not re.fullmatch(r"[1-9][0-9]{0,8}/(s|sec|second|m|min|minute|h|hour|d|day)", MLFLOW_WEBHOOK_RATE):
    raise ImproperlyConfigured(
        f"MLFLOW_WEBHOOK_RATE={MLFLOW_WEBHOOK_RATE!r} must be '<n>/<sec|min|hour|day>', e.g. '120/min'"
    )
# Refused deliveries are counted per reason and summarised into the ledger once per interval (seconds).
MLFLOW_WEBHOOK_REFUSAL_INTERVAL = env_int("MLFLOW_WEBHOOK_REFUSAL_INTERVAL", 3600, minimum=60)
# Accepted deliveries are the outbox of their follow-ups (governance.services.webhooks): the beat drains the
# pending ones every DRAIN_INTERVAL seconds; a failed follow-up is retried DRAIN_INTERVAL * 2^(attempts-1)
# seconds later, at most RETRY_MAX_SECONDS, until done.
MLFLOW_WEBHOOK_DRAIN_INTERVAL = env_float("MLFLOW_WEBHOOK_DRAIN_INTERVAL", 5.0, minimum=1)
MLFLOW_WEBHOOK_RETRY_MAX_SECONDS = env_int("MLFLOW_WEBHOOK_RETRY_MAX_SECONDS", 300, minimum=1)
# Approving and deploying a promotion re-read the version's evidence from MLflow first (MLflow sends no webhook
# for model-card or registered-model tag edits). Deliberately not an environment variable: off, approvals rest
# on evidence as old as the last sync. Only the test suite turns it off, for tests that have no registry.
MLFLOW_EVIDENCE_REFRESH = True

# --- Outbound webhooks (integrations.webhooks, docs/webhooks.md) ---------------------------------------
# Targets must be https:// (http:// only with WEBHOOK_ALLOW_HTTP, for a demo or tests) and must resolve, at
# subscription and at every delivery, to public addresses only: loopback, private, link-local, multicast and
# reserved ranges are refused (SSRF) unless WEBHOOK_ALLOW_PRIVATE_TARGETS is set (tests: 127.0.0.1).
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", False)
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
# One attempt's connect + read time limit; redirects are never followed.
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.5)
# The beat delivers every active subscription this often; a failed entry is retried after
# RETRY_BASE * 2^(failures-1) seconds (+/- 20% jitter), at most RETRY_MAX_SECONDS, until FAILING_AFTER_HOURS of
# failures in a row mark the subscription failing (paused; InfoSec resumes it, nothing is skipped).
WEBHOOK_DELIVER_INTERVAL = env_float("WEBHOOK_DELIVER_INTERVAL", 10.0, minimum=1)
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", 10.0, minimum=0)
WEBHOOK_RETRY_MAX_SECONDS = env_float("WEBHOOK_RETRY_MAX_SECONDS", 3600.0, minimum=0)
WEBHOOK_FAILING_AFTER_HOURS = env_float("WEBHOOK_FAILING_AFTER_HOURS", 24.0, minimum=0)
# The delivery log (an operational log, not the record: the ledger keeps the subscriptions' history) keeps this
# many days of attempts; a daily task deletes older ones.
WEBHOOK_LOG_DAYS = env_int("WEBHOOK_LOG_DAYS", 90, minimum=1)

# --- Access governance (access.tasks) ---------------------------------------------
# Lapsed grants leave guardian within a minute (check() denies them from expires_at on).
ACCESS_EXPIRE_INTERVAL = env_float("ACCESS_EXPIRE_INTERVAL", 30.0, minimum=1)

# --- Denied access checks (access.services.checks, issue 8g) ------------------------------------------
# One access.check_denied per principal, resource and permission per interval; the repeats are counted and
# summarised (access.check_denials_summarised) when it closes: by this beat task, or lazily by the next denial.
ACCESS_DENIAL_INTERVAL = env_float("ACCESS_DENIAL_INTERVAL", 3600.0, minimum=1)

# --- Reading the ledger is recorded (audit.services.ledger_access, PCI DSS v4 10.2.1.3) ---------------------------
# ledger.accessed: one entry per read; the further pages of the same filter (and every proof a principal asks for)
# within this many seconds are covered by the entry of the first (docs/ledger.md, "Reading the ledger is recorded").
LEDGER_ACCESS_WINDOW_SECONDS = env_int("LEDGER_ACCESS_WINDOW_SECONDS", 300, minimum=1)

# --- SIEM stream (integrations.siem, docs/siem.md) ------------------------------------------------------
# Each sink is its own stream (integrations.streams): every ledger entry as OCSF, in seq order, at least once.
# syslog: RFC 5424 over TLS (tls://host:6514), octet-counted; the CA that signs the daemon's certificate is
# required (the server name is checked: SIEM_SYSLOG_SERVER_NAME overrides the URL's host); a client certificate
# is optional. A new connection first re-sends the last SIEM_SYSLOG_RESEND delivered entries (what a daemon that
# died may have lost: duplicates a receiver drops by seq/entry_hash).
SIEM_SYSLOG_URL = env_str("SIEM_SYSLOG_URL") or ""
SIEM_SYSLOG_CA_FILE = env_str("SIEM_SYSLOG_CA_FILE") or ""
if SIEM_SYSLOG_URL and not re.fullmatch(r"tls://[^/:\s]+:[0-9]{1,5}/?", SIEM_SYSLOG_URL):
    raise ImproperlyConfigured(f"SIEM_SYSLOG_URL must look like tls://host:6514 (TLS only), not {SIEM_SYSLOG_URL!r}")
if SIEM_SYSLOG_URL and not SIEM_SYSLOG_CA_FILE:
    raise ImproperlyConfigured("SIEM_SYSLOG_URL needs SIEM_SYSLOG_CA_FILE (the CA of the syslog daemon's certificate)")
SIEM_SYSLOG_SERVER_NAME = env_str("SIEM_SYSLOG_SERVER_NAME") or ""
SIEM_SYSLOG_CERT_FILE = env_str("SIEM_SYSLOG_CERT_FILE") or None
SIEM_SYSLOG_KEY_FILE = env_str("SIEM_SYSLOG_KEY_FILE") or None
SIEM_SYSLOG_HOSTNAME = env_str("SIEM_SYSLOG_HOSTNAME") or "governance-ledger"
SIEM_SYSLOG_APP_NAME = env_str("SIEM_SYSLOG_APP_NAME") or "governance-ledger"
SIEM_SYSLOG_BATCH = env_int("SIEM_SYSLOG_BATCH", 1000, minimum=1)
SIEM_SYSLOG_RESEND = env_int("SIEM_SYSLOG_RESEND", 1000, minimum=0)
# Splunk HTTP Event Collector: https only (the token is a bearer secret; SIEM_HEC_TOKEN_FILE works too).
SIEM_HEC_URL = env_str("SIEM_HEC_URL") or ""
SIEM_HEC_TOKEN = env_secret("SIEM_HEC_TOKEN") or ""
SIEM_HEC_CA_FILE = env_str("SIEM_HEC_CA_FILE") or None
SIEM_HEC_SOURCETYPE = env_str("SIEM_HEC_SOURCETYPE") or "ocsf"
SIEM_HEC_INDEX = env_str("SIEM_HEC_INDEX") or None
SIEM_HEC_BATCH = env_int("SIEM_HEC_BATCH", 500, minimum=1)
if SIEM_HEC_URL and not re.fullmatch(r"https://[^/\s]+(/\S*)?", SIEM_HEC_URL):
    raise ImproperlyConfigured(f"SIEM_HEC_URL must be an https:// URL (the token is a secret), not {SIEM_HEC_URL!r}")
if SIEM_HEC_URL and not SIEM_HEC_TOKEN:
    raise ImproperlyConfigured("SIEM_HEC_URL needs SIEM_HEC_TOKEN (or SIEM_HEC_TOKEN_FILE)")
SIEM_TIMEOUT = env_float("SIEM_TIMEOUT", 10.0, minimum=0.1)
SIEM_INTERVAL = env_float("SIEM_INTERVAL", 5.0, minimum=1)

# --- Operations (docs/deploy.md) -------------------------------------------------------------
# /status reports the sequencer "lagging" when the oldest pending ledger entry has waited longer than this
# (not readiness: a stopped worker must not take the web tier down; the alert is docker/prometheus/alerts.yml).
READY_MAX_PENDING_AGE_SECONDS = env_float("READY_MAX_PENDING_AGE_SECONDS", 60.0, minimum=1)
# Seconds /status waits for a TCP connection to the broker (and /metrics for the queue depth).
READY_BROKER_TIMEOUT = env_float("READY_BROKER_TIMEOUT", 1.0, minimum=0.05)
# Seconds /readyz waits for the cache's set and get (socket timeouts of the probe's own connection pool).
READY_CACHE_TIMEOUT = env_float("READY_CACHE_TIMEOUT", 0.5, minimum=0.05)
# Bearer token a Prometheus scraper presents at /metrics (InfoSec sessions are also let in).
METRICS_TOKEN = env_secret("METRICS_TOKEN") or None
if METRICS_TOKEN is not None and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters")
# OpenTelemetry tracing (web.otel): off unless asked for, by OTEL_ENABLED or the standard OTLP endpoint variables;
# then the otel extra must be installed (ImproperlyConfigured at start-up otherwise).
OTEL_ENABLED = env_bool(
    "OTEL_ENABLED",
    bool(env_str("OTEL_EXPORTER_OTLP_ENDPOINT") or env_str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
)
# A Celery worker serves its own counters on this port when set (the web app cannot see them).
CELERY_METRICS_PORT = env_int("CELERY_METRICS_PORT", 0, minimum=0) or None
CELERY_METRICS_ADDR = env_str("CELERY_METRICS_ADDR") or "0.0.0.0"  # noqa: S104 (inside the worker's container)
# Scheduled integrity checks and retention (UTC).
VERIFY_INCREMENTAL_INTERVAL = env_float("VERIFY_INCREMENTAL_INTERVAL", 300.0, minimum=10)
VERIFY_FULL_HOUR = env_int("VERIFY_FULL_HOUR", 2, minimum=0)
RETENTION_HOUR = env_int("RETENTION_HOUR", 3, minimum=0)
if VERIFY_FULL_HOUR > 23 or RETENTION_HOUR > 23:
    raise ImproperlyConfigured("VERIFY_FULL_HOUR and RETENTION_HOUR are hours of the day (0-23, UTC)")
LOG_FORMAT = (env_str("LOG_FORMAT") or ("plain" if DEBUG else "json")).strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be 'plain' or 'json'")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Celery's per-second lines about the sequencer and other frequent beat tasks go to DEBUG.
        "periodic": {"()": "web.logging.PeriodicTaskNoiseFilter"},
        "context": {"()": "web.logging.ContextFilter"},
        "redact": {"()": "web.logging.RedactingFilter"},
    },
    "formatters": {
        "plain": {"()": "web.logging.PlainFormatter"},
        "json": {"()": "web.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT,
                    "filters": ["periodic", "context", "redact"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL") or "INFO"},
    # axes logs every sign-in at INFO (masked); its warnings (failures, lockouts) are enough next to the ledger.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

# --- Notifications to people: e-mail and chat (integrations.notifications, docs/notifications.md) ----------
# Django's e-mail framework. Without EMAIL_HOST the demo writes each message as a file under var/mail/ (so
# the demo shows them); the tests use the in-memory backend (pytest-django), or smtp against aiosmtpd.
EMAIL_HOST = env_str("EMAIL_HOST") or ""
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", bool(EMAIL_HOST))
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS (STARTTLS) and EMAIL_USE_SSL (implicit TLS) exclude each other")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
EMAIL_BACKEND = env_str("EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "governance@localhost"
EMAIL_SUBJECT_PREFIX = "[governance] "
# The console's address as people reach it: every notification links there (absolute URLs).
CONSOLE_BASE_URL = (env_str("CONSOLE_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
if not CONSOLE_BASE_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured("CONSOLE_BASE_URL must be an http(s) URL such as https://governance.example.com")
# Notifications of the "immediately" digest wait this long so that a burst becomes one message.
NOTIFY_COALESCE_SECONDS = env_int("NOTIFY_COALESCE_SECONDS", 60, minimum=0)
# The daily digest leaves at this UTC hour.
NOTIFY_DAILY_HOUR = env_int("NOTIFY_DAILY_HOUR", 7, minimum=0)
if NOTIFY_DAILY_HOUR > 23:
    raise ImproperlyConfigured("NOTIFY_DAILY_HOUR is an hour of the day, 0 to 23")
# At most this many notifications are listed in one message (the rest are counted, with a link to the inbox).
NOTIFY_MAX_ITEMS = env_int("NOTIFY_MAX_ITEMS", 20, minimum=1)
# A failed send is tried again after 1, 2, 4, … minutes, at most this many seconds apart.
NOTIFY_RETRY_MAX_SECONDS = env_int("NOTIFY_RETRY_MAX_SECONDS", 3600, minimum=1)
# Chat webhook URLs must be https to a public address; tests (and a lab) may allow private ones.
NOTIFY_CHAT_ALLOW_PRIVATE = env_bool("NOTIFY_CHAT_ALLOW_PRIVATE", False)
NOTIFY_CHAT_TIMEOUT = env_float("NOTIFY_CHAT_TIMEOUT", 10.0, minimum=0.1)

# --- Production guard rails -----------------------------------------------------
def production_guard(*, secret_key: str, pii_kek: str | None, webhook_secret: str, signing_key_is_dev: bool) -> None:
    """With DEBUG off, refuse to start on a dev or short secret, no PII key or the dev signing key."""
    if secret_key == DEV_SECRET_KEY or len(secret_key) < 32:
        raise ImproperlyConfigured("DEBUG is off: set SECRET_KEY to a random value of at least 32 characters")
    if pii_kek is None:
        raise ImproperlyConfigured("DEBUG is off: set LEDGER_PII_KEK to the base64 of 32 random bytes")
    if webhook_secret == DEV_MLFLOW_WEBHOOK_SECRET:
        raise ImproperlyConfigured("DEBUG is off: set MLFLOW_WEBHOOK_SECRET to the secret of the MLflow webhook")
    if signing_key_is_dev:
        raise ImproperlyConfigured(
            "DEBUG is off: set LEDGER_SIGNING_KEY to the path of a real Ed25519 private key (not the dev key)"
        )


def sign_in_guard(*, local_login: bool, oidc_client_id: str | None) -> None:
    """With DEBUG off, refuse to start when neither SSO nor the local password login is configured."""
    if not local_login and not oidc_client_id:
        raise ImproperlyConfigured(
            "DEBUG is off and nobody could sign in: configure SSO (OIDC_RP_CLIENT_ID and the other OIDC_* "
            "settings, docs/identity.md) or allow the local password login with LOCAL_LOGIN=1"
        )


if not DEBUG:
    production_guard(secret_key=SECRET_KEY, pii_kek=LEDGER_PII_KEK, webhook_secret=MLFLOW_WEBHOOK_SECRET,
                     signing_key_is_dev=LEDGER_SIGNING_KEY_IS_DEV)
    # No SSO and no password form: the process would serve a console nobody can sign in to.
    sign_in_guard(local_login=LOCAL_LOGIN, oidc_client_id=env_str("OIDC_RP_CLIENT_ID"))

# --- two-person control over the rules: the policy floor ---------------------------------------
# The weakest promotion policy accepted per environment (docs/promotions.md). JSON, e.g.
# {"production": {"min_approvals": 2, "min_soak_hours": 24, "required_gates": ["data_classification"]}};
# unset means the default below (production as installed). "{}" disables every floor, which only an
# operator can do: the product itself never lowers it. A malformed floor stops start-up.
def _policy_floor() -> dict[str, object]:
    try:
        return dict(parse_floor(env_json("POLICY_FLOOR", DEFAULT_FLOOR)))
    except ValueError as exc:
        raise ImproperlyConfigured(f"POLICY_FLOOR: {exc}") from None


POLICY_FLOOR = _policy_floor()

# Break-glass budget (issue #13, item 9g): beyond it break-glass is refused and InfoSec alerted.
# Counted over a rolling window, per person (their service accounts count as them) and per environment.
BREAK_GLASS_MAX_PER_PERSON = env_int("BREAK_GLASS_MAX_PER_PERSON", 3, minimum=1)
BREAK_GLASS_MAX_PER_ENVIRONMENT = env_int("BREAK_GLASS_MAX_PER_ENVIRONMENT", 5, minimum=1)
BREAK_GLASS_WINDOW_DAYS = env_int("BREAK_GLASS_WINDOW_DAYS", 30, minimum=1)

# Two-person control (governance.services.change_requests): a proposal left pending this many days expires (beat
# task below; an approval of an expired one is refused even before the task has marked it).
CHANGE_REQUEST_EXPIRY_DAYS = env_int("CHANGE_REQUEST_EXPIRY_DAYS", 7, minimum=1)

# --- Celery beat: every periodic task, in one place ------------------------------------------
# The intervals are the settings above. The witnesses' quorum check runs only when there are witnesses.
_witness_quorum_check = (
    {
        "ledger-witness-quorum": {
            "task": "audit.tasks.witness_quorum_check",
            "schedule": timedelta(seconds=LEDGER_WITNESS_CHECK_INTERVAL),
            "options": {"expires": LEDGER_WITNESS_CHECK_INTERVAL},
        },
    }
    if LEDGER_WITNESSES
    else {}
)
CELERY_BEAT_SCHEDULE = {
    # Notifications to people (integrations.tasks): the ledger into each person's queue, the due digests out,
    # and the daily scan of grants that expire within 7 days.
    "notifications-collect": {
        "task": "integrations.tasks.collect_notifications",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 30},
    },
    "notifications-send": {
        "task": "integrations.tasks.send_notifications",
        "schedule": timedelta(seconds=60),
        "options": {"expires": 60},
    },
    "notifications-grants-expiring": {
        "task": "integrations.tasks.scan_expiring_grants",
        "schedule": crontab(minute=15, hour=NOTIFY_DAILY_HOUR),
        "options": {"expires": 3600},
    },
    # The ledger (audit.tasks): the sequencer, signed checkpoints, witnesses.
    "ledger-integrate": {
        "task": "audit.tasks.integrate_pending",
        "schedule": timedelta(seconds=LEDGER_INTEGRATE_INTERVAL),
        "options": {"expires": LEDGER_INTEGRATE_INTERVAL * 5},
    },
    "ledger-checkpoint": {
        "task": "audit.tasks.make_checkpoint",
        "schedule": timedelta(seconds=LEDGER_CHECKPOINT_INTERVAL),
        "options": {"expires": LEDGER_CHECKPOINT_INTERVAL * 3},
    },
    **_witness_quorum_check,
    # Promotions and the MLflow registry (governance.tasks).
    "mlflow-reconcile": {
        "task": "governance.tasks.reconcile_registry",
        "schedule": timedelta(seconds=MLFLOW_RECONCILE_INTERVAL),
        "options": {"expires": MLFLOW_RECONCILE_INTERVAL},
    },
    "promotions-expire": {"task": "governance.tasks.expire_promotions", "schedule": timedelta(minutes=10)},
    "break-glass-overdue": {
        "task": "governance.tasks.flag_overdue_reviews",
        "schedule": timedelta(minutes=5),
    },
    # Accepted webhook deliveries whose follow-up is pending (never queued: broker down; failed; lost).
    "mlflow-webhook-outbox-drain": {
        "task": "governance.tasks.drain_webhook_deliveries",
        "schedule": timedelta(seconds=MLFLOW_WEBHOOK_DRAIN_INTERVAL),
        "options": {"expires": MLFLOW_WEBHOOK_DRAIN_INTERVAL},
    },
    # Closed intervals of refused webhook deliveries become one ledger entry per reason.
    "mlflow-webhook-refusals-summarise": {
        "task": "governance.tasks.summarise_webhook_refusals",
        "schedule": timedelta(seconds=min(300, MLFLOW_WEBHOOK_REFUSAL_INTERVAL)),
        "options": {"expires": min(300, MLFLOW_WEBHOOK_REFUSAL_INTERVAL)},
    },
    # Outbound webhooks (integrations.tasks): every active subscription's stream, in seq order.
    "webhooks-deliver": {
        "task": "integrations.tasks.deliver_webhooks",
        "schedule": timedelta(seconds=WEBHOOK_DELIVER_INTERVAL),
        "options": {"expires": WEBHOOK_DELIVER_INTERVAL * 3},
    },
    "webhooks-log-prune": {"task": "integrations.tasks.prune_webhook_log", "schedule": timedelta(hours=24),
                           "options": {"expires": 3600}},
    # The SIEM stream (integrations.tasks): each configured sink, a few batches per run.
    "siem-deliver": {
        "task": "integrations.tasks.siem_deliver",
        "schedule": timedelta(seconds=SIEM_INTERVAL),
        "options": {"expires": SIEM_INTERVAL},
    },
    # Access governance (access.tasks).
    "access-grants-expire": {
        "task": "access.tasks.expire_grants",
        "schedule": timedelta(seconds=ACCESS_EXPIRE_INTERVAL),
        "options": {"expires": ACCESS_EXPIRE_INTERVAL},
    },
    "access-reviews-close": {"task": "access.tasks.close_due_reviews", "schedule": timedelta(minutes=5)},
    # Accounts linked to the identity provider and unused for OIDC_INACTIVE_DAYS are disabled (PCI DSS 8.2.6).
    "access-inactive-accounts-disable": {
        "task": "access.tasks.disable_inactive_accounts",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3600},
    },
    # Console sessions past their idle timeout or lifetime: recorded (auth.session_expired) and deleted.
    "access-sessions-expire": {
        "task": "access.tasks.expire_sessions",
        "schedule": timedelta(seconds=60),
        "options": {"expires": 60},
    },
    # Safety net: re-link lineage and re-check classifications of every version.
    "access-lineage-reconcile": {"task": "access.tasks.lineage_reconcile", "schedule": timedelta(hours=1)},
    # Denied access checks whose interval closed are summarised (or lazily, by the next denial).
    "access-denials-summarise": {
        "task": "access.tasks.summarise_denials",
        "schedule": timedelta(seconds=min(ACCESS_DENIAL_INTERVAL, 300.0)),
        "options": {"expires": min(ACCESS_DENIAL_INTERVAL, 300.0)},
    },
    # Scheduled integrity checks and retention (UTC; audit.tasks).
    "ledger-verify-incremental": {
        "task": "audit.tasks.verify_incremental",
        "schedule": timedelta(seconds=VERIFY_INCREMENTAL_INTERVAL),
        "options": {"expires": VERIFY_INCREMENTAL_INTERVAL},
    },
    "ledger-verify-full": {
        "task": "audit.tasks.verify_full",
        "schedule": crontab(minute=0, hour=VERIFY_FULL_HOUR),
        "options": {"expires": 3600},
    },
    "retention-run": {
        "task": "audit.tasks.run_retention",
        "schedule": crontab(minute=30, hour=RETENTION_HOUR),
        "options": {"expires": 3600},
    },
    # Follow-up tasks lost between a commit and their publish (broker down) are queued again (web.tasks).
    "follow-ups-requeue-stalled": {
        "task": "web.tasks.requeue_stalled_follow_ups",
        "schedule": timedelta(seconds=FOLLOW_UP_SWEEP_INTERVAL),
        "options": {"expires": FOLLOW_UP_SWEEP_INTERVAL},
    },
    # Expired Idempotency-Key responses are deleted (web.tasks).
    "web-idempotency-keys-purge": {
        "task": "web.tasks.purge_idempotency_keys",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3600},
    },
    # Two-person control: pending proposals expire.
    "governance-change-requests-expire": {
        "task": "governance.tasks.expire_change_requests",
        "schedule": timedelta(minutes=10),
        "options": {"expires": 600},
    },
}
