"""Container HEALTHCHECK: GET /healthz on the local gunicorn (no curl in a slim image)."""
from __future__ import annotations

import os
import sys
import urllib.request

URL = os.environ.get("HEALTHCHECK_URL", "http://127.0.0.1:8000/healthz")

try:
    with urllib.request.urlopen(URL, timeout=4) as response:  # noqa: S310 (a fixed local URL)
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
