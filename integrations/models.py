"""Where each outbound stream stands in the ledger (``integrations.streams``)."""
from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.db import models


class StreamCursor(models.Model):
    """One consumer of the ledger in ``seq`` order: a SIEM sink, a webhook subscription, the notifier.

    ``seq`` is the last entry delivered (-1: none yet). ``lease_token``/``leased_until`` make one worker at a
    time the stream's deliverer without holding a database transaction across the network call
    (``integrations.streams.stream_deliver``). Rows are created on first use; deleting one restarts that stream
    from the beginning of the ledger (a replay).
    """

    name = models.CharField(max_length=200, unique=True)
    seq = models.BigIntegerField(default=-1)
    lease_token = models.CharField(max_length=32, blank=True, default="")
    leased_until = models.DateTimeField(null=True, blank=True)
    delivered_total = models.BigIntegerField(default=0)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.seq}"


class WebhookSubscription(models.Model):
    """An outbound webhook: ledger entries matching the filters, signed (Standard Webhooks) to ``url``.

    Its stream is ``webhook:<pk>`` (``integrations.streams``). Changed only through
    ``integrations.webhooks.services`` (InfoSec; each change is a ledger entry, never with the secret).
    ``secret`` is ``whsec_<base64>``: shown once at creation or rotation, never in the ledger, logs, admin or
    delivery log. ``failing_since``/``next_attempt_at`` are the retry state of the entry at the head of the
    stream (the stream never skips an entry: later ones wait behind it, so order is kept).
    """

    ACTIVE = "active"
    PAUSED = "paused"
    FAILING = "failing"
    DELETED = "deleted"
    STATUSES = [(ACTIVE, "active"), (PAUSED, "paused"), (FAILING, "failing (paused after retries ran out)"),
                (DELETED, "deleted")]

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=2000)
    event_types = models.JSONField(default=list)
    subject_type = models.CharField(max_length=100, blank=True, default="")
    subject_id = models.CharField(max_length=300, blank=True, default="")
    secret = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=STATUSES, default=ACTIVE)
    created_by = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    failures_in_row = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"webhook #{self.pk} {self.name}"

    @property
    def stream_name(self) -> str:
        return f"webhook:{self.pk}"

    @property
    def target_origin(self) -> str:
        """Scheme, host and port: what is shown to anyone but InfoSec (a URL's path or query may hold a token)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


class WebhookAttempt(models.Model):
    """One HTTP attempt to deliver one ledger entry to one subscription (the console's delivery log).

    Holds no secret and no signature: the status code, duration, the error and at most
    ``RESPONSE_EXCERPT`` characters of the receiver's answer.
    """

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="attempts")
    seq = models.BigIntegerField()
    event_type = models.CharField(max_length=100)
    webhook_id = models.CharField(max_length=100)
    attempted_at = models.DateTimeField()
    delivered = models.BooleanField(default=False)
    status_code = models.IntegerField(null=True, blank=True)
    duration_ms = models.IntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, default="")
    response_excerpt = models.CharField(max_length=500, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["subscription", "-attempted_at"], name="integ_webhook_attempt_sub"),
                   models.Index(fields=["attempted_at"], name="integ_webhook_attempt_at")]

    def __str__(self) -> str:
        return f"{self.webhook_id} {'delivered' if self.delivered else 'failed'}"
# --- notifications to people (integrations.notifications) ----------------------------------------------------

class NotificationPreference(models.Model):
    """How one person wants to hear of things (``integrations.notifications.services.preference_update``).

    ``channels``: category → ``email`` | ``chat`` | ``none`` (a category absent from it takes its default,
    ``integrations.notifications.rules.CATEGORIES``). ``digest``: how often queued notifications leave, as
    one message per channel. ``chat_url`` is the person's Slack-compatible incoming-webhook URL: a bearer
    secret (whoever holds it may post to that channel), shown masked, never logged, never in an error.
    Presentation of one's own mail, not governance state: no ledger entry (like ``web.ConsolePreference``).
    """

    class Digest(models.TextChoices):
        IMMEDIATE = "immediate", "immediately (coalesced within a minute or two)"
        HOURLY = "hourly", "one digest an hour"
        DAILY = "daily", "one digest a day"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="notification_preference")
    channels = models.JSONField(default=dict, blank=True)
    digest = models.CharField(max_length=10, choices=Digest.choices, default=Digest.IMMEDIATE)
    chat_url = models.CharField(max_length=500, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"user:{self.user_id} {self.digest}"


class Notification(models.Model):
    """One thing one person is to hear of, queued until its digest leaves (``sent_at``).

    Unique per (recipient, source): ``source`` is ``entry:<seq>`` for a ledger entry (delivered at least
    once by the ``notifications`` stream, so a second copy is ignored) or ``grant-expiring:<id>`` for the
    daily scan (once per grant). ``sent_at`` is set only after the SMTP server or the chat receiver
    accepted the message; ``claim_token``/``claimed_until`` make one worker at a time send a row, and a
    worker that dies mid-send leaves the rows to be sent again once its claim runs out (at most one
    duplicate message, never a lost one). ``text`` and ``path`` hold no third party's personal data
    (``integrations.notifications.rules``).
    """

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        DROPPED = "dropped"  # the person chose "none" (or has no address) by the time it was due

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=100)
    category = models.CharField(max_length=40)
    text = models.CharField(max_length=500)
    path = models.CharField(max_length=300)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    channel = models.CharField(max_length=10, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField(db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True, default="")
    claim_token = models.CharField(max_length=32, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["recipient", "source"], name="notification_once_per_source")]
        indexes = [models.Index(fields=["state", "due_at"], name="notification_due")]

    def __str__(self) -> str:
        return f"user:{self.recipient_id} {self.source} {self.state}"
