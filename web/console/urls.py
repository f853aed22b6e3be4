"""``/console/``: the InfoSec web console. Each area keeps its own routes."""
from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html", redirect_authenticated_user=True),
         name="console-login"),
    path("logout/", auth_views.LogoutView.as_view(), name="console-logout"),
    path("", include("governance.console.urls_overview")),
    path("", include("governance.console.urls_promotions")),
    path("", include("governance.console.urls_environments")),
    path("", include("governance.console.urls_identity_links")),
    path("", include("audit.urls_console")),
    path("", include("access.console.urls")),
]
