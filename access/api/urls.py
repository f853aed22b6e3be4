"""``/api/v1/`` routes of access governance (included by web/api/urls.py)."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from access.api import datasets as d
from access.api import grants as g
from access.api import service_accounts as t

urlpatterns: list[URLPattern | URLResolver] = [
    path("datasets", d.DatasetListApi.as_view(), name="api-datasets"),
    path("datasets/<str:name>", d.DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<str:name>/classification", d.DatasetClassifyApi.as_view(), name="api-dataset-classify"),
    path("datasets/<str:name>/fields", d.DatasetFieldsApi.as_view(), name="api-dataset-fields"),
    path("datasets/<str:name>/fields/<str:field>/classification", d.DatasetFieldClassifyApi.as_view(),
         name="api-dataset-field-classify"),
    path("lineage", d.LineageApi.as_view(), name="api-lineage"),
    path("grants", g.GrantListApi.as_view(), name="api-grants"),
    path("grants/<int:grant_id>", g.GrantDetailApi.as_view(), name="api-grant"),
    path("grants/<int:grant_id>/revoke", g.GrantRevokeApi.as_view(), name="api-grant-revoke"),
    path("access-requests", g.AccessRequestListApi.as_view(), name="api-access-requests"),
    path("access-requests/<int:request_id>", g.AccessRequestDetailApi.as_view(), name="api-access-request"),
    path("access-requests/<int:request_id>/approve", g.AccessRequestApproveApi.as_view(),
         name="api-access-request-approve"),
    path("access-requests/<int:request_id>/reject", g.AccessRequestRejectApi.as_view(),
         name="api-access-request-reject"),
    path("access-requests/<int:request_id>/withdraw", g.AccessRequestWithdrawApi.as_view(),
         name="api-access-request-withdraw"),
    path("reviews", g.ReviewListApi.as_view(), name="api-reviews"),
    path("reviews/<int:campaign_id>", g.ReviewDetailApi.as_view(), name="api-review"),
    path("reviews/<int:campaign_id>/items/<int:item_id>/decide", g.ReviewItemDecideApi.as_view(),
         name="api-review-item-decide"),
    path("access/check", g.AccessCheckApi.as_view(), name="api-access-check"),
    path("service-accounts", t.ServiceAccountListApi.as_view(), name="api-service-accounts"),
    path("service-accounts/<slug:name>", t.ServiceAccountDetailApi.as_view(), name="api-service-account"),
    path("service-accounts/<slug:name>/tokens", t.TokenListApi.as_view(), name="api-service-account-tokens"),
    path("service-accounts/<slug:name>/tokens/<int:token_id>/revoke", t.TokenRevokeApi.as_view(),
         name="api-service-account-token-revoke"),
]
