from __future__ import annotations

import os
import sys

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# A web process loads MLflow now rather than inside the first request that approves a promotion: the
# import takes seconds under the import lock and would stall every thread of the worker. django.setup()
# itself does not import it (governance.registry imports it where it calls it), so manage.py and the
# tests do not pay for it.
import mlflow  # noqa: E402, F401

# Without a broker nothing else runs the beat schedule: a serving process runs it in a thread
# (web/embedded_scheduler.py decides whether this process is one).
from web.embedded_scheduler import start_if_serving  # noqa: E402

start_if_serving(sys.argv, os.environ)
