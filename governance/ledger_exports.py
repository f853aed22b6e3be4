"""Governance's part of the ledger's exports (registered from ``GovernanceConfig.ready()``).

The ledger knows no models or promotions (``audit.export.sections``). Governance tells it which
ledger subjects a ``model`` scope means (the model, its versions, their promotion requests and
the incidents naming it) and builds the model's sections of the audit report: versions with
their lineage, promotions with approvals and reviews, violations and grants in the period.
"""
from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from access.models import Grant
from audit.export import sections
from audit.export.errors import ExportError
from audit.export.report import fmt, in_period
from audit.export.scope import names_model, payload_mentions
from audit.models import Entry
from governance.models import ComplianceViolation, Lineage, PromotionRequest, RegisteredModel
from governance.selectors import models_visible_to


def model_subjects(name: str, *, size: int | None = None) -> list[tuple[str, str]]:
    """Every ledger subject about a registered model, among entries with ``seq < size`` (all when None).

    The model, each version that the registry mirror knows *or* that the ledger has entries about
    (``model_version:NAME/<n>``: runtime telemetry may name a version the mirror never saw), their
    promotion requests, and the ``incident:<id>`` subjects whose entries name the model in their payload.
    """
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise ExportError(f"no registered model named {name!r}", code="unknown_model")
    entries = Entry.objects.all() if size is None else Entry.objects.filter(seq__lt=size)
    subjects = {("registered_model", model.name)}
    subjects |= {("model_version", f"{model.name}/{v}") for v in model.versions.values_list("version", flat=True)}
    version_id = re.compile(re.escape(model.name) + r"/(0|[1-9][0-9]*)")
    subjects |= {
        ("model_version", ident)
        for ident in entries.filter(subject_type="model_version", subject_id__startswith=f"{model.name}/")
        .values_list("subject_id", flat=True).distinct()
        if version_id.fullmatch(ident)
    }
    requests = PromotionRequest.objects.filter(version__model=model).values_list("pk", flat=True)
    subjects |= {("promotion_request", str(pk)) for pk in requests}
    incidents = entries.filter(subject_type="incident", payload_json__contains=payload_mentions(model.name))
    subjects |= {("incident", ident) for ident, pj in incidents.values_list("subject_id", "payload_json")
                 if names_model(pj, model.name)}
    return sorted(subjects)


def model_report(name: str, scope: dict[str, Any],
                 by_subject: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    """The model's sections of its audit report (``audit/report.html``)."""
    model = RegisteredModel.objects.get(name=name)
    since, until = scope.get("since"), scope.get("until")
    lineage_by_version: dict[int, list[dict[str, Any]]] = {}
    for link in Lineage.objects.filter(version__model=model).select_related("dataset").order_by("pk"):
        lineage_by_version.setdefault(link.version_id, []).append({
            "dataset": link.dataset.name, "role": link.role, "source": link.source,
            "level": link.dataset.effective_level, "pii_categories": ", ".join(link.dataset.pii_categories),
            "linked_at": fmt(link.created_at),
        })
    # MLflow's creator is a user name: shown as the account it belongs to, or redacted.
    creators = dict(get_user_model().objects.filter(
        username__in={v.creator for v in model.versions.all() if v.creator}).values_list("username", "pk"))

    def creator(name: str) -> str:
        if not name:
            return ""
        return f"user:{creators[name]}" if name in creators else "[redacted MLflow user]"

    versions = [
        {"version": v.version, "creator": creator(v.creator), "run_id": v.run_id, "artifact_digest": v.artifact_digest,
         "data_classification": v.data_classification or "(not declared)",
         "datasets": v.datasets, "lineage": lineage_by_version.get(v.pk, []),
         "created": fmt(v.mlflow_created_at), "entries": by_subject.get(("model_version", v.ref), [])}
        for v in model.versions.order_by("version")
    ]
    promotions = []
    requests = (PromotionRequest.objects.filter(version__model=model)
                .select_related("version", "environment").order_by("created_at", "pk"))
    for r in requests:
        if not in_period(r.created_at, r.finished_at or timezone.now(), since, until):
            continue
        review = getattr(r, "break_glass_review", None) if r.is_break_glass else None
        promotions.append({
            "id": r.pk, "version": r.version.version, "environment": r.environment.name, "state": r.state,
            "strategy": r.strategy, "break_glass": r.is_break_glass, "reason": r.reason,
            "requested_by": f"user:{r.requested_by_id}", "created": fmt(r.created_at),
            "decided": fmt(r.decided_at), "deployed": fmt(r.deployed_at), "finished": fmt(r.finished_at),
            "evidence_digest": r.evidence_digest, "gates": (r.evidence or {}).get("gates", []),
            "approvals": [
                {"approver": f"user:{a.approver_id}", "decision": a.decision, "group": a.group,
                 "comment": a.comment, "at": fmt(a.created_at),
                 "current": a.evidence_digest == r.evidence_digest}
                for a in r.approvals.order_by("created_at", "pk")
            ],
            "review": None if review is None else {
                "state": review.state, "due": fmt(review.due_at), "comment": review.comment,
                "reviewed_by": f"user:{review.reviewed_by_id}" if review.reviewed_by_id else "",
                "reviewed_at": fmt(review.reviewed_at),
            },
            "entries": by_subject.get(("promotion_request", str(r.pk)), []),
        })
    subject_keys = {f"{t}:{i}" for t, i, _ in scope.get("subjects", [])}
    violations = [
        {"id": v.pk, "kind": v.kind, "subject": f"{v.subject_type}:{v.subject_id}", "summary": v.summary,
         "detected": fmt(v.detected_at), "reverted": v.reverted,
         "acknowledged_by": f"user:{v.acknowledged_by_id}" if v.acknowledged_by_id else "",
         "acknowledged_at": fmt(v.acknowledged_at), "acknowledgement": v.acknowledgement}
        for v in ComplianceViolation.objects.order_by("detected_at", "pk")
        if f"{v.subject_type}:{v.subject_id}" in subject_keys
        and in_period(v.detected_at, v.detected_at, since, until)
    ]
    grants: list[dict[str, Any]] = []
    for g in Grant.objects.filter(resource_type="registered_model", resource_id=model.pk).select_related(
        "group"
    ).order_by("created_at", "pk"):
        if not in_period(g.created_at, g.revoked_at or g.expires_at, since, until):
            continue
        grants.append({
            "id": g.pk, "principal": f"user:{g.user_id}" if g.user_id else f"group:{g.group.name}",  # type: ignore[union-attr]
            "permission": g.permission, "granted_by": f"user:{g.granted_by_id}", "created": fmt(g.created_at),
            "expires": fmt(g.expires_at), "revoked": fmt(g.revoked_at), "justification": g.justification,
        })
    return {"model": model, "versions": versions, "promotions": promotions, "violations": violations,
            "grants": grants}


def model_choices(viewer: Any) -> list[str]:
    """The registered models ``viewer`` may see (``selectors.models_visible_to``), for the export form."""
    return list(models_visible_to(viewer).order_by("name").values_list("name", flat=True))


sections.scope_resolver_register("model", lambda name, size: model_subjects(name, size=size))
sections.scope_choices_register("model", model_choices)
sections.model_report_register(model_report)
