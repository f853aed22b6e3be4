"""The console's outbound webhooks: InfoSec subscribes, pauses, rotates, replays; auditors read.

Every change goes through ``integrations.webhooks.services`` (which refuses anyone but active InfoSec and
writes the ledger entry). A new or rotated secret is shown once, on the POST's own answer, with
``Cache-Control: no-store`` (never through a redirect, a message or the session).
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from integrations.models import WebhookAttempt, WebhookSubscription
from integrations.streams import stream_cursor
from integrations.webhooks.errors import WebhookError
from integrations.webhooks.services import (
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_pause,
    webhook_subscription_replay,
    webhook_subscription_resume,
    webhook_subscription_secret_rotate,
    webhook_subscription_update,
)
from web.console.base import denied, is_oversight, redirect_back, refusal_message, run_action, signed_in_user
from web.console.tables import Column, TableSpec, csv_response, table, wants_csv

NOT_PERMITTED = "Webhooks are for InfoSec and auditors: you are not permitted to see them."

SUBSCRIPTIONS_TABLE = TableSpec(
    name="webhooks",
    columns=(
        Column("id", "#", ("id",), lambda s: s.pk, desc_first=True),
        Column("name", "Name", ("name",), lambda s: s.name),
        Column("status", "Status", ("status",), lambda s: s.status),
        # The origin only: the CSV reaches auditors, and a URL's path or query may hold the receiver's token.
        Column("target", "Target", value=lambda s: s.target_origin),
        Column("events", "Event types", value=lambda s: " ".join(s.event_types)),
        Column("subject", "Subject", value=lambda s: f"{s.subject_type}:{s.subject_id}".strip(":")),
        Column("created", "Created", ("created_at",), lambda s: s.created_at, desc_first=True),
    ),
    default_sort="-id",
)

ATTEMPTS_TABLE = TableSpec(
    name="webhook-deliveries",
    columns=(
        Column("at", "Attempted", ("attempted_at",), lambda a: a.attempted_at, desc_first=True),
        Column("seq", "Seq", ("seq",), lambda a: a.seq, desc_first=True),
        Column("event", "Event type", value=lambda a: a.event_type),
        Column("id", "webhook-id", value=lambda a: a.webhook_id),
        Column("outcome", "Outcome", ("delivered",), lambda a: "delivered" if a.delivered else "failed"),
        Column("status", "HTTP status", ("status_code",), lambda a: a.status_code),
        Column("duration", "ms", ("duration_ms",), lambda a: a.duration_ms, desc_first=True),
        Column("error", "Error", value=lambda a: a.error),
        Column("next", "Next attempt", value=lambda a: a.next_attempt_at),
        Column("response", "Response (start)", value=lambda a: a.response_excerpt),
    ),
    default_sort="-at",
)


def _secret_page(request: HttpRequest, sub: WebhookSubscription, secret: str, *, rotated: bool) -> HttpResponse:
    response = render(request, "console/webhook_secret.html", {"nav": "webhooks", "sub": sub, "secret": secret,
                                                              "rotated": rotated})
    # The page holds a secret: no cache (browser history, proxy) may keep it.
    add_never_cache_headers(response)
    response["Pragma"] = "no-cache"
    return response


@login_required
def webhooks(request: HttpRequest) -> HttpResponseBase:
    if not is_oversight(request.user):
        return denied(request, NOT_PERMITTED)
    subs = WebhookSubscription.objects.exclude(status=WebhookSubscription.DELETED)
    if request.GET.get("show") == "deleted":
        subs = WebhookSubscription.objects.filter(status=WebhookSubscription.DELETED)
    if wants_csv(request):
        return csv_response(request, SUBSCRIPTIONS_TABLE, subs)
    view = table(request, SUBSCRIPTIONS_TABLE, subs)
    return render(request, "console/webhooks.html", {
        "nav": "webhooks", "page": view.page, "qs": view.query, "table": view,
        "show": request.GET.get("show", ""), "failing": subs.filter(status=WebhookSubscription.FAILING).count(),
    })


@login_required
@require_POST
def webhook_new(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if not is_oversight(user):
        return denied(request, NOT_PERMITTED)
    post = request.POST
    from_seq_raw = post.get("from_seq", "").strip()
    try:
        from_seq = int(from_seq_raw) if from_seq_raw else None
        sub, secret = webhook_subscription_create(
            actor=user, name=post.get("name", ""), url=post.get("url", ""), event_types=post.get("event_types", ""),
            subject_type=post.get("subject_type", ""), subject_id=post.get("subject_id", ""), from_seq=from_seq)
    except ValueError as exc:  # WebhookError, and int() of a bad seq
        if not isinstance(exc, WebhookError):
            exc = WebhookError("the seq to start from must be a whole number")
        refusal_message(request, exc)
        return redirect_back(request, reverse("console-webhooks"))
    return _secret_page(request, sub, secret, rotated=False)


@login_required
def webhook_detail(request: HttpRequest, sub_id: int) -> HttpResponseBase:
    if not is_oversight(request.user):
        return denied(request, NOT_PERMITTED)
    sub = get_object_or_404(WebhookSubscription, pk=sub_id)
    attempts = WebhookAttempt.objects.filter(subscription=sub)
    if request.GET.get("show") == "failed":
        attempts = attempts.filter(delivered=False)
    if wants_csv(request):
        return csv_response(request, ATTEMPTS_TABLE, attempts)
    view = table(request, ATTEMPTS_TABLE, attempts)
    return render(request, "console/webhook_detail.html", {
        "nav": "webhooks", "sub": sub, "page": view.page, "qs": view.query, "table": view,
        "cursor": stream_cursor(sub.stream_name) if sub.status != WebhookSubscription.DELETED else None,
        "show": request.GET.get("show", ""),
    })


def _action(request: HttpRequest, sub_id: int, name: str) -> HttpResponse:
    user = signed_in_user(request)
    if not is_oversight(user):
        return denied(request, NOT_PERMITTED)
    sub = get_object_or_404(WebhookSubscription, pk=sub_id)
    post = request.POST
    reason = post.get("reason", "")
    back = reverse("console-webhook", args=[sub.pk])
    if name == "rotate":
        try:
            sub, secret = webhook_subscription_secret_rotate(actor=user, subscription=sub, reason=reason)
        except ValueError as exc:
            refusal_message(request, exc)
            return redirect_back(request, back)
        return _secret_page(request, sub, secret, rotated=True)
    if name == "pause":
        run_action(request, lambda: webhook_subscription_pause(actor=user, subscription=sub, reason=reason),
                   f"Webhook #{sub.pk} is paused: nothing is sent, nothing is skipped.")
    elif name == "resume":
        run_action(request, lambda: webhook_subscription_resume(actor=user, subscription=sub, reason=reason),
                   f"Webhook #{sub.pk} is active again: waiting entries are sent from where it stopped.")
    elif name == "delete":
        run_action(request, lambda: webhook_subscription_delete(actor=user, subscription=sub, reason=reason),
                   f"Webhook #{sub.pk} is deleted.")
    elif name == "edit":
        run_action(request, lambda: webhook_subscription_update(
            actor=user, subscription=sub, name=post.get("name", ""), url=post.get("url", ""),
            event_types=post.get("event_types", ""), subject_type=post.get("subject_type", ""),
            subject_id=post.get("subject_id", ""), reason=reason),
            f"Webhook #{sub.pk} is changed: the new target and filters apply from where its stream stands.")
    else:  # replay
        run_action(request, lambda: webhook_subscription_replay(actor=user, subscription=sub,
                                                                from_seq=post.get("from_seq", ""), reason=reason),
                   f"Webhook #{sub.pk} will deliver again from seq {post.get('from_seq', '').strip()} "
                   "(same webhook-ids: receivers that de-duplicate ignore what they have).")
    return redirect_back(request, back)


@login_required
@require_POST
def webhook_pause(request: HttpRequest, sub_id: int) -> HttpResponse:
    return _action(request, sub_id, "pause")


@login_required
@require_POST
def webhook_resume(request: HttpRequest, sub_id: int) -> HttpResponse:
    return _action(request, sub_id, "resume")


@login_required
@require_POST
def webhook_delete(request: HttpRequest, sub_id: int) -> HttpResponse:
    return _action(request, sub_id, "delete")


@login_required
@require_POST
def webhook_rotate(request: HttpRequest, sub_id: int) -> HttpResponse:
    return _action(request, sub_id, "rotate")


@login_required
@require_POST
def webhook_replay(request: HttpRequest, sub_id: int) -> HttpResponse:
    return _action(request, sub_id, "replay")


@login_required
@require_POST
def webhook_edit(request: HttpRequest, sub_id: int) -> HttpResponse:
    return _action(request, sub_id, "edit")
