"""A real server on 127.0.0.1 over the test's committed data, for tests that drive it from outside the test
process or thread (a browser, ``verify.py --tiles``, the ``govern`` CLI)."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.db import connections
from django.test.testcases import LiveServerThread


@contextmanager
def serving(
    *, thread_class: type[LiveServerThread] = LiveServerThread,
    handler: Callable[[Any], Any] = StaticFilesHandler,
) -> Iterator[LiveServerThread]:
    """Start ``thread_class`` on a free port of 127.0.0.1 serving ``handler`` (a WSGI app wrapper), stop it after.

    An in-memory SQLite test database lives in one connection: it is shared with the server thread, as
    Django's LiveServerTestCase does, and unshared when the server has stopped, whether it started or not.
    The caller sets ALLOWED_HOSTS (and whatever else the server must see) before entering.
    """
    shared = {c.alias: c for c in connections.all() if c.vendor == "sqlite" and c.is_in_memory_db()}
    for conn in shared.values():
        conn.inc_thread_sharing()
    server = thread_class("127.0.0.1", handler, connections_override=shared, port=0)
    server.daemon = True
    try:
        server.start()
        server.is_ready.wait()
        if server.error:
            raise server.error
        yield server
    finally:
        server.terminate()
        # Request threads (keep-alive) may still be closing their connection: let them finish first.
        for thread in threading.enumerate():
            if "process_request_thread" in thread.name:
                thread.join(timeout=5)
        for conn in shared.values():
            conn.dec_thread_sharing()
