"""A C2SP tlog-witness that runs apart from the log: ``python -m audit.witness serve ...``.

It cosigns a log's checkpoint only if it is consistent with the last one it cosigned for
that origin, and persists that fact before answering, so that nobody (the log's operator
included) can show two histories or shrink the log without a witness refusing.

Deliberately standalone: it imports the pure modules ``audit.note``, ``audit.cosignature``,
``audit.merkle`` (which pulls ``audit.offline_verify`` and ``audit.canonical``) and the
standard library, never Django, ``governance`` or anything that reads the log's settings or
database. A witness belongs to another trust domain; it must run where the log's code and
credentials are not (docs/witness.md).
"""
