"""The MLflow webhook endpoint: POST /webhooks/mlflow (see ``governance.services.webhooks`` for what is
verified, accepted and refused). A refusal is answered 4xx with ``{"error": code, "detail": message}`` and
counted in the Prometheus counter ``governance_mlflow_webhook_refusals_total{reason}`` and in the database
(``webhook_refusal_count``); a source address over ``MLFLOW_WEBHOOK_RATE`` is answered 429 before its body
is read.

An accepted delivery is answered 202 only once it is stored (the outbox of its follow-up, see
``webhook_delivery_accept``). When it cannot be stored, because the database failed, the answer is
``503 {"error": "unavailable", ...}`` with ``Retry-After``, and nothing is written: MLflow retries a
delivery answered 503 (with the same delivery id, which is then new to us). Nothing else is a 503: once
stored, a delivery is answered 202 whatever happens to its follow-up.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from governance.services import webhooks
from governance.services.webhooks import (
    DEFAULT_MAX_BYTES,
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Refused,
    rate_limit_wait,
    verify_delivery,
    webhook_delivery_accept,
)
from web.metrics import WEBHOOK_ACCEPTED, WEBHOOK_REFUSALS

logger = logging.getLogger(__name__)


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


def _count_refusal(reason: str, now: float) -> None:
    WEBHOOK_REFUSALS.labels(reason).inc()
    try:
        webhooks.webhook_refusal_count(reason=reason, at=datetime.fromtimestamp(now, tz=UTC))
    except DatabaseError:
        # The answer is still the refusal (a 4xx, never a 500); the Prometheus counter has it.
        logger.warning("webhook refusal (%s) not counted: database error", reason, exc_info=True)


def _refusal(status: int, code: str, detail: str, now: float) -> JsonResponse:
    _count_refusal(code, now)
    return JsonResponse({"error": code, "detail": detail}, status=status)


#: The endpoint's clock: one reading per request serves the limit, the timestamp check and the count.
_clock = time.time


@csrf_exempt  # authenticated by the HMAC signature, not by a session
def mlflow_webhook(request: HttpRequest) -> JsonResponse:
    now = _clock()
    wait = rate_limit_wait(source=request.META.get("REMOTE_ADDR") or "unknown", now=now)
    if wait is not None:
        response = _refusal(429, "rate_limited", f"too many deliveries from this address: retry after {wait} s", now)
        response["Retry-After"] = str(wait)
        return response
    max_bytes = int(getattr(settings, "MLFLOW_WEBHOOK_MAX_BYTES", DEFAULT_MAX_BYTES))
    headers = request.headers
    try:
        length = _content_length(request)
        if length is None:
            raise Refused(400, "invalid_header", "Content-Length is not a number")
        # Read the body only when it is a POST of acceptable size.
        body = request.body if request.method == "POST" and length <= max_bytes else b""
        delivery = verify_delivery(
            method=request.method or "", headers={h: headers.get(h, "") for h in
                                                  (DELIVERY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)},
            body=body, content_length=length, now=now, secret=settings.MLFLOW_WEBHOOK_SECRET,
            tolerance=settings.MLFLOW_WEBHOOK_TOLERANCE_SECONDS, max_bytes=max_bytes,
        )
        try:
            webhook_delivery_accept(delivery=delivery)
        except DatabaseError:
            # Not stored (the transaction rolled back whole): MLflow must retry. Counted in Prometheus only,
            # the database that would hold the counter being what failed.
            logger.warning("webhook delivery not stored: database error; answered 503", exc_info=True)
            WEBHOOK_REFUSALS.labels("unavailable").inc()
            response = JsonResponse(
                {"error": "unavailable", "detail": "the delivery could not be stored (database unavailable): "
                                                   f"retry after {settings.RETRY_AFTER_SECONDS} s"},
                status=503,
            )
            response["Retry-After"] = str(settings.RETRY_AFTER_SECONDS)
            return response
    except Refused as refused:
        response = _refusal(refused.status, refused.code, refused.detail, now)
        if refused.status == 405:
            response["Allow"] = "POST"
        return response
    WEBHOOK_ACCEPTED.inc()
    return JsonResponse({"status": "accepted", "delivery_id": delivery.delivery_id}, status=202)
