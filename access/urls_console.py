"""``/console/access/``: datasets and classification, grants, access requests and access reviews."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from access import console as views

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
    path("access/requests/<int:pk>/<slug:action>/", views.request_action, name="console-access-request-action"),
    path("access/reviews/", views.reviews_list, name="console-reviews"),
    path("access/reviews/start/", views.review_campaign_start_view, name="console-review-start"),
    path("access/reviews/<int:pk>/", views.review_detail, name="console-review"),
    path("access/reviews/items/<int:pk>/<slug:decision>/", views.review_item_decide_view,
         name="console-review-decide"),
]
