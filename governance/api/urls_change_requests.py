"""Routes of two-person control over the rules of protected environments (``governance.api.change_requests``)."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from governance.api import change_requests

C = "change-requests/<int:pk>"

urlpatterns: list[URLPattern | URLResolver] = [
    path("change-requests", change_requests.ChangeRequestListApi.as_view(), name="api-change-requests"),
    path(C, change_requests.ChangeRequestDetailApi.as_view(), name="api-change-request"),
    path(f"{C}/approve", change_requests.ChangeRequestApproveApi.as_view(), name="api-change-request-approve"),
    path(f"{C}/reject", change_requests.ChangeRequestRejectApi.as_view(), name="api-change-request-reject"),
    path(f"{C}/withdraw", change_requests.ChangeRequestWithdrawApi.as_view(), name="api-change-request-withdraw"),
]
