"""``/console/access/`` routes (included by web/console/urls.py): datasets and classification, grants, access
requests and access reviews (``access.console.grants``); service accounts and their API tokens
(``access.console.service_accounts``)."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from access.console import grants as views
from access.console import service_accounts as accounts

urlpatterns: list[URLPattern | URLResolver] = [
    path("access/", views.access_overview, name="console-access"),
    path("access/datasets/<int:pk>/", views.dataset_detail, name="console-dataset"),
    path("access/datasets/<int:pk>/classify/", views.dataset_classify_view, name="console-dataset-classify"),
    path("access/datasets/<int:pk>/fields/classify/", views.dataset_field_classify_view,
         name="console-dataset-field-classify"),
    path("access/grants/", views.grants_list, name="console-grants"),
    path("access/grants/new/", views.grant_new, name="console-grant-create"),
    path("access/grants/<int:pk>/revoke/", views.grant_revoke_view, name="console-grant-revoke"),
    path("access/requests/", views.requests_list, name="console-access-requests"),
    path("access/requests/new/", views.request_create, name="console-access-request-create"),
    path("access/requests/<int:pk>/", views.request_detail, name="console-access-request"),
    path("access/requests/<int:pk>/<slug:action>/", views.request_action, name="console-access-request-action"),
    path("access/reviews/", views.reviews_list, name="console-reviews"),
    path("access/reviews/start/", views.review_campaign_start_view, name="console-review-start"),
    path("access/reviews/<int:pk>/", views.review_detail, name="console-review"),
    path("access/reviews/items/<int:pk>/<slug:decision>/", views.review_item_decide_view,
         name="console-review-decide"),
    path("access/service-accounts/", accounts.service_accounts_list, name="console-service-accounts"),
    # "+new" cannot be an account name (names are slugs), so no account's page is shadowed.
    path("access/service-accounts/+new/", accounts.service_account_create_view,
         name="console-service-account-create"),
    path("access/service-accounts/<slug:name>/", accounts.service_account_detail, name="console-service-account"),
    path("access/service-accounts/<slug:name>/tokens/new/", accounts.token_issue_view, name="console-token-issue"),
    path("access/service-accounts/<slug:name>/tokens/<int:token_id>/revoke/", accounts.token_revoke_view,
         name="console-token-revoke"),
]
