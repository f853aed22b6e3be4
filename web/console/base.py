"""What every console page shares: the viewer's roles for the navigation, and page helpers."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from access import roles
from access.authn import step_up_reason
from access.roles import has_role, role_names
from access.services.sso import sso_enabled
from audit.ledger import account_pk

# Rows per console page unless a view says otherwise.
PAGE_SIZE = 25
# Who oversees: sees the ledger's integrity, every domain's history and the compliance violations.
OVERSIGHT = (roles.INFOSEC, roles.AUDITOR)


def signed_in_user(request: HttpRequest) -> User:
    """``request.user`` in a view behind ``login_required`` (typed: never anonymous there)."""
    user = request.user
    assert isinstance(user, User)  # login_required ran first
    return user


def viewer_roles(user: Any) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    return role_names(user)


def is_oversight(user: Any) -> bool:
    """InfoSec or an auditor (``OVERSIGHT``)."""
    return has_role(user, *OVERSIGHT)


def display_names(refs: Iterable[str]) -> dict[str, str]:
    """``user:<id>`` reference → the person's full name, else username, in one query (other refs and
    unknown ids are left out). For pages whose viewer may see names: the console's; exports and the
    audit report keep references only (docs/pii.md, docs/export-format.md)."""
    ids = {pk for pk in map(account_pk, refs) if pk is not None}
    if not ids:
        return {}
    rows = User.objects.filter(pk__in=ids).values_list("pk", "username", "first_name", "last_name")
    return {f"user:{pk}": f"{first} {last}".strip() or username for pk, username, first, last in rows}


def actor_refs(entries: Iterable[Any]) -> list[str]:
    """The ``type:id`` actor reference of each ledger entry (a model or a ``values()`` dict)."""
    return [f"{_field(e, 'actor_type')}:{_field(e, 'actor_id')}" for e in entries]


def _field(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


#: The message tag of a refusal that a re-authentication with a second factor would lift (base.html adds
#: the "Confirm it's you" link to such messages).
STEP_UP_TAG = "step-up"
STEP_UP_CODE = "step_up_required"


def step_up_url(next_path: str) -> str:
    """Where to confirm it's you (``console-step-up``, which re-authenticates at the identity provider with
    a second factor) and come back to ``next_path``. Resolved at each call, and the sign-in page when
    that URL is not installed (a deployment without SSO: signing in again is then the only way)."""
    try:
        target = reverse("console-step-up")
    except NoReverseMatch:
        target = reverse("console-login")
    return f"{target}?{urlencode({'next': next_path})}"


def refusal_message(request: HttpRequest, exc: Exception) -> None:
    """A service's refusal as the console's error message; a ``step_up_required`` one is tagged so the
    page shows how to lift it (``STEP_UP_TAG``)."""
    if getattr(exc, "code", None) == STEP_UP_CODE:
        messages.error(request, str(exc), extra_tags=STEP_UP_TAG)
    else:
        messages.error(request, str(exc))


def denied(request: HttpRequest, message: str) -> HttpResponse:
    """The console's refusal: a readable page with status 403 and no data."""
    return render(request, "console/denied.html", {"message": message}, status=403)


def console(request: HttpRequest) -> dict[str, Any]:
    """Context processor: ``viewer`` flags for templates (one query per request, cached on the user).

    The ``may_*`` flags are the navigation's: each is the rule of the page its link opens (the view
    refuses everybody else), so the menu offers only pages that answer the viewer
    (tests/console/test_navigation_console.py follows every link for every persona)."""
    user = getattr(request, "user", None)
    names = viewer_roles(user)
    oversight = bool(set(OVERSIGHT) & names)
    return {
        "viewer": {
            "roles": sorted(names),
            # ledger, exports, legal holds, violations, identity links and the admin: InfoSec and auditors
            "may_oversee": oversight,
            # environments: anybody with a governance role
            "may_see_environments": bool(names),
            "is_infosec": roles.INFOSEC in names,
            "is_auditor": roles.AUDITOR in names,
            "is_approver": bool({roles.APPROVER, roles.MODEL_RISK} & names),
            "is_owner": roles.MODEL_OWNER in names,
            "is_steward": roles.DATA_STEWARD in names,
            "is_break_glass": roles.BREAK_GLASS in names,
            # Said before the click: the sensitive actions on this page will ask for a second factor first.
            "step_up_needed": bool(names) and step_up_reason() is not None,
        },
        # The login pages' "Sign in with <provider>" (web.console.sso; on iff OIDC_RP_CLIENT_ID is set).
        "sso": {"enabled": sso_enabled(), "provider": settings.OIDC_PROVIDER_NAME},
    }


def paginate(request: HttpRequest, rows: Any, size: int = PAGE_SIZE) -> tuple[Page[Any], str]:
    """The requested page (an invalid number gives the first or last page), and the query string of the
    other parameters for the pager's links."""
    page = Paginator(rows, size).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return page, params.urlencode()


def run_action(request: HttpRequest, action: Callable[[], Any], success: str) -> bool:
    """Call a service; a refusal becomes an error message (the service wrote nothing)."""
    try:
        action()
    except ValueError as exc:  # GovernanceError, AccessError and the ledger's input errors
        refusal_message(request, exc)
        return False
    messages.success(request, success)
    return True


def redirect_back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Back to the page the form was on, when it is a console page of this site."""
    nxt = request.POST.get("next", "")
    # Only a path of this console: never another site (open redirect).
    if nxt.startswith("/console/") and url_has_allowed_host_and_scheme(nxt, allowed_hosts=None):
        return HttpResponseRedirect(nxt)
    return HttpResponseRedirect(fallback)
