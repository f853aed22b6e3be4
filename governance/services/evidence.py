"""A promotion request's evidence: the policy's gates run against a version, and the re-run that records
changed evidence.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from access.classification import LEVELS
from audit.ledger import Actor, record
from governance import selectors
from governance.attestations import AttestationError, Document, load_trusted_root, parse_document
from governance.models import (
    Attestation,
    Environment,
    ModelVersion,
    PromotionRequest,
)
from governance.policy import (
    NO_TRUSTED_CREATOR,
    Gate,
    GateInput,
    GateResult,
    Policy,
    evaluate_gate,
    evidence_digest,
)
from governance.services import lineage
from governance.services.common import base_payload, promotion_subject


def _gate_input(version: ModelVersion, environment: Environment, now: datetime) -> GateInput:
    previous, live_version_id, live_since = selectors.previous_environment_with_live(
        environment, model_id=version.model_id)
    # Soak time counts only while the version is the one live there: a version replaced
    # after an hour has soaked an hour, however long ago that was.
    since = live_since if live_version_id == version.pk else None
    metrics = {k: float(v) for k, v in (version.metrics or {}).items() if isinstance(v, int | float)}
    # No MLflow inputs, nothing uncatalogued: spare the lineage query.
    uncatalogued = lineage.lineage_state(version).unknown if lineage.mlflow_inputs(version) else ()
    return GateInput(
        metrics=metrics,
        description=version.description or version.model.description,
        data_classification=version.data_classification,
        environment_max_classification=environment.max_data_classification,
        previous_environment=previous.name if previous else None,
        in_previous_environment_since=since,
        now=now,
        uncatalogued=uncatalogued,
        artifact_digest=version.artifact_digest,
        artifact_digest_error=version.artifact_digest_error,
        registered_by=f"user:{version.registered_by_id}" if version.registered_by_id is not None else None,
        registered_via=version.registered_via,
    )


def _attestation_input(version: ModelVersion) -> tuple[tuple[Document, ...], Any]:
    """The version's stored attestations, parsed (one query), and the Sigstore trusted root (or why there
    is none, as the text every bundle's check then shows)."""
    documents = []
    for raw in Attestation.objects.filter(version=version).order_by("pk").values_list("document", flat=True):
        try:
            documents.append(parse_document(raw.encode()))
        except AttestationError:
            continue  # checked at upload; a row edited behind the product's back counts as absent
    try:
        root: Any = load_trusted_root(settings.SIGSTORE_TRUSTED_ROOT) if documents else None
    except AttestationError as exc:
        root = str(exc)
    return tuple(documents), root


def evaluate(version: ModelVersion, environment: Environment, policy: Policy) -> tuple[list[GateResult], str]:
    """Run the policy's gates. A version trained on datasets the catalog does not know has an unknown
    classification: below the top level no environment admits it, so there the data_classification
    gate runs even when the policy does not list it."""
    data = _gate_input(version, environment, timezone.now())
    if any(g.type == "attestation" for g in policy.gates):
        documents, root = _attestation_input(version)
        data = replace(data, attestations=documents, trusted_signers=policy.trusted_signers,
                       sigstore_trusted_root=root)
    gates = list(policy.gates)
    implicit = data.uncatalogued and environment.max_data_classification != LEVELS[-1]
    if implicit and not any(g.type == "data_classification" for g in gates):
        gates.append(Gate(type="data_classification"))
    results = [evaluate_gate(g, data) for g in gates]
    return results, evidence_digest(version.artifact_digest, results)


def evidence_doc(version: ModelVersion, results: list[GateResult]) -> dict[str, Any]:
    """The request's evidence. ``registered_by`` is the account the product knows registered the
    version (``user:<id>``), or ``NO_TRUSTED_CREATOR``: MLflow's creator name is never evidence."""
    return {
        "artifact_digest": version.artifact_digest,
        "gates": [r.as_dict() for r in results],
        "registered_by": f"user:{version.registered_by_id}" if version.registered_by_id is not None
        else NO_TRUSTED_CREATOR,
        "registered_via": version.registered_via or None,
        "evaluated_at": timezone.now().isoformat(),
    }


def refresh_evidence(request: PromotionRequest, policy: Policy, actor: Actor, *, save: bool = True) -> bool:
    """Re-run the gates; record when the evidence changed (which makes earlier approvals stale).

    ``save=False``: the caller writes ``evidence`` and ``evidence_digest`` itself, later in the
    same transaction (one UPDATE instead of two)."""
    results, digest = evaluate(request.version, request.environment, policy)
    changed = digest != request.evidence_digest
    request.evidence = evidence_doc(request.version, results)
    if changed:
        old = request.evidence_digest
        request.evidence_digest = digest
        record(
            event_type="promotion.evidence_changed",
            actor=actor,
            subject=promotion_subject(request),
            payload={**base_payload(request), "previous_digest": old, "evidence_digest": digest,
                     "gates": request.evidence["gates"]},
        )
    if save:
        request.save(update_fields=["evidence", "evidence_digest"])
    return changed
