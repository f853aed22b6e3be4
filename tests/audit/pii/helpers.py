"""Helpers and independent re-implementations for the personal-data tests (plain functions).

``independent_commitment`` and ``independent_decrypt`` follow docs/pii.md with
primitives only (no ``audit.pii``), so the tests check the documented
construction rather than the code against itself.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.db import connection, transaction

from audit import ledger
from audit.event_types import EventType, Field
from audit.ledger import Actor, Recorded, Subject

# Values that must never appear outside PiiValue ciphertexts (and the reveal's return value).
NAME = "Zebulon Quixote-Vantablack"
EMAIL = "zq.vantablack.7f3a@example.org"
USERNAME = "zquixote7f3a"
PLANTED = (NAME, EMAIL, USERNAME)
SYSTEM = Actor.system("tests")

# A test-only event about a non-user subject, with one personal field and one ordinary field.
CONTACTED = EventType(
    "test.contacted",
    "A test-only event: a model owner was contacted about a model.",
    {"model": Field(), "contact": Field(pii=True), "note": Field(required=False)},
)


def hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def independent_commitment(key: bytes, ref: str, value: Any) -> str:
    message = b"ledger-pii-v1|" + ref.encode() + b"|" + rfc8785.dumps(value)
    return hmac.new(hkdf(key, b"ledger-pii-v1|commit"), message, hashlib.sha256).hexdigest()


def independent_decrypt(key: bytes, ref: str, data_subject: str, nonce: bytes, ciphertext: bytes) -> Any:
    aad = b"ledger-pii-v1|" + ref.encode() + b"|" + data_subject.encode()
    return json.loads(AESGCM(hkdf(key, b"ledger-pii-v1|enc")).decrypt(nonce, ciphertext, aad))


def register_event(
    subject_id: str = "900042", *, username: str = USERNAME, email: str | None = EMAIL, full_name: str | None = NAME,
    key: str | None = None, data_subject: str | None = None,
) -> Recorded:
    """Record ``auth.user_registered`` directly (no auth_user row), about user ``subject_id``."""
    payload: dict[str, Any] = {"username": username}
    if email is not None:
        payload["email"] = email
    if full_name is not None:
        payload["full_name"] = full_name
    with transaction.atomic():  # its own transaction when the caller has none (record() needs one)
        return ledger.record(
            event_type="auth.user_registered", actor=SYSTEM, subject=Subject("user", subject_id), payload=payload,
            idempotency_key=key, data_subject=data_subject,
        )


def all_rows_text() -> str:
    """Every row of every table of the database, as text (bytes decoded leniently)."""
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        chunks.append(bytes(value).decode("utf-8", "replace"))
                    else:
                        chunks.append(str(value))
    return "\n".join(chunks)
