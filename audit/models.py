"""Ledger storage.

``PendingEntry`` is the intake queue written inside the caller's transaction;
the sequencer moves committed pending rows into ``Entry`` (assigning ``seq``,
``prev_hash`` and ``subject_prev``) and stores the new Merkle nodes. ``Entry``,
``MerkleNode``, ``Checkpoint``, ``SigningKey`` and ``WitnessCosignature`` are append-only: database
triggers (see ``audit.triggers``) refuse UPDATE, DELETE and TRUNCATE.
"""
from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import models

from audit.canonical import body_bytes


class PendingEntry(models.Model):
    """An event recorded by a committed (or committing) transaction, not yet sequenced."""

    id = models.BigAutoField(primary_key=True)
    timestamp = models.CharField(max_length=27)
    event_type = models.CharField(max_length=100)
    actor_type = models.CharField(max_length=20)
    actor_id = models.CharField(max_length=200)
    subject_type = models.CharField(max_length=100)
    subject_id = models.CharField(max_length=300)
    payload_json = models.TextField()
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    # The HTTP request (or task) that wrote the event; part of the hashed body when set.
    request_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (NULL = not in the body)

    class Meta:
        verbose_name = "pending ledger entry"
        verbose_name_plural = "pending ledger entries"

    def __str__(self) -> str:
        return f"pending #{self.pk} {self.event_type}"


class Entry(models.Model):
    """One sequenced, hash-chained ledger entry. Its body is exactly what is hashed."""

    seq = models.BigIntegerField(primary_key=True)
    timestamp = models.CharField(max_length=27, db_index=True)
    event_type = models.CharField(max_length=100, db_index=True)
    actor_type = models.CharField(max_length=20)
    actor_id = models.CharField(max_length=200)
    subject_type = models.CharField(max_length=100)
    subject_id = models.CharField(max_length=300)
    payload_json = models.TextField()
    prev_hash = models.CharField(max_length=64)
    subject_prev = models.BigIntegerField(null=True, blank=True)
    entry_hash = models.CharField(max_length=64, unique=True)
    # Not part of the hashed body: where the entry came from, for idempotency.
    pending_id = models.BigIntegerField(unique=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    # Hashed (a body member) only when set, so entries without one keep their original bytes.
    request_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (NULL = not in the body)

    class Meta:
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger entries"
        ordering = ["seq"]
        constraints = [models.CheckConstraint(condition=models.Q(seq__gte=0), name="audit_entry_seq_nonnegative")]
        indexes = [
            models.Index(fields=["subject_type", "subject_id", "seq"], name="audit_entry_subject"),
            models.Index(fields=["actor_type", "actor_id", "seq"], name="audit_entry_actor"),
            # The console's search by request id (most entries of a request are written together).
            models.Index(fields=["request_id"], name="audit_entry_request",
                         condition=models.Q(request_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.event_type} {self.subject_type}:{self.subject_id}"

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload_json)
        return value

    @property
    def actor(self) -> dict[str, str]:
        return {"type": self.actor_type, "id": self.actor_id}

    @property
    def subject(self) -> dict[str, str]:
        return {"type": self.subject_type, "id": self.subject_id}

    def canonical_body(self) -> bytes:
        return body_bytes(
            seq=self.seq,
            timestamp=self.timestamp,
            event_type=self.event_type,
            actor_type=self.actor_type,
            actor_id=self.actor_id,
            subject_type=self.subject_type,
            subject_id=self.subject_id,
            payload_json=self.payload_json,
            prev_hash=self.prev_hash,
            subject_prev=self.subject_prev,
            request_id=self.request_id,
        )

    def body(self) -> dict[str, Any]:
        """The entry body as a JSON object (exactly the hashed fields)."""
        value: dict[str, Any] = json.loads(self.canonical_body())
        return value


class MerkleNode(models.Model):
    """A perfect subtree hash; ``key`` packs (index, level) as ``index << 6 | level``."""

    key = models.BigIntegerField(primary_key=True)
    hash = models.BinaryField(max_length=32)

    class Meta:
        verbose_name = "Merkle tree node"

    def __str__(self) -> str:
        return f"node level={self.key & 63} index={self.key >> 6}"


class LedgerHead(models.Model):
    """The sequencer's cursor (a single row). Derived state; verification never trusts it.

    Its row lock is what serialises sequencers: exactly one integrates at a time.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    tree_size = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"ledger head size={self.tree_size}"


class SubjectHead(models.Model):
    """Latest ``seq`` per subject, so the sequencer links ``subject_prev`` in O(1). Derived state."""

    subject_type = models.CharField(max_length=100)
    subject_id = models.CharField(max_length=300)
    last_seq = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subject_type", "subject_id"], name="audit_subjecthead_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.subject_type}:{self.subject_id} -> {self.last_seq}"


class SigningKey(models.Model):
    """A checkpoint signing key's public half, published as a signed-note verifier key."""

    name = models.CharField(max_length=200)
    key_id = models.CharField(max_length=8)  # hex of the 4-byte signed-note key ID
    public_key = models.CharField(max_length=64)  # base64 of the 32-byte Ed25519 key
    verifier_key = models.CharField(max_length=400, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "key_id"], name="audit_signingkey_name_id"),
        ]

    def __str__(self) -> str:
        return self.verifier_key


class Checkpoint(models.Model):
    """A signed tree head in the C2SP tlog-checkpoint format, wrapped in a signed note."""

    id = models.BigAutoField(primary_key=True)
    tree_size = models.BigIntegerField(db_index=True)
    root_hash = models.CharField(max_length=64)
    note = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"checkpoint size={self.tree_size}"


# --- witnesses (c2sp.org/tlog-witness; audit/services/witnessing.py, docs/witness.md) ----------------------------


class WitnessCosignature(models.Model):
    """A witness's cosignature (c2sp.org/tlog-cosignature) of a checkpoint, verified when received.

    Evidence, append-only like the checkpoints (database triggers refuse UPDATE and DELETE).
    Not a ledger entry: recording one would grow the tree and call for yet another checkpoint.
    """

    id = models.BigAutoField(primary_key=True)
    # No database constraint: a deferred foreign-key check would be pending in every transaction that
    # stored a cosignature, and both tables are append-only anyway (an orphan is itself evidence).
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.PROTECT, related_name="cosignatures",
                                   db_constraint=False)
    witness = models.CharField(max_length=200)  # the cosigner's key name
    key_id = models.CharField(max_length=8)  # hex of the 4-byte cosigner key ID
    timestamp = models.BigIntegerField()  # the cosignature's own time (Unix seconds, signed)
    line = models.TextField()  # the signature line as received, ending in a newline
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "witness", "key_id"], name="audit_cosignature_once"),
        ]

    def __str__(self) -> str:
        return f"cosignature by {self.witness} of checkpoint #{self.checkpoint_id}"


class WitnessState(models.Model):
    """What the log knows of one witness (keyed by its verifier key): derived state, never trusted for verification."""

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=200)
    verifier_key = models.CharField(max_length=400, unique=True)
    # The witness's size for our log: the last it cosigned, or the one a believable 409 told us.
    size = models.BigIntegerField(default=0)
    cosigned_size = models.BigIntegerField(default=0)  # the largest size it cosigned for us
    cosigned_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    failures = models.IntegerField(default=0)  # consecutive failed submissions
    refusals = models.BigIntegerField(default=0)  # answers refused so far (a bad or missing cosignature, a lie)
    # The checkpoint size of the last refused answer: the periodic resubmission does not repeat it.
    refused_size = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"witness {self.name} (size {self.size})"


class WitnessQuorumStall(models.Model):
    """A period in which checkpoints did not reach the witness quorum within the deadline (one violation each)."""

    id = models.BigAutoField(primary_key=True)
    tree_size = models.BigIntegerField()  # the first checkpoint size that missed its deadline
    started_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    # True while open, NULL once resolved: the unique index admits one open stall, so two concurrent
    # checks cannot both raise a violation for the same stall.
    is_open = models.BooleanField(null=True, default=True, unique=True)

    def __str__(self) -> str:
        return f"witness quorum stall from size {self.tree_size}"


# --- personal data, kept out of the hashed bodies (crypto-shredding; see docs/pii.md) ---------
# Not append-only: erasing a data subject destroys their key. Rows are never deleted.


class DataSubjectKey(models.Model):
    """A data subject's 32-byte key, wrapped with the KEK. Erasure sets ``key`` to NULL for good."""

    data_subject = models.CharField(max_length=300, unique=True)  # e.g. "user:42"
    # 12-byte nonce || AES-256-GCM(KEK, key) with the data subject as associated data; NULL once erased.
    key = models.BinaryField(max_length=64, null=True, blank=True)
    kek_id = models.CharField(max_length=16)  # which KEK wrapped it (see audit.pii.kek_id)
    created_at = models.DateTimeField(auto_now_add=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "data subject key"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(erased_at__isnull=True, key__isnull=False)
                | models.Q(erased_at__isnull=False, key__isnull=True),
                name="audit_datasubjectkey_key_xor_erased",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.data_subject}{' (erased)' if self.erased_at else ''}"


class PiiValue(models.Model):
    """One personal-data value of an entry payload, encrypted under its data subject's key.

    The payload holds ``{"pii": ref, "commitment": ...}`` instead of the value. Erasure
    clears ``nonce`` and ``ciphertext``; the row stays so the entry shows "[erased]".
    """

    id = models.BigAutoField(primary_key=True)
    ref = models.CharField(max_length=32, unique=True)
    subject_key = models.ForeignKey(DataSubjectKey, on_delete=models.PROTECT, related_name="values")
    nonce = models.BinaryField(max_length=12, null=True, blank=True)
    ciphertext = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "personal data value"

    def __str__(self) -> str:
        return f"personal data {self.ref}"


# --- regulator exports (see audit/export/ and docs/export-format.md) -----------------------------
# Not append-only: a job's progress and outcome are updated while it runs. What was exported,
# by whom and with which scope is in the ledger (``ledger.exported``).
from django.conf import settings as _settings  # noqa: E402


class ExportJob(models.Model):
    """One export of the ledger (a verifiable bundle, a CSV or a model's audit report) and its file."""

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    created_by = models.ForeignKey(
        _settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    format = models.CharField(max_length=10)
    scope = models.JSONField(default=dict)  # exactly as recorded in the ledger.exported entry
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    entries_total = models.BigIntegerField(null=True, blank=True)
    entries_done = models.BigIntegerField(default=0)
    file_path = models.CharField(max_length=1000, blank=True, default="")
    file_size = models.BigIntegerField(null=True, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    ledger_pending_id = models.BigIntegerField(null=True, blank=True)  # the ledger.exported event
    ledger_seq = models.BigIntegerField(null=True, blank=True)
    checkpoint_size = models.BigIntegerField(null=True, blank=True)  # the tree the export is anchored to
    created_at = models.DateTimeField()
    # When its task (``run_export``) was last queued, by the request or by the sweep that re-queues a lost one;
    # None: not the worker's to write (the export_audit command writes its own).
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"export #{self.pk} ({self.format}, {self.state})"


# Operational models (scheduled verification runs, legal holds). Neither is part of the hashed
# ledger: what happened is also recorded as ledger entries (``ledger.verified``,
# ``privacy.legal_hold_created/released``); these rows are the queryable state the dashboard,
# the retention job and the metrics read.
class VerificationRun(models.Model):
    """One scheduled (or manual) verification of the ledger and its outcome."""

    class Mode(models.TextChoices):
        INCREMENTAL = "incremental"
        FULL = "full"

    id = models.BigAutoField(primary_key=True)
    mode = models.CharField(max_length=12, choices=Mode.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    from_size = models.BigIntegerField(default=0)
    tree_size = models.BigIntegerField(default=0)
    ok = models.BooleanField(null=True)  # None while running (or if the worker died mid-run)
    reason = models.CharField(max_length=40, blank=True, default="")
    detail = models.TextField(blank=True, default="")
    first_bad_seq = models.BigIntegerField(null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    # Where the next incremental run resumes: the chain head and the Merkle compact range
    # (``[[level, hex], ...]``) after ``tree_size`` verified entries. Only set on ok runs.
    last_hash = models.CharField(max_length=64, blank=True, default="")
    frontier = models.JSONField(default=list, blank=True)
    root_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["ok", "-tree_size"], name="audit_verif_ok_size")]

    def __str__(self) -> str:
        state = "running" if self.ok is None else ("ok" if self.ok else f"FAILED ({self.reason})")
        return f"{self.mode} verification #{self.pk} [{self.from_size}, {self.tree_size}) {state}"


class LegalHold(models.Model):
    """A legal hold: while active, no retention job erases the data subject's personal data."""

    id = models.BigAutoField(primary_key=True)
    data_subject = models.CharField(max_length=300, db_index=True)  # e.g. "user:42"
    reason = models.TextField()
    reference = models.CharField(max_length=200, blank=True, default="")  # case / matter number
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One active hold per data subject: a second one would make release ambiguous.
            models.UniqueConstraint(
                fields=["data_subject"], condition=models.Q(released_at__isnull=True),
                name="audit_legalhold_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"legal hold #{self.pk} on {self.data_subject}{' (released)' if self.released_at else ''}"

    @property
    def active(self) -> bool:
        return self.released_at is None

