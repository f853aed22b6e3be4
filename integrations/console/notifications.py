"""``/console/preferences/notifications/``: what the viewer hears of, on which channel, how often."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from integrations.models import Notification, NotificationPreference
from integrations.notifications import rules
from integrations.notifications.services import PreferenceError, channel_for, mask, preference_of, preference_update
from web.console.base import signed_in_user


def _context(request: HttpRequest, pref: NotificationPreference, error: str = "") -> dict[str, object]:
    user = signed_in_user(request)
    return {
        "nav": "preferences", "error": error,
        "categories": [(key, label, channel_for(pref, key)) for key, (label, _) in rules.CATEGORIES.items()],
        "channels": rules.CHANNELS, "digests": NotificationPreference.Digest.choices, "digest": pref.digest,
        "chat_url_masked": mask(pref.chat_url), "has_email": bool(user.email),
        "recent": Notification.objects.filter(recipient=user).order_by("-created_at", "-pk")[:10],
    }


@require_http_methods(["GET", "POST"])
@login_required
def notification_preferences(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if request.method == "POST":
        chosen = {key: request.POST.get(f"channel_{key}", "") for key in rules.CATEGORIES}
        # An empty URL field keeps the saved one; "clear_chat" removes it (the saved URL is never sent back).
        chat_url: str | None = request.POST.get("chat_url", "").strip() or None
        if request.POST.get("clear_chat"):
            chat_url = ""
        try:
            preference_update(actor=user, user=user, channels=chosen, digest=request.POST.get("digest", ""),
                              chat_url=chat_url)
        except PreferenceError as exc:
            return render(request, "console/notification_preferences.html",
                          _context(request, preference_of(user), str(exc)), status=400)
        messages.success(request, "Your notification preferences are saved.")
        return HttpResponseRedirect(reverse("console-notification-preferences"))
    return render(request, "console/notification_preferences.html", _context(request, preference_of(user)))
