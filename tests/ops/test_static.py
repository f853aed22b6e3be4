"""Static files are served by the app itself (WhiteNoise) with DEBUG off, as in the image."""
from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client


@pytest.mark.parametrize(("path", "content_type"), [
    ("/static/console/console.css", "text/css"),
    ("/static/console/entry-verify.js", "text/javascript"),
    ("/static/admin/css/base.css", "text/css"),
    ("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css", "text/css"),
])
def test_static_files_are_served_without_debug(path: str, content_type: str) -> None:
    assert settings.DEBUG is False  # as under gunicorn in production
    response = Client().get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
    assert "max-age=" in response["Cache-Control"]
    assert b"".join(response.streaming_content)  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_a_missing_static_file_is_a_404() -> None:
    assert Client().get("/static/console/no-such-file.css").status_code == 404
