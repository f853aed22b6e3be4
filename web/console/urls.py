"""``/console/``: the InfoSec web console. Each area keeps its own routes."""
from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

from web.console.preferences import preferences

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html", redirect_authenticated_user=True),
         name="console-login"),
    path("logout/", auth_views.LogoutView.as_view(), name="console-logout"),
    path("preferences/", preferences, name="console-preferences"),
    path("", include("governance.console.urls")),
    path("", include("audit.console.urls")),
    path("", include("access.console.urls")),
]
