"""Fault test: the Redis that holds the cache is killed mid-test (a redis-server of the test's own).

Before issue #16 every API call, reads included, answered 500 while the cache was down, because the
throttle reads it. Now: reads answer 200 (the throttle fails open within a per-process budget, with
one warning, not one per request); what truly needs the cache answers 503 ``unavailable`` naming
the cache (never its address) with ``Retry-After``; once Redis is back everything is as before.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.cache import cache

from tests.api.helpers import problem_of
from tests.ops.helpers import RedisServer
from web.api.auth import local_buckets

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.ops.outage_urls")]


@pytest.fixture
def redis_cache(settings: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """The cache on a redis-server this test starts (and may kill and restart)."""
    server = RedisServer(tmp_path)
    server.start()
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",  # type: ignore[attr-defined]
                                   "LOCATION": server.url}}
    settings.RETRY_AFTER_SECONDS = 7  # type: ignore[attr-defined]
    local_buckets.clear()
    try:
        yield server
    finally:
        server.kill()
        local_buckets.clear()


def test_with_the_cache_down_reads_answer_and_what_needs_it_is_a_503(redis_cache, token_for, caplog):
    reader = token_for(["ledger:read"])
    assert reader.get("/api/v1/whoami").status_code == 200
    assert cache.get(f"throttle_token_t{reader.token.pk}")  # the throttle really counts in this Redis
    assert reader.get("/api/v1/test-needs-cache").status_code == 200

    # when Redis dies
    redis_cache.kill()
    caplog.set_level(logging.WARNING)

    # then API reads still answer (the throttle fails open), with one warning for all of them
    for _ in range(5):
        response = reader.get("/api/v1/whoami")
        assert response.status_code == 200, response.content
    assert reader.get("/api/v1/ledger/entries").status_code == 200
    degraded = [r for r in caplog.records if "throttle" in r.getMessage() and r.levelno == logging.WARNING]
    assert len(degraded) == 1

    # and what needs the cache is a 503 naming the cache, not its address, with Retry-After
    api = reader.get("/api/v1/test-needs-cache")
    assert api.status_code == 503
    body = problem_of(api)
    assert body["code"] == "unavailable" and body["type"].endswith(":unavailable")
    assert "cache" in body["detail"]
    assert str(redis_cache.port) not in api.content.decode() and "127.0.0.1" not in api.content.decode()
    assert api["Retry-After"] == "7"
    page = reader.get("/test-needs-cache")  # a plain Django view (the console's kind)
    assert page.status_code == 503 and page["Retry-After"] == "7"
    assert "cache" in page.content.decode() and str(redis_cache.port) not in page.content.decode()

    # when Redis is back, on the same port: everything is normal again
    redis_cache.start()
    assert reader.get("/api/v1/test-needs-cache").status_code == 200
    assert reader.get("/api/v1/whoami").status_code == 200
    assert cache.get(f"throttle_token_t{reader.token.pk}")


def test_with_the_cache_down_the_throttle_keeps_a_local_budget(redis_cache, token_for, settings):
    settings.API_THROTTLE_RATE = "3/min"
    reader = token_for(["ledger:read"])
    other = token_for(["ledger:read"])
    redis_cache.kill()

    answers = [reader.get("/api/v1/whoami").status_code for _ in range(4)]

    # the same rate, counted in this process: fail open, not without limit
    assert answers == [200, 200, 200, 429]
    refused = reader.get("/api/v1/whoami")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert problem_of(refused)["code"] == "throttled"
    # each caller has a budget of its own
    assert other.get("/api/v1/whoami").status_code == 200
