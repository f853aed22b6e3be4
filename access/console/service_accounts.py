"""Console pages of service accounts and their API tokens (``/console/access/service-accounts/``).

The console face of ``access/api_tokens.py``, with the same rules: an account is visible to its
owner, InfoSec and auditors (anyone else gets a 404); ``access.services.service_accounts.service_account_create``
decides who may create one and ``access.services.tokens`` who may issue and revoke tokens (the account's
owner or InfoSec). A refusal is an error message and nothing is written.

A token's plaintext exists in one place only: the page rendered in answer to the POST that issued
it. It is not redirected to, and not put in the session, the messages, a URL or a log; the
response says ``Cache-Control: no-store`` so neither the browser nor a proxy keeps a copy. Pages
show a token's public prefix, never its secret nor its digest.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_POST

from access import roles, selectors
from access.models import ApiToken, ServiceAccount
from access.services import tokens
from access.services.service_accounts import may_create_service_account, service_account_create
from web.console.base import redirect_back, run_action, signed_in_user, viewer_roles
from web.console.tables import Column, TableSpec, csv_response, table, username_of, wants_csv

ACCOUNTS_TABLE = TableSpec(
    name="service-accounts",
    columns=(
        Column("name", "Name", ("name",), lambda a: a.name),
        Column("disabled", "Disabled", ("disabled_at",), lambda a: a.disabled_at),
        Column("owner", "Owner", ("owner__username",), lambda a: username_of(a.owner)),
        Column("description", "Description", ("description",), lambda a: a.description),
        Column("tokens", "Active tokens", ("active_tokens",), lambda a: a.active_tokens, desc_first=True),
        Column("last_used", "Last used", ("last_used_at",), lambda a: a.last_used_at, desc_first=True),
        Column("created", "Created", ("created_at",), lambda a: a.created_at, desc_first=True),
    ),
    default_sort="name",
)
# The token's public prefix only: its secret and digest are never shown, nor exported.
TOKENS_TABLE = TableSpec(
    name="tokens",
    columns=(
        Column("name", "Name", ("name",), lambda r: r["token"].name),
        Column("prefix", "Prefix", ("prefix",), lambda r: f"mlg_{r['token'].prefix}_"),
        Column("scopes", "Scopes", value=lambda r: " ".join(r["token"].scopes)),
        Column("created", "Created", ("created_at",), lambda r: r["token"].created_at, desc_first=True),
        Column("created_by", "Created by", value=lambda r: username_of(r["token"].created_by)),
        Column("expires", "Expires", ("expires_at",), lambda r: r["token"].expires_at),
        Column("last_used", "Last used", ("last_used_at",), lambda r: r["token"].last_used_at, desc_first=True),
        Column("status", "Status", value=lambda r: r["status"]),
        Column("revoked", "Revoked", value=lambda r: r["token"].revoked_at),
        Column("revoked_by", "Revoked by", value=lambda r: username_of(r["token"].revoked_by)),
        Column("revoke_reason", "Revoke reason", value=lambda r: r["token"].revoke_reason),
    ),
    default_sort="-created",
)


def _visible_account(user: User, name: str) -> ServiceAccount:
    return get_object_or_404(selectors.service_accounts_visible_to(user).select_related("owner", "user"), name=name)


def _may_manage(user: User, account: ServiceAccount) -> bool:
    """Whether to offer the issue and revoke forms (a hint: ``access.services.tokens`` decides)."""
    return user.is_active and (account.owner_id == user.pk or roles.INFOSEC in viewer_roles(user))


def token_status(token: ApiToken, now: Any) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "active" if token.expires_at > now else "expired"


def _detail_url(account: ServiceAccount | str) -> str:
    return reverse("console-service-account", args=[account if isinstance(account, str) else account.name])


# --- pages ----------------------------------------------------------------------------------------------


@require_GET
@login_required
def service_accounts_list(request: HttpRequest) -> HttpResponseBase:
    user = signed_in_user(request)
    now = timezone.now()
    rows = (
        selectors.service_accounts_visible_to(user)
        .select_related("owner")
        # One query for the page whatever the number of accounts and tokens.
        .annotate(
            active_tokens=Count("tokens", filter=Q(tokens__revoked_at__isnull=True, tokens__expires_at__gt=now)),
            last_used_at=Max("tokens__last_used_at"),
        )
    )
    if wants_csv(request):
        return csv_response(request, ACCOUNTS_TABLE, rows)
    view = table(request, ACCOUNTS_TABLE, rows)
    return render(request, "console/service_accounts.html", {
        "nav": "access", "page": view.page, "qs": view.query, "table": view,
        "may_create": may_create_service_account(user),
    })


@require_GET
@login_required
def service_account_detail(request: HttpRequest, name: str) -> HttpResponseBase:
    user = signed_in_user(request)
    account = _visible_account(user, name)
    if wants_csv(request):
        now = timezone.now()
        return csv_response(request, replace(TOKENS_TABLE, prepare=lambda chunk: [
            {"token": t, "status": token_status(t, now)} for t in chunk
        ]), account.tokens.select_related("created_by", "revoked_by"))
    return _render_detail(request, user, account)


def _render_detail(request: HttpRequest, user: User, account: ServiceAccount,
                   issued: tokens.IssuedToken | None = None) -> HttpResponse:
    now = timezone.now()
    view = table(request, TOKENS_TABLE, account.tokens.select_related("created_by", "revoked_by"))
    page = view.page
    may_manage = _may_manage(user, account)
    context = {
        "nav": "access", "account": account, "page": page, "qs": view.query, "table": view,
        "rows": [{"token": t, "status": token_status(t, now)} for t in page.object_list],
        "may_manage": may_manage,
        "may_issue": may_manage and account.disabled_at is None,
        "scopes": sorted(tokens.SCOPES.items()),
        "max_days": tokens.MAX_DAYS, "default_days": tokens.DEFAULT_DAYS,
    }
    if issued is None:
        return render(request, "console/service_account_detail.html", context)
    response = render(request, "console/token_issued.html", {
        **context, "issued": issued.token, "plaintext": issued.plaintext,
        "issued_scopes": [(s, tokens.SCOPES[s]) for s in issued.token.scopes],
    })
    # The page holds a secret: no cache (browser history, proxy) may keep it.
    add_never_cache_headers(response)
    response["Pragma"] = "no-cache"
    return response


# --- actions --------------------------------------------------------------------------------------------


@require_POST
@login_required
def service_account_create_view(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    name = request.POST.get("name", "").strip()[:200]
    try:
        account = service_account_create(actor=user, name=name, description=request.POST.get("description", ""))
    except ValueError as exc:  # AccessError and the ledger's input errors: the service wrote nothing
        messages.error(request, f"No service account was created: {exc}.")
        return HttpResponseRedirect(reverse("console-service-accounts"))
    messages.success(request, (
        f"Service account {account.name} is created; you own it. Issue it a token below "
        f"(its grants name it service:{account.name})."
    ))
    return HttpResponseRedirect(_detail_url(account))


def _expiry_days(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) <= 4 else None


@require_POST
@login_required
def token_issue_view(request: HttpRequest, name: str) -> HttpResponse:
    user = signed_in_user(request)
    account = _visible_account(user, name)
    post = request.POST
    days = _expiry_days(post.get("expires_in_days", str(tokens.DEFAULT_DAYS)))
    if days is None:
        messages.error(request, f"No token was issued: the expiry is a whole number of days from 1 to "
                                f"{tokens.MAX_DAYS}.")
        return HttpResponseRedirect(_detail_url(account))
    try:
        # The service checks the owner/InfoSec rule, the scopes against SCOPES, the name and the expiry bounds.
        issued = tokens.api_token_create(actor=user, service_account=account, name=post.get("name", "")[:200],
                                         scopes=post.getlist("scopes"), expires_in_days=days)
    except ValueError as exc:  # AccessError: nothing was written
        messages.error(request, f"No token was issued: {exc}.")
        return HttpResponseRedirect(_detail_url(account))
    # Rendered here, not redirected: the plaintext must not travel through the session or a URL.
    return _render_detail(request, user, account, issued)


@require_POST
@login_required
def token_revoke_view(request: HttpRequest, name: str, token_id: int) -> HttpResponse:
    user = signed_in_user(request)
    account = _visible_account(user, name)
    token = get_object_or_404(account.tokens.all(), pk=token_id)
    run_action(
        request,
        lambda: tokens.api_token_revoke(actor=user, token=token, reason=request.POST.get("reason", "")),
        f"Token {token.name} (mlg_{token.prefix}_…) of {account.name} is revoked; it is refused from now on.",
    )
    return redirect_back(request, _detail_url(account))
