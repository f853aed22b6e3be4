"""``/console/``: the InfoSec web console. Each area keeps its own routes."""
from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from web.console import sso
from web.console.preferences import preferences

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html", redirect_authenticated_user=True),
         name="console-login"),
    # POST only; ends the provider's session too when it has an end-session endpoint (web.console.sso).
    path("logout/", sso.logout, name="console-logout"),
    path("sso/login/", sso.sso_login, name="console-sso-login"),
    path("sso/callback/", sso.sso_callback, name="console-sso-callback"),
    path("step-up/", sso.step_up, name="console-step-up"),
    path("preferences/", preferences, name="console-preferences"),
    path("", include("governance.console.urls")),
    path("", include("audit.console.urls")),
    path("", include("access.console.urls")),
]
