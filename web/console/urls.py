"""``/console/``: the InfoSec web console. Each area keeps its own routes."""
from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from web.console.login import ConsoleLoginView, ConsolePasswordChangeView
from web.console.preferences import preferences

urlpatterns = [
    path("login/", ConsoleLoginView.as_view(), name="console-login"),
    path("logout/", auth_views.LogoutView.as_view(), name="console-logout"),
    path("password/", ConsolePasswordChangeView.as_view(), name="console-password-change"),
    path("preferences/", preferences, name="console-preferences"),
    path("", include("governance.console.urls")),
    path("", include("audit.console.urls")),
    path("", include("access.console.urls")),
]
