"""``/console/``: the InfoSec web console. Each area keeps its own routes."""
from __future__ import annotations

from django.urls import include, path

from web.console import sso
from web.console.login import ConsoleLoginView, ConsolePasswordChangeView
from web.console.preferences import preferences

urlpatterns = [
    path("login/", ConsoleLoginView.as_view(), name="console-login"),
    # POST only; ends the provider's session too when it has an end-session endpoint (web.console.sso).
    path("logout/", sso.logout, name="console-logout"),
    path("password/", ConsolePasswordChangeView.as_view(), name="console-password-change"),
    path("sso/login/", sso.sso_login, name="console-sso-login"),
    path("sso/callback/", sso.sso_callback, name="console-sso-callback"),
    path("step-up/", sso.step_up, name="console-step-up"),
    path("preferences/", preferences, name="console-preferences"),
    path("", include("governance.console.urls")),
    path("", include("audit.console.urls")),
    path("", include("access.console.urls")),
    path("", include("integrations.console.urls")),
]
