"""Input checks shared by the services of access (text, aware datetimes, an active actor)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from access.errors import AccessError, NotPermitted

TEXT_MAX = 5000


def require_text(value: str, what: str, max_length: int = TEXT_MAX) -> str:
    value = (value or "").strip() if isinstance(value, str) else ""
    if not value:
        raise AccessError(f"a {what} is required", code="required")
    if len(value) > max_length:
        raise AccessError(f"the {what} is longer than {max_length} characters", code="too_long")
    return value


def require_aware(value: Any, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise AccessError(f"{what} must be a datetime", code="invalid_datetime")
    if timezone.is_naive(value):
        raise AccessError(f"{what} must be timezone-aware", code="invalid_datetime")
    return value


def require_active(user: User) -> None:
    if not isinstance(user, User) or not user.is_active:
        raise NotPermitted("an inactive account cannot do this", code="inactive")


def clean_text(value: Any, what: str, *, max_length: int = 5000, required: bool = True) -> str:
    if value is not None and not isinstance(value, str):
        raise AccessError(f"the {what} must be text", code="invalid")
    text = (value or "").strip()
    if required and not text:
        raise AccessError(f"a {what} is required", code="required")
    if len(text) > max_length:
        raise AccessError(f"the {what} is longer than {max_length} characters", code="too_long")
    return text


def clean_name(value: Any, what: str) -> str:
    name = clean_text(value, what, max_length=200)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise AccessError(f"the {what} must not contain control characters", code="invalid_name")
    return name
