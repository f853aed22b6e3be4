"""``/console/access/service-accounts/``: service accounts and their API tokens."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from access import console_tokens as views

urlpatterns: list[URLPattern | URLResolver] = [
    path("access/service-accounts/", views.service_accounts_list, name="console-service-accounts"),
    # "+new" cannot be an account name (names are slugs), so no account's page is shadowed.
    path("access/service-accounts/+new/", views.service_account_create_view, name="console-service-account-create"),
    path("access/service-accounts/<slug:name>/", views.service_account_detail, name="console-service-account"),
    path("access/service-accounts/<slug:name>/tokens/new/", views.token_issue_view, name="console-token-issue"),
    path("access/service-accounts/<slug:name>/tokens/<int:token_id>/revoke/", views.token_revoke_view,
         name="console-token-revoke"),
]
