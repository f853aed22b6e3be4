"""Access governance: datasets and their classification, service accounts, time-bound grants
(mirrored into django-guardian), access requests and access reviews.

State only changes through ``access.services``. (Lineage, and guardian's permission tables of
governance's objects, live with those objects in ``governance.models``.) Our ``Grant`` table is the
source of truth; guardian's direct foreign-key permission tables are kept in
step with it so Django's and DRF's object-permission checks work.
"""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from access.classification import LEVEL_CHOICES, PUBLIC

# Permissions a grant can give, and the resource types each applies to.
VIEW_METADATA = "view_metadata"
READ_DATA = "read_data"
TRAIN_ON = "train_on"
DEPLOY_TO = "deploy_to"
APPROVE_PROMOTION = "approve_promotion"
PERMISSIONS = (VIEW_METADATA, READ_DATA, TRAIN_ON, DEPLOY_TO, APPROVE_PROMOTION)
RESOURCE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "dataset": (VIEW_METADATA, READ_DATA, TRAIN_ON),
    "registered_model": (VIEW_METADATA, DEPLOY_TO, APPROVE_PROMOTION),
    "environment": (DEPLOY_TO, APPROVE_PROMOTION),
}
PERMISSION_CHOICES = [(p, p) for p in PERMISSIONS]

# PII categories a dataset or field can carry.
PII_CATEGORIES = (
    "name", "email", "phone", "national_id", "card_pan", "bank_account", "ip_address", "device_id",
    "geo_location", "date_of_birth",
)
# Categories that make data PCI cardholder data (needs InfoSec approval to access).
PCI_CATEGORIES = ("card_pan",)


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_datasets")
    source_uri = models.CharField(max_length=1000, blank=True, default="")
    description = models.TextField(blank=True, default="")
    # The dataset's own classification (its fields may raise the effective level).
    level = models.CharField(max_length=20, choices=LEVEL_CHOICES, default=PUBLIC)
    pii_categories = models.JSONField(default=list, blank=True)
    classified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    classified_at = models.DateTimeField(null=True, blank=True)
    classification_reason = models.TextField(blank=True, default="")
    # Highest of its own level and its fields' levels; kept by the services.
    effective_level = models.CharField(max_length=20, choices=LEVEL_CHOICES, default=PUBLIC, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            (VIEW_METADATA, "View the dataset's metadata"),
            (READ_DATA, "Read the dataset's data"),
            (TRAIN_ON, "Train models on the dataset"),
        ]

    def __str__(self) -> str:
        return self.name


class DatasetField(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="fields")
    name = models.CharField(max_length=200)
    level = models.CharField(max_length=20, choices=LEVEL_CHOICES, default=PUBLIC)
    pii_categories = models.JSONField(default=list, blank=True)
    classified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    classified_at = models.DateTimeField(null=True, blank=True)
    classification_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["dataset", "name"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="datasetfield_unique")]

    def __str__(self) -> str:
        return f"{self.dataset.name}.{self.name}"


class ServiceAccount(models.Model):
    """A machine principal (pipeline, serving platform). Backed by a Django user so object
    permissions apply to it like to anyone; that user cannot log in interactively."""

    name = models.SlugField(max_length=100, unique=True)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="service_account")
    description = models.CharField(max_length=300, blank=True, default="")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    disabled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """An API token of a service account. Only its SHA-256 is kept: the token is shown once.

    Tokens are 256-bit random strings, so a fast hash is as good as a slow one here
    (nothing to brute-force); the ``prefix`` finds the row without a scan and is safe
    to show in lists and logs. Created and revoked only through ``access.services.tokens``.
    """

    service_account = models.ForeignKey(ServiceAccount, on_delete=models.PROTECT, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    revoke_reason = models.CharField(max_length=500, blank=True, default="")
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.service_account.name}/{self.name} ({self.prefix}…)"


class AccessRequest(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        WITHDRAWN = "withdrawn"

    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The principal the access is for (the requester, or a service account they own).
    principal_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    resource_type = models.CharField(max_length=30)
    resource_id = models.PositiveBigIntegerField()
    permission = models.CharField(max_length=30, choices=PERMISSION_CHOICES)
    duration_days = models.PositiveIntegerField()
    justification = models.TextField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING, db_index=True)
    needs_infosec = models.BooleanField(default=False)
    owner_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    infosec_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"request #{self.pk}: {self.permission} on {self.resource_type}:{self.resource_id}"


class Grant(models.Model):
    """A principal may do ``permission`` on a resource until ``expires_at`` (unless revoked first)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="grants"
    )
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT, related_name="grants")
    resource_type = models.CharField(max_length=30)
    resource_id = models.PositiveBigIntegerField()
    permission = models.CharField(max_length=30, choices=PERMISSION_CHOICES)
    expires_at = models.DateTimeField()
    justification = models.TextField()
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    request = models.ForeignKey(AccessRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="grants")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoke_reason = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(group__isnull=True))
                | (Q(user__isnull=True) & Q(group__isnull=False)),
                name="grant_one_principal",
            ),
        ]
        indexes = [
            # The access check: one principal, one resource, one permission, still active.
            models.Index(fields=["user", "resource_type", "resource_id", "permission", "expires_at"],
                         name="grant_check_user", condition=Q(revoked_at__isnull=True)),
            models.Index(fields=["group", "resource_type", "resource_id", "permission", "expires_at"],
                         name="grant_check_group", condition=Q(revoked_at__isnull=True)),
            models.Index(fields=["expires_at"], name="grant_expiry", condition=Q(revoked_at__isnull=True)),
            models.Index(fields=["resource_type", "resource_id"], name="grant_resource"),
        ]

    def __str__(self) -> str:
        who = f"user:{self.user_id}" if self.user_id else f"group:{self.group_id}"
        return f"{who} {self.permission} {self.resource_type}:{self.resource_id}"


class ReviewCampaign(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    deadline = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    report = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class ReviewItem(models.Model):
    class Decision(models.TextChoices):
        PENDING = "pending"
        CERTIFIED = "certified"
        REVOKED = "revoked"

    campaign = models.ForeignKey(ReviewCampaign, on_delete=models.CASCADE, related_name="items")
    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, related_name="review_items")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=Decision.choices, default=Decision.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "grant"], name="reviewitem_unique")]

    def __str__(self) -> str:
        return f"{self.campaign}: {self.grant} ({self.decision})"


# --- django-guardian direct foreign-key permission tables (kept in step with Grant) -------------------


class DatasetUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Dataset, on_delete=models.CASCADE)


class DatasetGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Dataset, on_delete=models.CASCADE)


# --- denied access checks, counted between ledger entries (access.services.checks) ----------------------------


class DenialWindow(models.Model):
    """The open interval of denied checks of one principal, resource and permission.

    The first denial of an interval writes ``access.check_denied`` and opens the row;
    the repeats only bump ``count``/``last_at`` (one UPDATE, no ledger write). When the
    interval is over, ``access.services.checks.check_denials_summarise`` (beat, or lazily the
    next denial) writes ``access.check_denials_summarised`` and the row is closed. The
    unique key is what keeps two concurrent first denials from both writing the entry.
    """

    principal = models.CharField(max_length=200)  # access.services.checks.principal_label: user:<id> or group:<name>
    resource_type = models.CharField(max_length=30)
    resource_id = models.PositiveBigIntegerField()
    permission = models.CharField(max_length=30)
    resource = models.CharField(max_length=250)  # the label at the first denial (for the summary)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["principal", "resource_type", "resource_id", "permission"],
                                    name="denialwindow_one_per_key"),
        ]
        indexes = [models.Index(fields=["first_at"], name="denialwindow_first_at")]

    def __str__(self) -> str:
        return f"{self.principal} {self.permission} {self.resource}: {self.count} since {self.first_at}"


class ExternalIdentity(models.Model):
    """The link from an account to a person at an OpenID provider: the ID token's ``iss`` and ``sub``.

    Single sign-on finds the account by this pair only (never by email or username, which a provider
    may reassign or let users edit). ``last_seen_at`` is the last successful sign-in through the
    provider; accounts not seen for ``OIDC_INACTIVE_DAYS`` are disabled (access.services.sso).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="external_identity_unique_subject"),
            # One person per provider: a second subject of the same issuer never lands on an account.
            models.UniqueConstraint(fields=["issuer", "user"], name="external_identity_one_per_issuer"),
        ]
        indexes = [models.Index(fields=["last_seen_at"], name="external_identity_seen_idx")]

    def __str__(self) -> str:
        return f"{self.issuer} {self.subject} → user:{self.user_id}"


class ApiTokenAddress(models.Model):
    """An address an API token was used from, as a keyed hash (``audit.pii.pseudonym``), never in clear.

    Written by ``access.services.authentication.api_token_address_record`` on the first use from an address,
    which records ``auth.token_first_use_from_address``; the unique constraint makes that once per token and
    address even for concurrent first requests. Goes with its token (telemetry, not a record: the ledger is)."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="addresses")
    address_hash = models.CharField(max_length=64)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["token", "address_hash"], name="api_token_address_once")]

    def __str__(self) -> str:
        return f"{self.token_id}/{self.address_hash[:12]}…"
