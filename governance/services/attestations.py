"""CI attestations uploaded for a model version (docs/attestations.md).

Storing is not trusting: ``attestation_add`` checks only that the document is a well-formed DSSE
envelope or Sigstore bundle around an in-toto Statement v1; the attestation gate verifies it against
the environment's trusted signers every time it runs (``governance.attestations``).
"""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from audit.ledger import Actor, record
from governance import lock_objects
from governance.attestations import AttestationError, Document, parse_document
from governance.errors import GovernanceError
from governance.models import Attestation, ModelVersion, PromotionRequest

# promotions as a module: promotions → … → here would be an import cycle otherwise.
from governance.services import promotions
from governance.services.common import State, version_subject

#: At most this many attestations per version (a pipeline re-attesting forever must not fill the database).
MAX_PER_VERSION = 100


def parse(document: bytes) -> Document:
    """The upload's checks, without writing: size, then well-formedness (GovernanceError, code
    ``too_large`` or ``invalid_attestation``)."""
    limit = settings.ATTESTATION_MAX_BYTES
    if len(document) > limit:
        raise GovernanceError(f"the attestation is {len(document)} bytes; the limit is {limit} "
                              "(ATTESTATION_MAX_BYTES)", code="too_large")
    try:
        return parse_document(document)
    except AttestationError as exc:
        raise GovernanceError(str(exc), code="invalid_attestation") from None


@transaction.atomic
def attestation_add(*, actor: User, version: ModelVersion, document: bytes) -> tuple[Attestation, bool]:
    """Store ``document`` (the raw uploaded bytes) for ``version``; returns (attestation, created).

    The same bytes again for the same version return the stored row and record nothing (a CI retry).
    Records ``model.attestation_added`` (predicate type, subject digests, document SHA-256, key ids or
    the certificate fingerprint: never a signer's e-mail) and re-evaluates the version's pending
    promotion requests, whose attestation gates may now pass. Refused whole (nothing written) when the
    document is too large, malformed, or the version already holds ``MAX_PER_VERSION``. The version's
    row is locked first, so two identical concurrent uploads store one row.
    """
    parsed = parse(document)
    version = lock_objects.model_versions_lock(only_self=True).select_related("model").get(pk=version.pk)
    existing = Attestation.objects.filter(version=version, sha256=parsed.sha256).first()
    if existing is not None:
        return existing, False
    if Attestation.objects.filter(version=version).count() >= MAX_PER_VERSION:
        raise GovernanceError(f"{version.ref} already has {MAX_PER_VERSION} attestations", code="too_many")
    attestation = Attestation.objects.create(
        version=version, kind=parsed.kind, sha256=parsed.sha256, document=document.decode(),
        predicate_type=parsed.predicate_type, subject_digests=list(parsed.subject_digests),
        key_ids=list(parsed.key_ids), uploaded_by=actor,
    )
    record(
        event_type="model.attestation_added",
        actor=Actor.user(actor),
        subject=version_subject(version),
        payload={"model": version.model.name, "version": version.version, "attestation": f"sha256:{parsed.sha256}",
                 "kind": parsed.kind, "predicate_type": parsed.predicate_type,
                 "subject_digests": list(parsed.subject_digests), "key_ids": list(parsed.key_ids),
                 "binds_version": bool(version.artifact_digest) and version.artifact_digest in parsed.subject_digests},
    )
    for request in PromotionRequest.objects.filter(version=version, state=State.PENDING).order_by("pk"):
        promotions.promotion_reevaluate(promotion=request, actor=Actor.user(actor))
    return attestation, True
