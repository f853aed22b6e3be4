"""The registry mirror: MLflow's registered models, versions and aliases, reconciled into governance.

MLflow is the source of truth for what exists (models, versions, their runs and
artifacts); governance is the source of truth for what *should* be live where.
These services keep the first mirrored and check the second:

* ``registered_model_upsert`` / ``model_version_upsert`` are the services that write
  the mirror. A first sighting records ``model.registered`` / ``model.version_registered``;
  a change to a version's evidence (artifact digest, description, tags, metrics,
  params, datasets, status) records ``model.version_changed`` with the changed fields
  and re-evaluates the version's pending promotion requests, so approvals given on
  the old evidence go stale.
* ``aliases_reconcile`` compares every alias governance manages (each environment's,
  its canary/shadow candidate aliases, look-alikes in its namespace) with the
  ``LiveDeployment`` and rollouts governance holds. A deployment whose task crashed after moving
  the alias is completed; anything else is an out-of-band change: a compliance
  violation (recorded once per distinct change) and, when the environment's policy
  says ``revert_out_of_band``, the alias is put back.
* ``registry_reconcile`` (the beat task) and ``registered_model_sync`` (one model, after
  a webhook) drive both. Webhooks are hints; this reconcile is the truth.

MLflow is only ever called outside database transactions: the drivers (``registered_model_sync``,
``registry_reconcile``, ``aliases_reconcile``, ``version_data``) read MLflow first through
``governance.registry``, then call a service (one short transaction) with the result. The services
never talk to MLflow.

MLflow grants no rights and sets no evidence (#13). What MLflow says is mirrored and
shown, but nothing a client can write there decides anything here:

* the registered-model tag ``owner`` never makes anyone an owner: ownership is assigned
  by ``governance.services.registered_models.model_owner_set``; a tag that disagrees with it is ``ownership_drift``;
* the version tag ``artifact_digest`` is ignored: the digest is always computed here, a
  SHA-256 over the sorted relative paths and contents of the version's artifact
  directory (``governance.artifact_digest``). A local path is hashed in place; any other store
  (``mlflow-artifacts:``, ``models:/``, ``s3://``...) is listed through MLflow's artifact
  repository, size-checked against ``MLFLOW_DIGEST_MAX_BYTES``/``MLFLOW_DIGEST_MAX_FILES``,
  downloaded into a temporary directory (always removed) and hashed there, so the same
  bytes give the same digest wherever they live (``artifact_digest_of``). When the bytes
  cannot be read the digest is ``""`` and the reason (``artifact_digest_error``) is what
  the ``artifact_digest`` gate shows. A reconcile stays cheap: a remote version whose
  source, run and listing (names, sizes) are unchanged keeps its digest until it is older
  than ``MLFLOW_DIGEST_RECHECK_HOURS``; bytes rewritten in place with the same sizes are
  caught by the first sync after that;
* the version tag ``data_classification`` never sets a classification: that comes from
  the catalog through lineage (``governance.services.lineage``) or a data steward's declaration;
* a version's ``creator`` (MLflow's client-set ``user_id``) is linked to an account only
  through an ``IdentityLink`` InfoSec made (``registered_by``, ``registered_via``).

Personal data: tag values that can name a person (``PERSONAL_TAG_KEYS``) and the
creator go to the ledger only through the personal-data fields of their event types.
"""
from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.ledger import Actor, Subject, record
from governance import lock_objects, registry, selectors
from governance.artifact_digest import artifact_digest_of, previous_digest
from governance.errors import InvalidState, RegistryUnreachable
from governance.models import (
    ComplianceViolation,
    Environment,
    IdentityLink,
    LiveDeployment,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from governance.registry import ModelData, fetch_model, from_millis, is_not_found, iter_models, iter_versions
from governance.services import common, compliance, deployments, model_versions, promotions, registered_models
from governance.services.lineage import lineage_link_from_mlflow
from governance.services.registered_models import OWNER_TAG

# MLflow is imported inside the functions that call it (heavy: about 3 s), for start-up time:
# this module is imported whenever Django starts (through governance.tasks).

logger = logging.getLogger(__name__)
SYNC_ACTOR = Actor.system("mlflow-sync")
RECONCILE_ACTOR = Actor.system("mlflow-reconcile")

#: Version tags a client may set that are NOT trusted: mirrored as tags, never used as evidence.
DIGEST_TAG = "artifact_digest"
CLASSIFICATION_TAG = "data_classification"


#: Tag keys whose values can name a person; their values reach the ledger only as personal data.
PERSONAL_TAG_KEYS = frozenset({
    OWNER_TAG, "mlflow.user", "user", "author", "creator", "created_by", "maintainer", "contact", "email",
})

#: The ledger event for a changed registered model (description, tags). See ``registered_model_upsert``.
MODEL_CHANGED_EVENT = "model.changed"

#: Status of a mirrored version that no longer exists in MLflow.
DELETED_STATUS = "DELETED"

#: While a rollback's alias move is in flight, the alias still names the rolled-back version: not out of band.
ROLLBACK_GRACE = timedelta(minutes=10)

#: After a canary/shadow is reported completed (``PromotionRequest.rollout_completing_at``), the main alias
#: naming its version is complete_rollout's move, not out of band, until promotion_alias_applied records it.
#: Past this, a rollout still not recorded as deployed is judged like any other change of the alias.
ROLLOUT_COMPLETING_GRACE = timedelta(minutes=10)
State = PromotionRequest.State
UNCHANGED, CREATED, CHANGED = "unchanged", "created", "changed"


class SyncError(ValueError):
    """MLflow data that cannot be mirrored as given (the message says why)."""


@dataclass(frozen=True)
class VersionData:
    """A model version as MLflow describes it, with what its run and artifacts say."""

    name: str
    version: int
    run_id: str = ""
    source: str = ""
    creator: str = ""
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    status: str = ""
    created_at: datetime | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    datasets: list[dict[str, str]] = field(default_factory=list)
    artifact_digest: str = ""
    #: Why ``artifact_digest`` is "" (mirrored: a change is recorded and re-evaluates pending requests).
    artifact_digest_error: str = ""
    #: What the digest was computed from and when (bookkeeping to skip re-downloads, not recorded).
    artifact_listing: str = ""
    artifact_digest_at: datetime | None = None

    def mirrored(self) -> dict[str, Any]:
        """The ModelVersion fields this data sets (the ones a change is recorded for)."""
        return {
            "run_id": self.run_id[:64],
            "source": self.source[:1000],
            "creator": self.creator[:256],
            "artifact_digest": self.artifact_digest[:100],
            "artifact_digest_error": self.artifact_digest_error[:300],
            "description": self.description,
            "tags": dict(self.tags),
            "metrics": dict(self.metrics),
            "params": dict(self.params),
            "datasets": list(self.datasets),
            "mlflow_status": self.status[:32],
        }

    def digest_bookkeeping(self) -> dict[str, Any]:
        """The ModelVersion fields saying what the digest was computed from (updated without a ledger entry)."""
        return {"artifact_listing": self.artifact_listing[:80], "artifact_digest_at": self.artifact_digest_at}


@dataclass
class ReconcileReport:
    """What a reconcile (of the whole registry or one model) found and did."""

    models_seen: int = 0
    models_created: int = 0
    models_changed: int = 0
    versions_seen: int = 0
    versions_created: int = 0
    versions_changed: int = 0
    versions_missing: int = 0
    deployments_completed: int = 0
    violations: int = 0
    aliases_reverted: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lines = [
            f"models: {self.models_seen} seen, {self.models_created} new, {self.models_changed} changed",
            f"versions: {self.versions_seen} seen, {self.versions_created} new, {self.versions_changed} changed, "
            f"{self.versions_missing} gone from MLflow",
            f"aliases: {self.deployments_completed} interrupted deployments completed, "
            f"{self.violations} out-of-band changes recorded, {self.aliases_reverted} reverted",
        ]
        lines += [f"error: {e}" for e in self.errors]
        return "\n".join(lines)


def _metric(value: Any) -> Any:
    # NaN and infinities have no JSON form: keep them visible as text (gates read only numbers).
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _run(run_id: str, cache: dict[str, Any]) -> Any:
    """The MLflow run (None when there is none or it was purged), fetched once per sync."""
    from mlflow.exceptions import MlflowException  # heavy: imported on first use, for start-up time

    if not run_id:
        return None
    if run_id not in cache:
        try:
            cache[run_id] = registry.client().get_run(run_id)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
            cache[run_id] = None
    return cache[run_id]


def _datasets(run: Any) -> list[dict[str, str]]:
    inputs = getattr(run, "inputs", None)
    found = []
    for item in getattr(inputs, "dataset_inputs", None) or []:
        ds = item.dataset
        context = next((t.value for t in item.tags or [] if t.key == "mlflow.data.context"), "")
        found.append({
            "name": str(ds.name or ""),
            "digest": str(ds.digest or ""),
            "source_type": str(ds.source_type or ""),
            "source": str(ds.source or "")[:1000],
            "context": str(context or ""),
        })
    return sorted(found, key=lambda d: (d["context"], d["name"], d["digest"], d["source"]))


def version_data(mv: Any, *, run_cache: dict[str, Any] | None = None) -> VersionData:
    """Everything governance mirrors of one MLflow model version (MLflow calls and reads of the mirror only)."""
    cache = run_cache if run_cache is not None else {}
    run_id = mv.run_id or ""
    run = _run(run_id, cache)
    tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
    metrics: dict[str, Any] = {}
    params: dict[str, str] = {}
    creator = mv.user_id or ""
    if run is not None:
        metrics = {k: _metric(v) for k, v in (run.data.metrics or {}).items()}
        params = {k: str(v) for k, v in (run.data.params or {}).items()}
        # The SQL registry stores no user for a version; the run's user trained it.
        creator = creator or run.info.user_id or ""
    # Never the artifact_digest tag: whoever can tag a version could vouch for other bytes.
    digest = artifact_digest_of(mv, run, previous=previous_digest(mv))
    return VersionData(
        name=mv.name,
        version=int(mv.version),
        run_id=run_id,
        source=mv.source or "",
        creator=creator,
        description=mv.description or "",
        tags=tags,
        status=str(mv.status or ""),
        created_at=from_millis(mv.creation_timestamp),
        metrics=metrics,
        params=params,
        datasets=_datasets(run) if run is not None else [],
        artifact_digest=digest.digest,
        artifact_digest_error=digest.error,
        artifact_listing=digest.listing,
        artifact_digest_at=digest.computed_at,
    )


def is_personal_tag(key: str) -> bool:
    """Whether a tag's value can name a person (its value is then personal data in the ledger)."""
    low = key.lower()
    return low in PERSONAL_TAG_KEYS or low.endswith((".user", "_user", "email", ".owner", "_owner"))


def split_personal(tags: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``tags`` split into (plain tags, tags whose values can name a person)."""
    plain = {k: v for k, v in tags.items() if not is_personal_tag(k)}
    return plain, {k: v for k, v in tags.items() if is_personal_tag(k)}


def identity_subject(identity: str) -> str:
    """The data subject of an MLflow identity's values: its linked account, else a pseudonymous id.

    A linked identity's values are erased with the account (``user:<id>``); an unlinked one is
    ``mlflow_identity:<sha256 prefix>`` so that InfoSec can still erase it on request.
    """
    link = IdentityLink.objects.filter(mlflow_identity=identity).values_list("account_id", flat=True).first()
    if link is not None:
        return f"user:{link}"
    return "mlflow_identity:" + hashlib.sha256(identity.encode()).hexdigest()[:32]


def _tags_subject(personal: Mapping[str, Any]) -> str:
    named = str(personal.get(OWNER_TAG) or next((v for v in personal.values() if v), "") or "unknown")
    return identity_subject(named)


def _personal_change(name: str, old: Any, new: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ``{"from", "to"}`` change of a tag dict split into its plain and its personal part."""
    old_plain, old_personal = split_personal(old or {})
    new_plain, new_personal = split_personal(new or {})
    plain = {name: {"from": old_plain, "to": new_plain}} if old_plain != new_plain else {}
    personal = {name: {"from": old_personal, "to": new_personal}} if old_personal != new_personal else {}
    return plain, personal


def _link_lineage(version: ModelVersion, actor: Actor) -> None:
    """Access catalog: link the version to the catalogued datasets its run's inputs name, and re-derive
    its classification from them (``lineage.linked``, ``model.version_classified``)."""
    lineage_link_from_mlflow(version=version, actor=actor)
    version.refresh_from_db(fields=["data_classification"])


def _reevaluate_pending(versions: Any, actor: Actor) -> None:
    for request in PromotionRequest.objects.filter(version__in=versions, state=State.PENDING).order_by("pk"):
        promotions.promotion_reevaluate(promotion=request, actor=actor)


@transaction.atomic
def registered_model_upsert(*, data: ModelData, actor: Actor = SYNC_ACTOR) -> tuple[RegisteredModel, str]:
    """Create or update the mirror of a registered model. Returns it and "created", "changed" or "unchanged".

    The mirror never sets the owner: MLflow's ``owner`` tag is kept as a tag, and when it
    disagrees with the owner assigned here it is recorded as ``ownership_drift``
    (``registered_models.model_ownership_drift_check``). A change of description or tags is
    recorded as ``model.changed``; tags that can name a person go to ``personal_changes``.
    """
    if not data.name or len(data.name) > 256:
        raise SyncError("a registered model name must have 1 to 256 characters")
    now = timezone.now()
    model = lock_objects.registered_models_lock().filter(name=data.name).first()
    if model is None:
        try:
            with transaction.atomic():
                model = RegisteredModel.objects.create(
                    name=data.name, description=data.description, tags=dict(data.tags),
                    mlflow_created_at=data.created_at, synced_at=now,
                )
        except IntegrityError:  # a concurrent sync created it first
            model = lock_objects.registered_models_lock().get(name=data.name)
        else:
            plain, personal = split_personal(data.tags)
            record(
                event_type="model.registered",
                actor=actor,
                subject=Subject("registered_model", model.name),
                payload={"model": model.name, "description": data.description, "tags": plain,
                         **({"personal_tags": personal} if personal else {})},
                data_subject=_tags_subject(personal) if personal else None,
            )
            return model, CREATED
    previous_tags = dict(model.tags or {})
    changes: dict[str, Any] = {}
    personal_changes: dict[str, Any] = {}
    if model.description != data.description:
        changes["description"] = {"from": model.description, "to": data.description}
    if previous_tags != dict(data.tags):
        plain, personal = _personal_change("tags", previous_tags, dict(data.tags))
        changes.update(plain)
        personal_changes.update(personal)
    if not changes and not personal_changes:
        RegisteredModel.objects.filter(pk=model.pk).update(synced_at=now)
        registered_models.model_ownership_drift_check(model=model, previous_tags=previous_tags, actor=actor)
        return model, UNCHANGED
    model.description = data.description
    model.tags = dict(data.tags)
    model.synced_at = now
    if model.mlflow_created_at is None:
        model.mlflow_created_at = data.created_at
    model.save(update_fields=["description", "tags", "synced_at", "mlflow_created_at"])
    record(
        event_type=MODEL_CHANGED_EVENT,
        actor=actor,
        subject=Subject("registered_model", model.name),
        payload={"model": model.name, "changes": changes,
                 **({"personal_changes": personal_changes} if personal_changes else {})},
        data_subject=_tags_subject(split_personal(data.tags)[1] or split_personal(previous_tags)[1])
        if personal_changes else None,
    )
    registered_models.model_ownership_drift_check(model=model, previous_tags=previous_tags, actor=actor)
    # The model's description is the model card of versions without their own.
    _reevaluate_pending(model.versions.all(), actor)
    return model, CHANGED


_CHANGE_LABELS = {"mlflow_status": "status"}


def _apply_identity_link(version: ModelVersion, actor: Actor) -> bool:
    """Link a version with no trusted registrant to the account its creator's identity link names."""
    if version.registered_by_id is not None or not version.creator:
        return False
    link = IdentityLink.objects.filter(mlflow_identity=version.creator).first()
    if link is None:
        return False
    model_versions.model_version_registrant_link(version=version, account=link.account, via_link=link, actor=actor)
    version.refresh_from_db(fields=["registered_by", "registered_via"])
    return True


@transaction.atomic
def model_version_upsert(
    *, model: RegisteredModel, data: VersionData, actor: Actor = SYNC_ACTOR
) -> tuple[ModelVersion, str]:
    """Create or update the mirror of a model version. Returns it and "created", "changed" or "unchanged".

    A new version records ``model.version_registered``; a changed one records
    ``model.version_changed`` with ``{field: {"from", "to"}}`` for each changed field and
    re-evaluates its pending promotion requests. The creator and tags that can name a
    person are personal data (``creator``, ``personal_changes``). A ``data_classification``
    tag sets nothing: a new version, or one whose dataset inputs changed, is linked to
    the catalogued datasets its run names and takes its classification from them
    (``governance.services.lineage.lineage_link_from_mlflow``). A version whose creator has an
    ``IdentityLink`` and no trusted registrant yet gets one (``model.version_registrant_linked``).
    """
    if data.name != model.name:
        raise SyncError(f"version data of {data.name!r} given for model {model.name!r}")
    if data.version < 1:
        raise SyncError("a model version number must be positive")
    now = timezone.now()
    fields = data.mirrored()
    version = lock_objects.model_versions_lock().filter(model=model, version=data.version).first()
    if version is None:
        try:
            with transaction.atomic():
                version = ModelVersion.objects.create(
                    model=model, version=data.version, mlflow_created_at=data.created_at, synced_at=now, **fields,
                    **data.digest_bookkeeping(),
                )
        except IntegrityError:  # a concurrent sync created it first
            version = lock_objects.model_versions_lock().get(model=model, version=data.version)
        else:
            record(
                event_type="model.version_registered",
                actor=actor,
                subject=common.version_subject(version),
                payload={"model": model.name, "version": version.version, "run_id": version.run_id,
                         "source": version.source, "artifact_digest": version.artifact_digest,
                         "creator": version.creator or None, "metrics": version.metrics,
                         "datasets": version.datasets},
                data_subject=identity_subject(version.creator) if version.creator else None,
            )
            _apply_identity_link(version, actor)
            _link_lineage(version, actor)  # access catalog
            return version, CREATED
    changes: dict[str, Any] = {}
    personal_changes: dict[str, Any] = {}
    for name, value in fields.items():
        old = getattr(version, name)
        if old == value:
            continue
        if name == "tags":
            plain, personal = _personal_change("tags", old, value)
            changes.update(plain)
            personal_changes.update(personal)
        elif name == "creator":
            personal_changes["creator"] = {"from": old, "to": value}
        else:
            changes[_CHANGE_LABELS.get(name, name)] = {"from": old, "to": value}
    if not changes and not personal_changes:
        ModelVersion.objects.filter(pk=version.pk).update(synced_at=now, **data.digest_bookkeeping())
        if _apply_identity_link(version, actor):
            _reevaluate_pending([version], actor)
            return version, CHANGED
        return version, UNCHANGED
    for name, value in {**fields, **data.digest_bookkeeping()}.items():
        setattr(version, name, value)
    version.synced_at = now
    if version.mlflow_created_at is None:
        version.mlflow_created_at = data.created_at
    record(
        event_type="model.version_changed",
        actor=actor,
        subject=common.version_subject(version),
        payload={"model": model.name, "version": version.version, "changes": changes,
                 **({"personal_changes": personal_changes} if personal_changes else {})},
        data_subject=identity_subject(version.creator or "unknown") if personal_changes else None,
    )
    version.save()
    _apply_identity_link(version, actor)
    if "datasets" in changes:
        _link_lineage(version, actor)  # access catalog
    _reevaluate_pending([version], actor)
    return version, CHANGED


@transaction.atomic
def model_version_mark_missing(*, version: ModelVersion, actor: Actor = SYNC_ACTOR) -> bool:
    """A mirrored version is gone from MLflow: its status becomes DELETED (the row stays: history refers to it)."""
    version = lock_objects.model_versions_lock().select_related("model").get(pk=version.pk)
    if version.mlflow_status == DELETED_STATUS:
        return False
    record(
        event_type="model.version_changed",
        actor=actor,
        subject=common.version_subject(version),
        payload={"model": version.model.name, "version": version.version,
                 "changes": {"status": {"from": version.mlflow_status, "to": DELETED_STATUS}}},
    )
    version.mlflow_status = DELETED_STATUS
    version.synced_at = timezone.now()
    version.save(update_fields=["mlflow_status", "synced_at"])
    _reevaluate_pending([version], actor)
    return True


def _open_alias_violation(
    model: RegisteredModel, alias: str, found: int | None, expected: int | None
) -> ComplianceViolation | None:
    """The latest out-of-band violation of ``alias`` if it is this same change and not reverted."""
    latest = next(
        (
            v
            for v in ComplianceViolation.objects.filter(
                kind=ComplianceViolation.Kind.OUT_OF_BAND_ALIAS, subject_type="registered_model",
                subject_id=model.name,
            ).order_by("-pk")
            if v.details.get("alias") == alias
        ),
        None,
    )
    if latest is None or latest.reverted:
        return None
    same = latest.details.get("found_version") == found and latest.details.get("expected_version") == expected
    return latest if same else None


#: What governance expects of an alias, by its role: the live version, a rollout's candidate, or nothing.
LIVE_ROLE, UNMANAGED_ROLE = "live", "unmanaged"


def _alias_summary(
    model: RegisteredModel, environment: Environment, alias: str, role: str, found: int | None,
    expected: int | None,
) -> str:
    found_text = f"version {found}" if found is not None else "no version"
    if role == LIVE_ROLE:
        expected_text = f"version {expected}" if expected is not None else "no version (nothing is live)"
        return (f"MLflow alias {alias!r} of {model.name} points at {found_text}; governance has {expected_text} live "
                f"in {environment.name}. The alias was changed outside governance.")
    if role == UNMANAGED_ROLE:
        return (f"MLflow alias {alias!r} of {model.name} points at {found_text}; it is in the namespace of "
                f"{environment.name}'s alias {environment.mlflow_alias!r} but governance manages no such alias. "
                f"It was set outside governance.")
    expected_text = (f"version {expected} rolling out" if expected is not None
                     else f"no {role} rollout in progress")
    return (f"MLflow alias {alias!r} of {model.name} points at {found_text}; governance has {expected_text} "
            f"in {environment.name}. The alias was changed outside governance.")


@transaction.atomic
def alias_out_of_band_record(
    *, model: RegisteredModel, environment: Environment, found_version: int | None, expected_version: int | None,
    alias: str | None = None, role: str = LIVE_ROLE, actor: Actor = RECONCILE_ACTOR,
) -> tuple[ComplianceViolation, bool]:
    """Record an out-of-band change of an alias governance manages, once per distinct change.

    ``alias`` defaults to the environment's own alias (``role`` ``"live"``); a rollout's
    candidate alias passes its strategy as ``role``, a look-alike in the environment's
    namespace ``"unmanaged"``. Returns the violation and whether it was recorded now
    (False: this very change is already recorded and not reverted, so nothing is written again).
    """
    lock_objects.registered_models_lock().filter(pk=model.pk).first()  # one reconciler per model at a time
    alias = alias if alias is not None else environment.mlflow_alias
    existing = _open_alias_violation(model, alias, found_version, expected_version)
    if existing is not None:
        return existing, False
    violation = compliance.violation_record(
        kind=ComplianceViolation.Kind.OUT_OF_BAND_ALIAS,
        subject=Subject("registered_model", model.name),
        summary=_alias_summary(model, environment, alias, role, found_version, expected_version),
        details={"model": model.name, "alias": alias, "environment": environment.name,
                 "found_version": found_version, "expected_version": expected_version},
        actor=actor,
    )
    return violation, True


@transaction.atomic
def alias_revert_record(
    *, violation: ComplianceViolation, restored_version: int | None, actor: Actor = RECONCILE_ACTOR
) -> ComplianceViolation:
    """The alias of an out-of-band violation was put back in MLflow: mark it reverted and record it."""
    violation = lock_objects.violations_lock().get(pk=violation.pk)
    if violation.reverted:
        return violation
    violation.reverted = True
    violation.save(update_fields=["reverted"])
    details = violation.details
    record(
        event_type="mlflow.alias_reverted",
        actor=actor,
        subject=Subject(violation.subject_type, violation.subject_id),
        payload={"model": details["model"], "alias": details["alias"], "found_version": details["found_version"],
                 "restored_version": restored_version},
    )
    return violation


#: The strategies that roll out under a candidate alias ``<environment alias>-<strategy>`` (deployments.rollout_alias).
CANDIDATE_STRATEGIES: tuple[str, ...] = (PromotionRequest.Strategy.CANARY, PromotionRequest.Strategy.SHADOW)


def _rollback_in_flight(model: RegisteredModel, environment: Environment, found: int) -> bool:
    """``found`` is the version of a promotion rolled back moments ago (its alias move may still be queued)."""
    return PromotionRequest.objects.filter(
        version__model=model, version__version=found, environment=environment, state=State.ROLLED_BACK,
        finished_at__gte=timezone.now() - ROLLBACK_GRACE,
    ).exists()


def _candidate_removal_in_flight(model: RegisteredModel, environment: Environment, strategy: str, found: int) -> bool:
    """``found`` is the candidate of a rollout that failed moments ago: ``remove_candidate_alias`` may be queued."""
    return PromotionRequest.objects.filter(
        version__model=model, version__version=found, environment=environment, strategy=strategy,
        state=State.FAILED, finished_at__gte=timezone.now() - ROLLBACK_GRACE,
    ).exists()


def _rollouts_deploying(model: RegisteredModel) -> dict[tuple[int, str], list[int]]:
    """The versions of ``model``'s canary/shadow rollouts in progress, by (environment id, strategy), newest first."""
    out: dict[tuple[int, str], list[int]] = {}
    rows = (
        PromotionRequest.objects.filter(version__model=model, state=State.DEPLOYING, strategy__in=CANDIDATE_STRATEGIES)
        .order_by("-pk")
        .values_list("environment_id", "strategy", "version__version")
    )
    for environment_id, strategy, number in rows:
        out.setdefault((environment_id, strategy), []).append(number)
    return out


def _namespace_owner(alias: str, environments: list[Environment]) -> Environment | None:
    """The environment whose alias namespace (``<alias>-…``) ``alias`` is in; the longest prefix wins."""
    owners = [e for e in environments if alias.startswith(f"{e.mlflow_alias}-")]
    return max(owners, key=lambda e: len(e.mlflow_alias), default=None)


def _current_aliases(model: RegisteredModel) -> dict[str, int]:
    from mlflow.exceptions import MlflowException  # heavy: imported on first use, for start-up time

    try:
        return registry.aliases(model.name)
    except MlflowException as exc:
        if is_not_found(exc):
            return {}
        raise


def _deployment_in_flight(
    model: RegisteredModel, environment: Environment, found: int | None, report: ReconcileReport
) -> bool:
    """The environment's alias names a version on its way in or out, not an out-of-band change.

    A full promotion still ``deploying`` whose task moved the alias and stopped before
    recording it is completed here; a rollback whose alias move is queued is left to its task.
    """
    if found is None:
        return False
    deploying = PromotionRequest.objects.filter(
        version__model=model, version__version=found, environment=environment, state=State.DEPLOYING,
        strategy=PromotionRequest.Strategy.FULL,
    ).first()
    if deploying is not None:
        try:
            deployments.promotion_alias_applied(promotion=deploying, alias=environment.mlflow_alias)
        except InvalidState:
            return True  # the deploy task recorded it in the meantime
        report.deployments_completed += 1
        logger.info("completed interrupted deployment #%s of %s", deploying.pk, model.name)
        return True
    return _rollout_completing(model, environment, found) or _rollback_in_flight(model, environment, found)


def _rollout_completing(model: RegisteredModel, environment: Environment, found: int) -> bool:
    """``found`` is the version of a canary/shadow reported completed within ``ROLLOUT_COMPLETING_GRACE``:
    complete_rollout moved the main alias and has yet to record it (left to the task, which also removes
    the candidate alias)."""
    return PromotionRequest.objects.filter(
        version__model=model, version__version=found, environment=environment, state=State.DEPLOYING,
        strategy__in=CANDIDATE_STRATEGIES, rollout_completing_at__gte=timezone.now() - ROLLOUT_COMPLETING_GRACE,
    ).exists()


def _flag_and_revert(
    model: RegisteredModel, environment: Environment, alias: str, role: str, found: int | None,
    expected: int | None, report: ReconcileReport,
) -> None:
    """Record the out-of-band change (once) and, if the environment's policy says so, put the alias back."""
    violation, recorded = alias_out_of_band_record(
        model=model, environment=environment, alias=alias, role=role, found_version=found, expected_version=expected
    )
    if recorded:
        report.violations += 1
        logger.warning("out-of-band change of alias %s of %s in %s", alias, model.name, environment.name)
    policy, _ = selectors.policy_for(environment=environment, model_id=model.pk)
    if not policy.revert_out_of_band:
        return
    try:
        # Put back only what was judged: a deploy task may have set the alias since it was read.
        if registry.alias_version(model.name, alias) != found:
            return
        if expected is None:
            registry.delete_alias(model.name, alias)
        else:
            registry.set_alias(model.name, alias, expected)
    except registry.REGISTRY_ERRORS as exc:
        report.errors.append(f"{model.name}: could not revert alias {alias}: {type(exc).__name__}")
        logger.warning("could not revert alias %s of %s: %s", alias, model.name, type(exc).__name__)
        return
    alias_revert_record(violation=violation, restored_version=expected)
    report.aliases_reverted += 1


def aliases_reconcile(model: RegisteredModel, *, report: ReconcileReport | None = None) -> ReconcileReport:
    """Compare every MLflow alias of ``model`` that governance manages with what governance holds.

    Each environment's alias ``<alias>`` must name the live version (or not exist):

    * it names the version of a full promotion still ``deploying``: the deploy task
      moved the alias and stopped before recording it; the deployment is completed;
    * it names the version of a canary/shadow reported completed within ``ROLLOUT_COMPLETING_GRACE``
      (``rollout_completing_at``): complete_rollout moved it and has yet to record it;
    * it names a version rolled back within ``ROLLBACK_GRACE``: the alias move is queued.

    Each candidate alias ``<alias>-canary`` / ``<alias>-shadow`` must name the version of a
    canary/shadow rollout of that environment in progress (``deploying``), else not exist:

    * missing while such a rollout is deploying: the deploy task has yet to set it;
    * naming a rollout that failed within ``ROLLBACK_GRACE``: its removal is queued.

    Any other alias in an environment's namespace (``<alias>-<anything>``) is reserved to
    governance and must not exist.

    Anything else is an out-of-band change: a compliance violation of kind
    ``out_of_band_alias`` (once per distinct change) and, if the environment's policy says
    ``revert_out_of_band``, the alias is put back (to the live or deploying version) or
    removed. MLflow is read before the database so a deploy task's change is never
    mistaken for an out-of-band one.
    """
    report = report if report is not None else ReconcileReport()
    found_aliases = _current_aliases(model)
    live = {
        d.environment_id: d.version.version
        for d in LiveDeployment.objects.filter(model=model).select_related("version")
    }
    rollouts = _rollouts_deploying(model)
    environments = list(Environment.objects.order_by("order"))
    managed: set[str] = set()
    for environment in environments:
        alias = environment.mlflow_alias
        managed.add(alias)
        found, expected = found_aliases.get(alias), live.get(environment.pk)
        if found != expected and not _deployment_in_flight(model, environment, found, report):
            _flag_and_revert(model, environment, alias, LIVE_ROLE, found, expected, report)
        for strategy in CANDIDATE_STRATEGIES:
            candidate = f"{alias}-{strategy}"
            managed.add(candidate)
            deploying = rollouts.get((environment.pk, strategy), [])
            found = found_aliases.get(candidate)
            if found is None or found in deploying:
                continue
            if _candidate_removal_in_flight(model, environment, strategy, found):
                continue
            _flag_and_revert(model, environment, candidate, strategy, found, deploying[0] if deploying else None,
                             report)
    for alias, found in sorted(found_aliases.items()):
        owner = None if alias in managed else _namespace_owner(alias, environments)
        if owner is not None:
            _flag_and_revert(model, owner, alias, UNMANAGED_ROLE, found, None, report)
    return report


def _sync_versions(model: RegisteredModel, report: ReconcileReport) -> None:
    cache: dict[str, Any] = {}
    seen: set[int] = set()
    for mv in iter_versions(model.name):
        data = version_data(mv, run_cache=cache)
        seen.add(data.version)
        report.versions_seen += 1
        _, outcome = model_version_upsert(model=model, data=data)
        report.versions_created += outcome == CREATED
        report.versions_changed += outcome == CHANGED
    _mark_missing(model.versions.exclude(version__in=seen), report)


def _mark_missing(versions: Any, report: ReconcileReport) -> None:
    for version in versions.exclude(mlflow_status=DELETED_STATUS):
        report.versions_missing += model_version_mark_missing(version=version)


def _sync_model_data(data: ModelData, report: ReconcileReport) -> RegisteredModel:
    model, outcome = registered_model_upsert(data=data)
    report.models_seen += 1
    report.models_created += outcome == CREATED
    report.models_changed += outcome == CHANGED
    _sync_versions(model, report)
    aliases_reconcile(model, report=report)
    return model


def registered_model_sync(name: str, *, report: ReconcileReport | None = None) -> ReconcileReport:
    """Mirror one registered model and its versions from MLflow, then reconcile its aliases.

    A model gone from MLflow keeps its mirror (history refers to it); its versions are
    marked DELETED and its aliases are still checked against what is live.
    """
    report = report if report is not None else ReconcileReport()
    data = fetch_model(name)
    if data is not None:
        _sync_model_data(data, report)
        return report
    model = RegisteredModel.objects.filter(name=name).first()
    if model is not None:
        _mark_missing(model.versions.all(), report)
        aliases_reconcile(model, report=report)
    return report


def version_evidence_refresh(*, version: ModelVersion) -> bool:
    """Re-read ``version`` and its registered model from MLflow now, and mirror what changed; True if anything did.

    For decisions that must not rest on a stale mirror (``promotion_approve``, the deploy task): MLflow
    sends no webhook when a model card (description) or a registered model's tags are edited, so the
    mirror can be as old as the last sweep. Reads MLflow first, outside any transaction, then writes
    through the mirror's services (``registered_model_upsert``, ``model_version_upsert``): a change is
    recorded (``model.changed``, ``model.version_changed``) and re-evaluates the pending requests it
    concerns, exactly as a sync would. A version or model gone from MLflow is marked ``DELETED``.

    Raises ``RegistryUnreachable`` when MLflow cannot be read; nothing is written then. Aliases are not
    reconciled here (the sync and the sweep do that): this is about evidence.
    """
    from mlflow.exceptions import MlflowException  # heavy: imported on first use, for start-up time

    name = version.model.name
    try:
        model_found = fetch_model(name)
        data = None
        if model_found is not None:
            try:
                mv = registry.client().get_model_version(name, str(version.version))
            except MlflowException as exc:
                if not is_not_found(exc):
                    raise
            else:
                data = version_data(mv)
    except registry.REGISTRY_ERRORS as exc:
        logger.warning("evidence of %s could not be re-read from MLflow: %s", version.ref, type(exc).__name__)
        raise RegistryUnreachable(
            f"the MLflow registry could not be reached to re-read the evidence of {version.ref} "
            f"({type(exc).__name__}); nothing was decided: try again shortly"
        ) from exc
    if model_found is None:
        return model_version_mark_missing(version=version)
    model, model_outcome = registered_model_upsert(data=model_found)
    if data is None:
        return model_version_mark_missing(version=version) or model_outcome == CHANGED
    _, outcome = model_version_upsert(model=model, data=data)
    return CHANGED in (model_outcome, outcome)


def registry_reconcile(*, progress: Callable[[int, int | None], None] | None = None) -> ReconcileReport:
    """Reconcile the whole registry: every model and version, then every model's aliases.

    An MLflow failure propagates (the task retries); a model whose data cannot be
    mirrored is reported in ``errors`` and the others go on. ``progress(done, total)``
    is called after each model; MLflow's search gives no count, so ``total`` is the
    mirror's model count, raised as models it does not know yet appear.
    """
    report = ReconcileReport()
    seen: set[str] = set()
    mirrored = list(RegisteredModel.objects.order_by("name").values_list("name", flat=True))
    total = len(mirrored)
    for data in iter_models():
        seen.add(data.name)
        _guarded(report, data.name, partial(_sync_model_data, data, report))
        if progress is not None:
            progress(len(seen), max(total, len(seen)))
    done = len(seen)
    gone = [name for name in mirrored if name not in seen]
    total = done + len(gone)
    for name in gone:  # gone from MLflow (or never listed): mark its versions, check its aliases
        _guarded(report, name, partial(registered_model_sync, name, report=report))
        done += 1
        if progress is not None:
            progress(done, total)
    return report


def _guarded(report: ReconcileReport, name: str, sync: Callable[[], object]) -> None:
    try:
        sync()
    except registry.REGISTRY_ERRORS:
        raise  # MLflow is failing: the task retries the whole reconcile
    except ValueError as exc:  # SyncError, LedgerError, GovernanceError: this model's data, not the registry
        report.errors.append(f"{name[:256]}: {exc}")
        logger.warning("registered model %s could not be mirrored: %s", name[:256], type(exc).__name__)
