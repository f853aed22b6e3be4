"""The promotion-governance domain: the registry mirror, environments, policies,
promotion requests and their approvals, live deployments, break-glass reviews
and compliance violations.

State only changes through ``governance.services``; these models hold no logic
beyond derived read-only properties.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from access.classification import LEVEL_CHOICES, RESTRICTED
from access.models import Dataset


class RegisteredModel(models.Model):
    """A registered model mirrored from the MLflow registry."""

    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True, default="")
    tags = models.JSONField(default=dict, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_models"
    )
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("view_metadata", "View the model's metadata"),
            ("deploy_to", "Deploy the model"),
            ("approve_promotion", "Approve the model's promotions"),
        ]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One version of a registered model, with what its MLflow run says about it."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    run_id = models.CharField(max_length=64, blank=True, default="")
    source = models.CharField(max_length=1000, blank=True, default="")
    artifact_digest = models.CharField(max_length=100, blank=True, default="")
    # Why ``artifact_digest`` is empty (the artifact_digest gate shows it); "" when it was computed.
    artifact_digest_error = models.CharField(max_length=300, blank=True, default="")
    # SHA-256 of the artifact URI and the (name, size) listing the digest was computed from, and when the
    # bytes were last hashed: an unchanged listing keeps the digest until MLFLOW_DIGEST_RECHECK_HOURS.
    artifact_listing = models.CharField(max_length=80, blank=True, default="")
    artifact_digest_at = models.DateTimeField(null=True, blank=True)
    # MLflow's user_id: client-set free text, shown but never trusted for a rule.
    creator = models.CharField(max_length=256, blank=True, default="")
    # The account the product knows registered the version (an identity link of the MLflow
    # identity, or the API token that reported it); None when no trusted identity exists.
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # How ``registered_by`` was established (one of REGISTERED_VIA); "" while it is None.
    registered_via = models.CharField(max_length=20, blank=True, default="")
    description = models.TextField(blank=True, default="")
    tags = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    datasets = models.JSONField(default=list, blank=True)  # the run's dataset inputs
    # Highest classification of the data it was trained/evaluated on (declared,
    # or from lineage once the access domain computes it).
    data_classification = models.CharField(max_length=20, choices=LEVEL_CHOICES, blank=True, default="")
    mlflow_status = models.CharField(max_length=32, blank=True, default="")
    mlflow_created_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model__name", "-version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="modelversion_unique")]

    def __str__(self) -> str:
        return f"{self.model.name}/{self.version}"

    @property
    def ref(self) -> str:
        return f"{self.model.name}/{self.version}"


#: How a version's ``registered_by`` was established.
VIA_IDENTITY_LINK = "identity_link"
VIA_API_TOKEN = "api_token"  # noqa: S105 - a label, not a secret
REGISTERED_VIA = (VIA_IDENTITY_LINK, VIA_API_TOKEN)


class IdentityLink(models.Model):
    """An MLflow identity (the registry's ``user_id`` of a version) that InfoSec vouched is an account.

    Created and removed only by ``governance.services.identity_links.identity_link_create`` / ``identity_link_remove``.
    The identity string is personal data: the ledger only ever holds it through the commitment scheme.
    """

    mlflow_identity = models.CharField(max_length=256, unique=True)
    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["mlflow_identity"]

    def __str__(self) -> str:
        return f"MLflow identity -> user:{self.account_id}"


class Environment(models.Model):
    """A deployment stage, mapped to an MLflow alias. Promotions go up ``order`` one step at a time."""

    name = models.SlugField(max_length=50, unique=True)
    order = models.PositiveSmallIntegerField(unique=True)
    mlflow_alias = models.CharField(max_length=100, unique=True)
    # The most sensitive training data a model may have been trained on to run here.
    max_data_classification = models.CharField(max_length=20, choices=LEVEL_CHOICES, default=RESTRICTED)
    description = models.CharField(max_length=300, blank=True, default="")
    # Its policies, path (alias, ceiling, place in the order), freeze windows and this flag itself
    # change only with a second InfoSec member's approval (governance.services.change_requests).
    protected = models.BooleanField(default=False)

    class Meta:
        ordering = ["order"]
        permissions = [
            ("deploy_to", "Deploy to the environment"),
            ("approve_promotion", "Approve promotions into the environment"),
        ]

    def __str__(self) -> str:
        return self.name


class FreezeWindow(models.Model):
    """A period during which promotions to an environment are refused (e.g. peak trading)."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="freezes")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["starts_at"]
        constraints = [models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="freeze_ordered")]

    def __str__(self) -> str:
        return f"{self.environment.name} frozen {self.starts_at:%Y-%m-%d %H:%M} to {self.ends_at:%Y-%m-%d %H:%M}"


class PromotionPolicy(models.Model):
    """The rules for promoting into an environment, for all models or one model.

    ``rules`` is a policy document (see ``governance.policy`` and docs/promotions.md);
    it is validated by the service that writes it.
    """

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="policies")
    model = models.ForeignKey(
        RegisteredModel, null=True, blank=True, on_delete=models.PROTECT, related_name="policies"
    )
    rules = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "promotion policies"
        constraints = [
            models.UniqueConstraint(
                fields=["environment"], condition=Q(model__isnull=True), name="policy_one_default_per_env"
            ),
            models.UniqueConstraint(fields=["environment", "model"], name="policy_one_per_model_env"),
        ]

    def __str__(self) -> str:
        return f"policy {self.environment.name}" + (f" for {self.model.name}" if self.model else "")


class PromotionRequest(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        WITHDRAWN = "withdrawn"
        EXPIRED = "expired"
        DEPLOYING = "deploying"
        DEPLOYED = "deployed"
        FAILED = "failed"
        ROLLED_BACK = "rolled_back"
        # Terminal: an approver asked for changes; the requester files a new request after making them.
        CHANGES_REQUESTED = "changes_requested"

    class Strategy(models.TextChoices):
        FULL = "full"
        CANARY = "canary"
        SHADOW = "shadow"

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotions")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="promotions")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING, db_index=True)
    strategy = models.CharField(max_length=10, choices=Strategy.choices, default=Strategy.FULL)
    canary_steps = models.JSONField(default=list, blank=True)  # traffic percents, e.g. [5, 25, 50, 100]
    traffic_percent = models.PositiveSmallIntegerField(default=0)
    reason = models.TextField()
    is_break_glass = models.BooleanField(default=False)
    # Gate results at the last evaluation, and a digest of the evidence approvals are bound to.
    evidence = models.JSONField(default=dict, blank=True)
    evidence_digest = models.CharField(max_length=64, blank=True, default="")
    # The version live in the environment when this one was deployed (for rollback).
    previous_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    deploy_attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    deployed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set when a canary/shadow is reported completed: the main alias is about to move (complete_rollout).
    # Until promotion_alias_applied records it, the alias reconcile treats the move as ours, not out of band.
    rollout_completing_at = models.DateTimeField(null=True, blank=True)
    # The follow-up task asked for after commit and not finished yet (its Celery name; "" none): the outbox the
    # beat's sweep re-queues from when the broker lost it (governance.services.follow_ups). ``follow_up_since``:
    # when it was asked for; ``follow_up_at``: when it was last queued or last started an attempt.
    follow_up = models.CharField(max_length=60, blank=True, default="")
    follow_up_since = models.DateTimeField(null=True, blank=True)
    follow_up_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["environment", "state"], name="promotion_env_state"),
            # The sweep reads only the few requests with a follow-up outstanding.
            models.Index(fields=["follow_up_at"], name="promotion_follow_up_due", condition=~Q(follow_up="")),
        ]
        constraints = [
            # At most one open request per version and environment.
            models.UniqueConstraint(
                fields=["version", "environment"],
                condition=Q(state__in=["pending", "approved", "deploying"]),
                name="promotion_one_open_per_version_env",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.version} → {self.environment.name} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in {self.State.PENDING, self.State.APPROVED, self.State.DEPLOYING}


class Approval(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    request = models.ForeignKey(PromotionRequest, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    # The approval rule (group) this approval counts toward.
    group = models.CharField(max_length=150, blank=True, default="")
    comment = models.TextField()
    evidence_digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "approver"], name="approval_one_per_person"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.approver_id} on #{self.request_id}"


class LiveDeployment(models.Model):
    """Which version serves a model in an environment, and under which promotion.

    Derived from promotions by the services; the admission check reads it.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="live")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="live")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="live")
    promotion = models.ForeignKey(PromotionRequest, on_delete=models.PROTECT, related_name="+")
    since = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "environment"], name="live_one_per_model_env")]

    def __str__(self) -> str:
        return f"{self.version} live in {self.environment.name}"


class DeploymentReceipt(models.Model):
    """The signed deployment receipt of a promotion (docs/receipts.md): at most one per promotion, issued when
    its alias is first applied (``governance.services.receipts``), never changed afterwards.

    ``note`` is the C2SP signed note; its SHA-256 is in the ``promotion.receipt_issued`` entry, so a note
    edited in this table no longer matches the record (and its signature fails).
    """

    promotion = models.OneToOneField(PromotionRequest, on_delete=models.PROTECT, related_name="receipt")
    note = models.TextField()
    note_sha256 = models.CharField(max_length=64)
    approval_event = models.CharField(max_length=100)
    approval_seq = models.BigIntegerField()
    # The verifier key that signed the note (name+id+key), for the console; the note itself is what counts.
    signer = models.CharField(max_length=300)
    issued_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"receipt of promotion #{self.promotion_id}"


class BreakGlassReview(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        APPROVED = "approved"  # concluded: justified
        OVERDUE = "overdue"
        # Concluded: not justified (a compliance violation; the policy may roll the release back).
        UNJUSTIFIED = "unjustified"

    request = models.OneToOneField(PromotionRequest, on_delete=models.PROTECT, related_name="break_glass_review")
    due_at = models.DateTimeField(db_index=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    comment = models.TextField(blank=True, default="")
    reviewed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"break-glass review of #{self.request_id} ({self.state})"


class ComplianceViolation(models.Model):
    class Kind(models.TextChoices):
        OUT_OF_BAND_ALIAS = "out_of_band_alias"
        OVERDUE_BREAK_GLASS_REVIEW = "overdue_break_glass_review"
        CLASSIFICATION = "classification"
        INTEGRITY = "integrity"
        # Break-glass consequences and limits (issue #13, items 8e and 9g).
        UNJUSTIFIED_BREAK_GLASS = "unjustified_break_glass"
        BREAK_GLASS_BUDGET_EXCEEDED = "break_glass_budget_exceeded"

        # An MLflow ``owner`` tag disagrees with the owner assigned in this product (it grants nothing).
        OWNERSHIP_DRIFT = "ownership_drift"
        # A version's MLflow run names datasets the catalog does not know: its classification is unknown.
        UNCATALOGUED_LINEAGE = "uncatalogued_lineage"

    kind = models.CharField(max_length=40, choices=Kind.choices, db_index=True)
    subject_type = models.CharField(max_length=100)
    subject_id = models.CharField(max_length=300)
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    detected_at = models.DateTimeField(auto_now_add=True)
    reverted = models.BooleanField(default=False)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledgement = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-detected_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.summary}"


class WebhookDelivery(models.Model):
    """An accepted MLflow webhook delivery: the replay guard and the outbox of its follow-up (issue #16).

    Written in the transaction that records ``mlflow.webhook_received`` and before the 202 is
    answered, so an accepted delivery is never lost: its follow-up (a sync of ``model``, which
    reverts an out-of-band alias) is ``pending`` until a drain has done it (``done``,
    ``processed_at``). ``attempts`` counts claims; ``next_attempt_at`` is when a drain may claim
    it (again): the retry backoff after a failure, or the lease of a running attempt, so a crash
    mid-sync is retried once the lease lapses. ``last_error`` is the class of the last failure only
    (never a message: MLflow's can carry URLs with credentials). Deliveries that name no model
    (prompts, budget policies) are stored ``done``: nothing follows them.
    """

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        DONE = "done", "done"

    delivery_id = models.CharField(max_length=100, unique=True)
    received_at = models.DateTimeField(auto_now_add=True)
    entity = models.CharField(max_length=50)
    action = models.CharField(max_length=50)
    model = models.CharField(max_length=256, blank=True, default="")
    version = models.CharField(max_length=20, blank=True, default="")
    alias = models.CharField(max_length=100, blank=True, default="")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The drain's query: pending deliveries whose next attempt is due, oldest first.
            models.Index(fields=["state", "next_attempt_at"], name="gov_webhook_outbox_due"),
        ]

    def __str__(self) -> str:
        return self.delivery_id


class WebhookRefusalCounter(models.Model):
    """How many webhook deliveries were refused for one reason in one interval (issue #3).

    Refusals come from unauthenticated callers, so they never write ledger entries of their
    own: each is counted here (an atomic UPDATE, nothing else), and once the interval has
    closed the row is summarised into one ``mlflow.webhook_refusals_summarised`` entry and
    marked ``summarised_at``. No address, delivery id or detail of a caller is kept.
    """

    reason = models.CharField(max_length=50)
    window_start = models.DateTimeField()
    window_seconds = models.PositiveIntegerField()
    window_end = models.DateTimeField()  # window_start + window_seconds: the summariser's filter
    count = models.PositiveBigIntegerField(default=0)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    summarised_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reason", "window_start", "window_seconds"],
                                    name="webhook_refusal_counter_unique_window"),
        ]
        indexes = [models.Index(fields=["summarised_at", "window_end"], name="webhook_refusal_open_idx")]

    def __str__(self) -> str:
        return f"{self.reason} x{self.count} from {self.window_start:%Y-%m-%d %H:%M}"

class GovernanceChangeRequest(models.Model):
    """A proposed change to the rules of a protected environment, applied when a second InfoSec member approves.

    ``change`` holds the validated proposal exactly as it will be applied; ``base_digest`` is the
    digest of the environment's rules when it was proposed, so an approval of a proposal made
    against rules that have since changed is refused as stale (``governance.services.change_requests``).
    """

    class Kind(models.TextChoices):
        POLICY_SET = "policy_set", "set a policy"
        ENVIRONMENT_UPDATE = "environment_update", "change the environment"
        ENVIRONMENT_CREATE = "environment_create", "add an environment before it"
        FREEZE_WINDOW_CREATE = "freeze_window_create", "declare a freeze window"
        ENVIRONMENT_PROTECTION = "environment_protection", "remove its protection"

    class State(models.TextChoices):
        PENDING = "pending"
        APPLIED = "applied"
        REJECTED = "rejected"
        WITHDRAWN = "withdrawn"
        # Left pending longer than CHANGE_REQUEST_EXPIRY_DAYS: nobody may approve it any more.
        EXPIRED = "expired"

    kind = models.CharField(max_length=30, choices=Kind.choices)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="change_requests")
    model = models.ForeignKey(RegisteredModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    change = models.JSONField(default=dict)
    base_digest = models.CharField(max_length=64)
    reason = models.TextField(blank=True, default="")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "environment"], name="govchange_state_env")]

    def __str__(self) -> str:
        return f"change request #{self.pk}: {self.kind} of {self.environment_id} ({self.state})"


class Attestation(models.Model):
    """A CI attestation uploaded for a version: a DSSE envelope or Sigstore bundle, stored as sent.

    Stored is not trusted: the attestation gate verifies it against the environment's trusted signers
    each time it runs. The other columns are what the document says about itself (unverified), for
    lists and the ledger."""

    class Kind(models.TextChoices):
        DSSE = "dsse"
        SIGSTORE_BUNDLE = "sigstore_bundle"

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="attestations")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    sha256 = models.CharField(max_length=64)  # of the uploaded bytes
    document = models.TextField()
    predicate_type = models.CharField(max_length=300)
    subject_digests = models.JSONField(default=list)
    key_ids = models.JSONField(default=list)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["version", "sha256"], name="attestation_unique_per_version")]

    def __str__(self) -> str:
        return f"{self.version} {self.predicate_type} sha256:{self.sha256[:12]}"


# --- lineage: the datasets a model version was trained or evaluated on (moved from access; tables kept) ------


class Lineage(models.Model):
    """A model version was trained or evaluated on a dataset."""

    class Role(models.TextChoices):
        TRAINING = "training"
        EVALUATION = "evaluation"

    class Source(models.TextChoices):
        MLFLOW = "mlflow"  # from the run's dataset inputs
        DECLARED = "declared"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="lineage")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="lineage")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.TRAINING)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.DECLARED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "access_lineage"  # created by access (0002); the table kept its name when the model moved
        constraints = [
            models.UniqueConstraint(fields=["version", "dataset", "role"], name="lineage_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.version} <- {self.dataset} ({self.role})"


# --- django-guardian direct foreign-key permission tables of governance's objects (kept in step with
# access's grants through the resource kinds of governance.access_hooks; created by access, names kept) ------


class RegisteredModelUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        db_table = "access_registeredmodeluserobjectpermission"


class RegisteredModelGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        db_table = "access_registeredmodelgroupobjectpermission"


class EnvironmentUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Environment, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        db_table = "access_environmentuserobjectpermission"


class EnvironmentGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Environment, on_delete=models.CASCADE)

    class Meta(GroupObjectPermissionBase.Meta):
        db_table = "access_environmentgroupobjectpermission"
