"""Console page of MLflow identity links: InfoSec vouches that an MLflow identity is an account (#13).

InfoSec lists, links (with a reason) and removes (with a reason); auditors read; anybody else
gets the console's 403 page with no data. Writes go through the same services as the API
(``identity_link_services.identity_link_create`` / ``identity_link_remove``), which stay the authority.
The MLflow identity is personal data: shown on this page, never in a message or a log line.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from access import roles
from governance import selectors
from governance.services import identity_links as identity_link_services
from governance.services.identity_links import MAX_IDENTITY
from web.console.base import denied, run_action, signed_in_user, viewer_roles
from web.console.tables import Column, TableSpec, csv_response, table, wants_csv

PAGE = "console-identity-links"
LINKS_TABLE = TableSpec(
    name="identity-links",
    columns=(
        Column("identity", "MLflow identity", ("mlflow_identity",), lambda link: link.mlflow_identity),
        Column("account", "Account", ("account__username",), lambda link: link.account.get_username()),
        Column("account_ref", "Account ref", value=lambda link: f"user:{link.account_id}"),
        Column("reason", "Reason", value=lambda link: link.reason),
        Column("linked", "Linked", ("created_at",), lambda link: link.created_at, desc_first=True),
        Column("linked_by", "Linked by", value=lambda link: link.created_by.get_username()),
    ),
    default_sort="identity",
)


@require_GET
@login_required
def identity_links(request: HttpRequest) -> HttpResponseBase:
    user = signed_in_user(request)
    if not selectors.may_see_identity_links(user):
        return denied(request, "MLflow identity links are for InfoSec and auditors.")
    rows = selectors.identity_links_visible_to(user)
    if wants_csv(request):
        return csv_response(request, LINKS_TABLE, rows)
    view = table(request, LINKS_TABLE, rows)
    return render(request, "console/identity_links.html", {
        "nav": "identity-links", "page": view.page, "rows": view.page.object_list, "qs": view.query, "table": view,
        "may_edit": roles.INFOSEC in viewer_roles(user), "max_identity": MAX_IDENTITY,
    })


def _infosec_only(request: HttpRequest) -> HttpResponse | None:
    if roles.INFOSEC not in viewer_roles(signed_in_user(request)):
        return denied(request, "Only InfoSec may link or unlink MLflow identities.")
    return None


@require_POST
@login_required
def identity_link_create(request: HttpRequest) -> HttpResponse:
    refused = _infosec_only(request)
    if refused is not None:
        return refused
    user = signed_in_user(request)
    username = request.POST.get("account", "").strip()
    account = User.objects.filter(username=username, is_active=True).first() if username else None
    if account is None:
        messages.error(request, "No active account has this username; nothing was linked.")
        return HttpResponseRedirect(reverse(PAGE))
    run_action(
        request,
        lambda: identity_link_services.identity_link_create(actor=user,
                                                            mlflow_identity=request.POST.get("mlflow_identity", ""),
                                                            account=account, reason=request.POST.get("reason", "")),
        # Not the identity itself: messages are stored in the session and may reach logs.
        f"The MLflow identity is linked to {account.get_username()}; versions it created now name them as "
        "their registrant.",
    )
    return HttpResponseRedirect(reverse(PAGE))


@require_POST
@login_required
def identity_link_remove(request: HttpRequest, pk: int) -> HttpResponse:
    refused = _infosec_only(request)
    if refused is not None:
        return refused
    user = signed_in_user(request)
    link = get_object_or_404(selectors.identity_links_visible_to(user), pk=pk)
    run_action(
        request,
        lambda: identity_link_services.identity_link_remove(actor=user, link=link, reason=request.POST.get("reason",
                                                            "")),
        f"Link #{pk} is removed; versions already linked keep their registrant.",
    )
    return HttpResponseRedirect(reverse(PAGE))
