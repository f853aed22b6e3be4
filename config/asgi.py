from __future__ import annotations

import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()

# Without a broker a serving process runs the beat schedule in a thread (web/embedded_scheduler.py).
from web.embedded_scheduler import start_if_serving  # noqa: E402

start_if_serving(sys.argv, os.environ)
