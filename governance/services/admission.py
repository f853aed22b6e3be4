"""Kubernetes admission: may this Deployment, StatefulSet or InferenceService run the model it names here?

``admission_review`` answers one ``admission.k8s.io/v1`` AdmissionReview as the API server sends it to a
ValidatingAdmissionWebhook (docs/admission.md). The environment is the one the *product* maps the namespace to
(``EnvironmentNamespace``, changed only through the environment's update service); nothing on the object can
choose it. In a governed namespace a workload must name its model, version and artifact digest with
annotations (``governance.ml/model``, ``governance.ml/version``, ``governance.ml/artifact-digest``); the
version must pass ``selectors.admission_check`` for that environment at this moment (approved, training data
within the ceiling, no overdue break-glass review), and the digest must be the approved version's.

Every answer names its rule (``Rule``); a refusal's message starts with it. Decisions in governed namespaces
are recorded (``admission_decision_record``): the first of an interval per (environment, namespace, kind,
name, model, version, decision, rule) writes ``admission.allowed`` or ``admission.refused``; repeats are
counted in the open ``AdmissionDecision`` row, and ``admission_decisions_summarise`` (beat) closes the
interval with ``admission.summarised``. ``dryRun`` reviews are answered exactly the same but never recorded
(the webhook is configured ``sideEffects: NoneOnDryRun``).

What a crash leaves behind: a decision is answered whether or not its recording committed (the answer never
waits on a ledger write that failed: the review itself is read-only); a recording that failed midway rolled
back whole (no open row without its entry).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.canonical import canonical_json, format_timestamp
from audit.ledger import Actor, Subject, record
from governance import lock_objects, selectors
from governance.errors import GovernanceError
from governance.models import AdmissionDecision, Environment, EnvironmentNamespace, ModelVersion
from governance.selectors import AdmissionStatus

PREFIX = "governance.ml/"
MODEL = PREFIX + "model"
VERSION = PREFIX + "version"
DIGEST = PREFIX + "artifact-digest"
#: Never read: the environment is the namespace's. Its presence earns a warning, so nobody believes it counts.
ENVIRONMENT = PREFIX + "environment"

#: The kinds governed, as ``(group, version, kind)`` of ``request.kind``; a pod template holds annotations too
#: for the first two.
DEPLOYMENT = ("apps", "v1", "Deployment")
STATEFUL_SET = ("apps", "v1", "StatefulSet")
INFERENCE_SERVICE = ("serving.kserve.io", "v1beta1", "InferenceService")
WITH_POD_TEMPLATE = (DEPLOYMENT, STATEFUL_SET)
KINDS = (DEPLOYMENT, STATEFUL_SET, INFERENCE_SERVICE)

API_VERSION = "admission.k8s.io/v1"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_UID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,9}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MESSAGE_MAX = 500
#: Closed rows older than this are deleted by the summariser: the ledger keeps the record, the table is the
#: console's recent view.
HISTORY_DAYS = 90


class Rule:
    """The rule an answer is about: stable names, part of the API (``response.status.message`` starts with a
    refusal's; the console and the ledger carry them)."""

    APPROVED = AdmissionStatus.APPROVED
    BREAK_GLASS_REVIEW_OPEN = AdmissionStatus.BREAK_GLASS_REVIEW_OPEN
    # Allowed and not recorded: nothing this product governs.
    NOT_GOVERNED = "namespace_not_governed"
    NOT_APPLICABLE = "not_applicable"  # DELETE/CONNECT, a subresource, an object being deleted
    # Refused.
    UNSUPPORTED_KIND = "unsupported_kind"
    NO_MODEL_ANNOTATION = "no_model_annotation"
    INVALID_MODEL_ANNOTATION = "invalid_model_annotation"
    ANNOTATION_MISMATCH = "annotation_mismatch"
    NOT_APPROVED = AdmissionStatus.NOT_APPROVED
    ABOVE_CEILING = AdmissionStatus.ABOVE_CEILING
    BREAK_GLASS_REVIEW_OVERDUE = AdmissionStatus.BREAK_GLASS_REVIEW_OVERDUE
    NO_ARTIFACT_DIGEST = "no_artifact_digest"
    ARTIFACT_DIGEST_UNKNOWN = "artifact_digest_unknown"
    ARTIFACT_DIGEST_MISMATCH = "artifact_digest_mismatch"

    REFUSALS = (UNSUPPORTED_KIND, NO_MODEL_ANNOTATION, INVALID_MODEL_ANNOTATION, ANNOTATION_MISMATCH, NOT_APPROVED,
                ABOVE_CEILING, BREAK_GLASS_REVIEW_OVERDUE, NO_ARTIFACT_DIGEST, ARTIFACT_DIGEST_UNKNOWN,
                ARTIFACT_DIGEST_MISMATCH)
    RECORDED_ALLOWED = (APPROVED, BREAK_GLASS_REVIEW_OPEN)


class InvalidReview(GovernanceError):
    """Not an AdmissionReview v1 request this webhook can answer: the API answers 400 (which the API server
    treats as a webhook failure: with ``failurePolicy: Fail`` it refuses the request)."""

    code = "invalid_admission_review"


@dataclass(frozen=True)
class Review:
    """The parts of an AdmissionRequest a decision reads."""

    uid: str
    kind: tuple[str, str, str]
    namespace: str
    name: str
    operation: str
    sub_resource: str
    dry_run: bool
    username: str
    object: Mapping[str, Any] | None


@dataclass(frozen=True)
class Answer:
    """The decision: ``allowed``, the ``rule`` that decided, the ``message`` (status.message), ``warnings``,
    and whether it was ``recorded`` (a first of its interval: False for repeats, dry runs and ungoverned
    namespaces)."""

    uid: str
    allowed: bool
    rule: str
    message: str
    warnings: list[str] = field(default_factory=list)
    recorded: bool = False

    def response(self) -> dict[str, Any]:
        """The AdmissionReview v1 the API server expects back."""
        body: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if not self.allowed:
            body["status"] = {"code": 403, "message": self.message}
        if self.warnings:
            body["warnings"] = self.warnings
        return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": body}


# --- reading the review ------------------------------------------------------------------------------------


def _str(value: Any, what: str, *, required: bool = True, max_length: int = 253) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) or len(value) > max_length:
        raise InvalidReview(f"request.{what} must be a string of 1 to {max_length} characters")
    return value


def _map(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidReview(f"{what} must be an object")
    return value


def parse_review(document: Any) -> Review:
    """The request of an AdmissionReview v1 document; ``InvalidReview`` (400) for anything else."""
    if not isinstance(document, Mapping):
        raise InvalidReview("the body must be an AdmissionReview object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != "AdmissionReview":
        raise InvalidReview(f"expected apiVersion {API_VERSION} and kind AdmissionReview "
                            "(set admissionReviewVersions: [\"v1\"] in the webhook configuration)")
    request = document.get("request")
    if not isinstance(request, Mapping):
        raise InvalidReview("the AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not _UID.match(uid):
        raise InvalidReview("request.uid must be the API server's request identifier")
    kind = _map(request.get("kind"), "request.kind")
    gvk = (_str(kind.get("group", ""), "kind.group", required=False), _str(kind.get("version"), "kind.version"),
           _str(kind.get("kind"), "kind.kind"))
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise InvalidReview(f"request.operation must be one of {', '.join(OPERATIONS)}")
    namespace = _str(request.get("namespace"), "namespace", required=False, max_length=63)
    if namespace and not _DNS_LABEL.match(namespace):
        raise InvalidReview("request.namespace is not a namespace name")
    dry_run = request.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidReview("request.dryRun must be true or false")
    user_info = _map(request.get("userInfo"), "request.userInfo")
    obj = request.get("object")
    if operation in ("CREATE", "UPDATE") and not isinstance(obj, Mapping):
        raise InvalidReview(f"a {operation} review carries its object")
    metadata = _map(obj.get("metadata"), "request.object.metadata") if isinstance(obj, Mapping) else {}
    name = _str(request.get("name"), "name", required=False) or \
        _str(metadata.get("name"), "object.metadata.name", required=False) or \
        (_str(metadata.get("generateName"), "object.metadata.generateName", required=False) + "*")
    return Review(
        uid=uid, kind=gvk, namespace=namespace, name=name, operation=operation,
        sub_resource=_str(request.get("subResource"), "subResource", required=False, max_length=100),
        dry_run=dry_run, username=_str(user_info.get("username"), "userInfo.username", required=False,
                                       max_length=1000),
        object=obj if isinstance(obj, Mapping) else None,
    )


def _annotations(obj: Mapping[str, Any], where: str) -> dict[str, str]:
    annotations = _map(_map(obj.get("metadata"), f"{where}.metadata").get("annotations"), f"{where} annotations")
    if not all(isinstance(v, str) for v in annotations.values()):
        raise InvalidReview(f"{where} annotations must be strings")
    return {k: v for k, v in annotations.items() if isinstance(k, str) and k.startswith(PREFIX)}


def _pod_template(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(_map(obj.get("spec"), "request.object.spec").get("template"), "request.object.spec.template")


def requester_label(username: str) -> str:
    """Who asked the API server, as the ledger may hold it: a Kubernetes system identity (``system:…``,
    service accounts, nodes, controllers: names the cluster reserves for machines) as is; any other name
    is a person's, which the ledger body must not hold: ``person`` (the API server's audit log has it,
    under the same request uid)."""
    if username.startswith("system:"):
        return username[:200]
    return "person" if username else "unknown"


# --- deciding ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Workload:
    environment: Environment
    kind: str
    model: str = ""
    version: int | None = None


def _what(review: Review) -> str:
    return f"{review.kind[2]} {review.namespace}/{review.name}"


def _refuse(review: Review, rule: str, detail: str, warnings: list[str]) -> tuple[bool, str, str, list[str]]:
    return False, rule, f"{rule}: {detail}"[:MESSAGE_MAX], warnings


def _decide(review: Review, workload: _Workload) -> tuple[bool, str, str, list[str], _Workload]:
    """The decision in a governed namespace (reads only): allowed, rule, message, warnings, and the workload
    with the model and version it names once they are known."""
    env = workload.environment.name
    warnings: list[str] = []
    if review.kind not in KINDS:
        allowed, rule, message, warnings = _refuse(
            review, Rule.UNSUPPORTED_KIND,
            f"{'/'.join(k for k in review.kind if k)} is not a kind this webhook understands (Deployment, "
            f"StatefulSet, InferenceService); namespace {review.namespace} is governed by {env}", warnings)
        return allowed, rule, message, warnings, workload
    assert review.object is not None  # parse_review: CREATE and UPDATE carry their object
    found = _annotations(review.object, review.kind[2])
    if review.kind in WITH_POD_TEMPLATE:
        template = _annotations(_pod_template(review.object), "pod template")
        for key in sorted(set(found) & set(template)):
            if found[key] != template[key]:
                allowed, rule, message, warnings = _refuse(
                    review, Rule.ANNOTATION_MISMATCH,
                    f"{key} is {found[key][:80]!r} on {_what(review)} but {template[key][:80]!r} on its pod "
                    "template: give it once, or the same on both", warnings)
                return allowed, rule, message, warnings, workload
        found = {**template, **found}
    if ENVIRONMENT in found:
        warnings.append(f"{ENVIRONMENT} is ignored: namespace {review.namespace} is governed by {env}")
    if MODEL not in found or VERSION not in found:
        missing = " and ".join(k for k in (MODEL, VERSION) if k not in found)
        allowed, rule, message, warnings = _refuse(
            review, Rule.NO_MODEL_ANNOTATION,
            f"{_what(review)} has no {missing} annotation; namespace {review.namespace} is governed by {env}",
            warnings)
        return allowed, rule, message, warnings, workload
    model, version_text = found[MODEL].strip(), found[VERSION].strip()
    if not model or len(model) > 256 or not _VERSION.match(version_text) or int(version_text) > 2_147_483_647:
        allowed, rule, message, warnings = _refuse(
            review, Rule.INVALID_MODEL_ANNOTATION,
            f"{MODEL} must name a registered model and {VERSION} a version number (got "
            f"{model[:80]!r} and {version_text[:20]!r})", warnings)
        return allowed, rule, message, warnings, workload
    version = int(version_text)
    workload = _Workload(workload.environment, workload.kind, model, version)
    subject = f"{model} version {version}"
    admission = selectors.admission_check(model_name=model, version=version, environment_name=env)
    if not admission.allowed:
        if admission.status == AdmissionStatus.NOT_APPROVED:
            live = (f"version {admission.live_version} is live" if admission.live_version is not None
                    else "no version is live there")
            detail = f"{subject} is not approved for {env} ({live})"
        else:
            detail = f"{subject} in {env}: {admission.reason}"
        allowed, rule, message, warnings = _refuse(review, admission.status, detail, warnings)
        return allowed, rule, message, warnings, workload
    digest = ModelVersion.objects.filter(model__name=model, version=version).values_list(
        "artifact_digest", flat=True).first() or ""
    claimed = found.get(DIGEST, "").strip().lower()
    if not claimed:
        allowed, rule, message, warnings = _refuse(
            review, Rule.NO_ARTIFACT_DIGEST,
            f"{_what(review)} has no {DIGEST} annotation: it must carry {subject}'s approved artifact digest",
            warnings)
        return allowed, rule, message, warnings, workload
    if not digest:
        allowed, rule, message, warnings = _refuse(
            review, Rule.ARTIFACT_DIGEST_UNKNOWN,
            # Why is not said: the reason can name the artifact store, which a cluster user need not learn.
            f"{subject} has no computed artifact digest to compare with (see the version's artifact_digest gate)",
            warnings)
        return allowed, rule, message, warnings, workload
    if not _DIGEST.match(claimed) or claimed != digest.lower():
        allowed, rule, message, warnings = _refuse(
            review, Rule.ARTIFACT_DIGEST_MISMATCH,
            f"the annotated artifact digest {claimed[:80]} is not the approved {subject}'s", warnings)
        return allowed, rule, message, warnings, workload
    if admission.status == AdmissionStatus.BREAK_GLASS_REVIEW_OPEN:
        due = admission.review_due_at
        warnings.append(f"{subject} runs in {env} by break-glass; refused once its review is overdue"
                        + (f" (due {due:%Y-%m-%d %H:%M} UTC)" if due else ""))
        return True, Rule.BREAK_GLASS_REVIEW_OPEN, f"{Rule.BREAK_GLASS_REVIEW_OPEN}: {subject} in {env}: " \
            f"{admission.reason}"[:MESSAGE_MAX], warnings, workload
    return True, Rule.APPROVED, f"{Rule.APPROVED}: {subject} in {env}: {admission.reason}"[:MESSAGE_MAX], \
        warnings, workload


def admission_review(*, actor: User, document: Any) -> Answer:
    """Answer one AdmissionReview v1 (``InvalidReview`` when it is not one: nothing decided or recorded).

    Allowed without a record: DELETE and CONNECT, subresources (``scale``, ``status``), an UPDATE of an object
    being deleted (so removing a finalizer is never blocked), and any namespace no environment governs. In a
    governed namespace every CREATE and UPDATE is decided afresh (an UPDATE that changes nothing of the model
    is checked too: an approval that lapsed is noticed at the next change) and recorded unless ``dryRun``.
    About ten queries at most: the namespace, the admission check, the version's digest, the recording.
    """
    review = parse_review(document)
    obj: Mapping[str, Any] = review.object or {}
    metadata: Mapping[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), Mapping) else {}
    if review.operation not in ("CREATE", "UPDATE") or review.sub_resource or (
            review.operation == "UPDATE" and metadata.get("deletionTimestamp")):
        return Answer(review.uid, True, Rule.NOT_APPLICABLE, f"{Rule.NOT_APPLICABLE}: nothing to check")
    mapping = EnvironmentNamespace.objects.select_related("environment").filter(
        namespace=review.namespace).first() if review.namespace else None
    if mapping is None:
        return Answer(review.uid, True, Rule.NOT_GOVERNED,
                      f"{Rule.NOT_GOVERNED}: namespace {review.namespace or '(none)'} is mapped to no environment")
    kind = "/".join(k for k in review.kind if k)[:40]
    allowed, rule, message, warnings, workload = _decide(review, _Workload(mapping.environment, kind))
    recorded = False
    if not review.dry_run:
        recorded = admission_decision_record(
            actor=actor, environment=workload.environment, namespace=review.namespace, kind=review.kind[2][:40],
            name=review.name, operation=review.operation, model=workload.model, version=workload.version,
            allowed=allowed, rule=rule, message=message, uid=review.uid,
            requester=requester_label(review.username))
    return Answer(review.uid, allowed, rule, message, warnings, recorded)


# --- recording, coalesced ----------------------------------------------------------------------------------


def _interval() -> timedelta:
    return timedelta(seconds=float(settings.ADMISSION_RECORD_INTERVAL))


def admission_decision_record(
    *, actor: User, environment: Environment, namespace: str, kind: str, name: str, operation: str, model: str,
    version: int | None, allowed: bool, rule: str, message: str, uid: str, requester: str,
) -> bool:
    """Record one decision: ``admission.allowed``/``admission.refused`` for the first of its key in an interval
    (``ADMISSION_RECORD_INTERVAL``), a count for the repeats. Returns whether an entry was written.

    A repeat is one UPDATE of its open row and touches no ledger table. The first runs in its own transaction:
    the partial unique constraint (one open row per key) lets only one of two concurrent firsts write the
    entry; a row whose interval is over is closed (``admission.summarised`` when it counted repeats) before a
    new one opens. The entry names the workload, the model, the rule and the API server's request uid, and the
    requester only as ``requester_label`` allows (never a person's name)."""
    now = timezone.now()
    key = hashlib.sha256(canonical_json(
        [environment.pk, namespace, kind, name, model, version, allowed, rule]).encode()).hexdigest()
    fresh = now - _interval()
    if AdmissionDecision.objects.filter(key=key, summarised_at__isnull=True, first_at__gt=fresh).update(
            count=F("count") + 1, last_at=now):
        return False
    with transaction.atomic():
        current = lock_objects.admission_decisions_lock().filter(key=key, summarised_at__isnull=True).first()
        if current is not None and current.first_at > fresh:  # opened meanwhile by another process
            AdmissionDecision.objects.filter(pk=current.pk).update(count=F("count") + 1, last_at=now)
            return False
        if current is not None:
            _close(current, now)
        try:
            with transaction.atomic():
                AdmissionDecision.objects.create(
                    key=key, environment=environment, namespace=namespace, kind=kind, name=name[:253],
                    model=model, version=version, allowed=allowed, rule=rule, message=message[:MESSAGE_MAX],
                    first_at=now, last_at=now)
        except IntegrityError:  # a concurrent first decision opened the row and wrote the entry
            AdmissionDecision.objects.filter(key=key, summarised_at__isnull=True).update(
                count=F("count") + 1, last_at=now)
            return False
        record(
            event_type="admission.allowed" if allowed else "admission.refused",
            actor=Actor.user(actor),
            subject=Subject("environment", environment.name),
            payload={"environment": environment.name, "namespace": namespace, "kind": kind, "name": name[:253],
                     "operation": operation, "model": model or None, "version": version, "rule": rule,
                     "message": message[:MESSAGE_MAX], "uid": uid, "requester": requester},
        )
    return True


def _close(row: AdmissionDecision, now: datetime) -> None:
    """Close an open row (locked by the caller): its summary when it counted repeats (a row of one decision
    needs none: its first entry says everything)."""
    if row.count > 1:
        record(
            event_type="admission.summarised",
            actor=Actor.system("admission-webhook"),
            subject=Subject("environment", row.environment.name),
            payload={"environment": row.environment.name, "namespace": row.namespace, "kind": row.kind,
                     "name": row.name, "model": row.model or None, "version": row.version, "allowed": row.allowed,
                     "rule": row.rule, "count": row.count, "first_at": format_timestamp(row.first_at),
                     "last_at": format_timestamp(row.last_at),
                     "interval_seconds": int(_interval().total_seconds())},
        )
    row.summarised_at = now
    row.save(update_fields=["summarised_at"])


def admission_decisions_summarise(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Close every open row whose interval is over, each in its own transaction; delete closed rows older than
    ``HISTORY_DAYS`` (the ledger keeps their entries). Idempotent; returns how many rows were closed. Run from
    the beat (``governance.tasks.summarise_admission_decisions``); a decision after the interval also closes
    its own row, so nothing depends on the beat running."""
    now = now or timezone.now()
    closed_before = now - _interval()
    ids = list(AdmissionDecision.objects.filter(summarised_at__isnull=True, first_at__lte=closed_before)
               .order_by("pk").values_list("pk", flat=True)[:limit])
    closed = 0
    for pk in ids:
        with transaction.atomic():
            row = lock_objects.admission_decisions_lock().filter(
                pk=pk, summarised_at__isnull=True, first_at__lte=closed_before).first()
            if row is None:  # closed meanwhile by a decision
                continue
            _close(row, now)
            closed += 1
    AdmissionDecision.objects.filter(summarised_at__lt=now - timedelta(days=HISTORY_DAYS)).delete()
    return closed
