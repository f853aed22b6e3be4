"""The site's URLs plus two test-only views that cannot work without the cache (tests/ops/test_fault_cache.py).

No endpoint of the product needs the cache any more (the throttle and the webhook rate limit fail
open), so the 503 of a cache outage is shown on these: one API view, one plain Django view.
"""
from __future__ import annotations

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import handler400, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as site


class CacheCounterApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response({"hits": cache.get_or_set("test-hits", 0)})


def cache_counter_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"hits: {cache.get_or_set('test-hits', 0)}")


urlpatterns = [
    path("api/v1/test-needs-cache", CacheCounterApi.as_view(), name="test-needs-cache-api"),
    path("test-needs-cache", cache_counter_page, name="test-needs-cache-page"),
    *site,
]
