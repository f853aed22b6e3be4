"""``/console/preferences/``: the viewer's own console preferences (today the time zone)."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from web.console.base import signed_in_user
from web.preferences import PreferenceError, preference_update, remember, time_zone_of, time_zones


@require_http_methods(["GET", "POST"])
@login_required
def preferences(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if request.method == "POST":
        chosen = request.POST.get("time_zone", "")
        try:
            pref = preference_update(actor=user, user=user, time_zone=chosen)
        except PreferenceError as exc:
            # The form again with the refusal; nothing was saved.
            return render(request, "console/preferences.html", {
                "nav": "preferences", "zones": time_zones(), "current": time_zone_of(user), "error": str(exc),
            }, status=400)
        remember(request, pref.time_zone)
        messages.success(request, f"Times are now shown in {pref.time_zone}.")
        return HttpResponseRedirect(reverse("console-preferences"))
    return render(request, "console/preferences.html", {
        "nav": "preferences", "zones": time_zones(), "current": time_zone_of(user),
        "local_login": settings.LOCAL_LOGIN,
    })
