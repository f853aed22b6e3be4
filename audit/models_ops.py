"""Operational models of the ledger (scheduled verification runs, legal holds). Imported by audit.models.

Neither is part of the hashed ledger: what happened is also recorded as ledger
entries (``ledger.verified``, ``privacy.legal_hold_created/released``); these
rows are the queryable state the dashboard, the retention job and the metrics read.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


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


__all__ = ["LegalHold", "VerificationRun"]
