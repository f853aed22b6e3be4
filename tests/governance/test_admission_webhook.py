"""The Kubernetes admission webhook (``POST /api/v1/admission/review``, ``governance.services.admission``).

No kube-apiserver can run here (no package registry serves one, and it needs etcd and certificates), so the
AdmissionReview documents it sends stand in for it: ``admission_reviews/*.json``, the request shape of the
Kubernetes documentation's example and KServe's sklearn-iris InferenceService example (see the README
there). Each test derives its case from them and posts it as the API server would, with the webhook's
bearer token. Every attack asserts what is refused and that nothing else was written.
"""
from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from access.errors import NotPermitted
from access.models import ServiceAccount
from access.services.service_accounts import service_account_create
from access.services.tokens import api_token_create
from audit.models import PendingEntry
from governance.errors import InvalidState
from governance.models import (
    AdmissionDecision,
    BreakGlassReview,
    EnvironmentNamespace,
    GovernanceChangeRequest,
    ModelVersion,
    PromotionRequest,
)
from governance.services import admission, change_requests, environments
from tests.api.helpers import problem_of
from tests.governance.helpers import make_deployed
from tests.personas import People
from tests.promotions import Gov

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_registry", "celery_eager")]

URL = "/api/v1/admission/review"
FIXTURES = Path(__file__).parent / "admission_reviews"
DIGEST = "sha256:" + "ab" * 32  # every version's digest in the gov fixture
NS = "payments-prod"


def review(name: str = "deployment_create", **request: Any) -> dict[str, Any]:
    """A stored AdmissionReview, with ``request`` fields replaced."""
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    doc["request"].update(request)
    return doc


def annotated(doc: dict[str, Any], **annotations: str | None) -> dict[str, Any]:
    """``doc`` with the object's annotations changed (``None`` removes one); keys use ``_`` for ``-``."""
    doc = copy.deepcopy(doc)
    found = doc["request"]["object"]["metadata"].setdefault("annotations", {})
    for key, value in annotations.items():
        name = "governance.ml/" + key.replace("_", "-")
        if value is None:
            found.pop(name, None)
        else:
            found[name] = value
    return doc


def entries(event_type: str) -> list[dict[str, Any]]:
    return [json.loads(e.payload_json) for e in PendingEntry.objects.filter(event_type=event_type).order_by("pk")]


def written() -> tuple[int, int]:
    return PendingEntry.objects.count(), AdmissionDecision.objects.count()


@pytest.fixture
def webhook(token_for: Any) -> Any:
    """The kube-apiserver's client: a token with admission:review only (issued by InfoSec). Its service account
    holds no grant on any model: the webhook answers for every model, seen or not."""
    return token_for(["admission:review"])


@pytest.fixture
def live(gov: Gov, people: People) -> PromotionRequest:
    """fraud-detector v1 live in production, whose namespace is payments-prod (mapped through the ORM)."""
    EnvironmentNamespace.objects.create(environment=gov.production, namespace=NS)
    return make_deployed(gov.v1, gov.production, requested_by=people.owner, hours_ago=2)


def post(client: Any, doc: Any) -> Any:
    return client.post(URL, doc, format="json")


def answer(client: Any, doc: Any) -> dict[str, Any]:
    response = post(client, doc)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    assert body["response"]["uid"] == doc["request"]["uid"]
    return dict(body["response"])


def refused(client: Any, doc: Any, rule: str) -> str:
    body = answer(client, doc)
    assert body["allowed"] is False, body
    assert body["status"]["code"] == 403
    assert body["status"]["message"].startswith(f"{rule}: "), body["status"]["message"]
    return str(body["status"]["message"])


# --- admitted ------------------------------------------------------------------------------------------------


def test_the_approved_version_with_its_digest_is_admitted_and_recorded(webhook: Any, live: PromotionRequest) -> None:
    body = answer(webhook, review())
    assert body == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}
    [entry] = entries("admission.allowed")
    assert entry == {
        "environment": "production", "namespace": NS, "kind": "Deployment", "name": "fraud-api",
        "operation": "CREATE", "model": "fraud-detector", "version": 1, "rule": "approved",
        "message": "approved: fraud-detector version 1 in production: live under an approved promotion",
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "requester": "system:serviceaccount:argocd:argocd-application-controller",
    }


def test_the_kserve_inference_service_example_is_judged_and_a_persons_name_is_kept_out(
    webhook: Any, live: PromotionRequest,
) -> None:
    assert answer(webhook, review("inferenceservice_create"))["allowed"] is True
    [entry] = entries("admission.allowed")
    assert (entry["kind"], entry["name"], entry["requester"]) == ("InferenceService", "sklearn-iris", "person")
    assert "jane.doe" not in json.dumps([e.payload_json for e in PendingEntry.objects.all()])


def test_annotations_on_the_pod_template_alone_count(webhook: Any, live: PromotionRequest) -> None:
    doc = review()
    obj = doc["request"]["object"]
    obj["spec"]["template"]["metadata"]["annotations"] = obj["metadata"].pop("annotations")
    assert answer(webhook, doc)["allowed"] is True


def test_a_stateful_set_is_governed_like_a_deployment(webhook: Any, live: PromotionRequest) -> None:
    doc = review(kind={"group": "apps", "version": "v1", "kind": "StatefulSet"})
    refused(webhook, annotated(doc, version="2"), "not_approved")


def test_break_glass_under_open_review_is_admitted_with_a_warning(webhook: Any, live: PromotionRequest) -> None:
    PromotionRequest.objects.filter(pk=live.pk).update(is_break_glass=True)
    BreakGlassReview.objects.create(request=live, due_at=timezone.now() + timedelta(hours=20))
    body = answer(webhook, review())
    assert body["allowed"] is True
    assert len(body["warnings"]) == 1 and "break-glass" in body["warnings"][0]
    assert entries("admission.allowed")[0]["rule"] == "break_glass_review_open"


# --- refused, each naming its rule ---------------------------------------------------------------------------


def test_a_version_not_approved_is_refused_naming_the_live_one(webhook: Any, live: PromotionRequest) -> None:
    message = refused(webhook, annotated(review(), version="2"), "not_approved")
    assert message == "not_approved: fraud-detector version 2 is not approved for production (version 1 is live)"
    [entry] = entries("admission.refused")
    assert (entry["rule"], entry["version"], entry["message"]) == ("not_approved", 2, message)
    assert AdmissionDecision.objects.get().allowed is False


def test_a_swapped_artifact_digest_is_refused(webhook: Any, live: PromotionRequest) -> None:
    refused(webhook, annotated(review(), artifact_digest="sha256:" + "cd" * 32), "artifact_digest_mismatch")
    refused(webhook, annotated(review(), artifact_digest="not-a-digest"), "artifact_digest_mismatch")


def test_a_missing_digest_annotation_is_refused(webhook: Any, live: PromotionRequest) -> None:
    refused(webhook, annotated(review(), artifact_digest=None), "no_artifact_digest")


def test_a_version_without_a_computed_digest_is_refused(webhook: Any, gov: Gov, live: PromotionRequest) -> None:
    ModelVersion.objects.filter(pk=gov.v1.pk).update(artifact_digest="",
                                                     artifact_digest_error="s3://internal-bucket/x: too large")
    message = refused(webhook, review(), "artifact_digest_unknown")
    assert "internal-bucket" not in message  # the store's reason stays in the product


def test_a_pod_template_disagreeing_with_the_deployment_is_refused(webhook: Any, live: PromotionRequest) -> None:
    doc = review()
    doc["request"]["object"]["spec"]["template"]["metadata"]["annotations"] = {"governance.ml/version": "2"}
    message = refused(webhook, doc, "annotation_mismatch")
    assert "governance.ml/version" in message


def test_an_unannotated_workload_in_a_governed_namespace_is_refused(webhook: Any, live: PromotionRequest) -> None:
    doc = review()
    doc["request"]["object"]["metadata"]["annotations"] = {"team": "payments"}
    refused(webhook, doc, "no_model_annotation")
    refused(webhook, annotated(review(), version="v1"), "invalid_model_annotation")


def test_an_environment_annotation_cannot_pick_the_environment(webhook: Any, gov: Gov, live: PromotionRequest) -> None:
    """v2 is live in dev; a workload in the production namespace claiming dev is still judged against production."""
    body = answer(webhook, annotated(review(), version="2", environment="dev"))
    assert body["allowed"] is False and body["status"]["message"].startswith("not_approved: ")
    assert any("governance.ml/environment is ignored" in w for w in body["warnings"])


def test_an_overdue_break_glass_review_is_refused(webhook: Any, live: PromotionRequest) -> None:
    PromotionRequest.objects.filter(pk=live.pk).update(is_break_glass=True)
    BreakGlassReview.objects.create(request=live, due_at=timezone.now() - timedelta(minutes=1))
    refused(webhook, review(), "break_glass_review_overdue")


def test_reclassified_training_data_is_refused(webhook: Any, gov: Gov, live: PromotionRequest) -> None:
    ModelVersion.objects.filter(pk=gov.v1.pk).update(data_classification="restricted")
    message = refused(webhook, review(), "classification_above_ceiling")
    assert "restricted" in message


def test_an_unknown_model_is_refused_like_one_with_nothing_live_not_404(webhook: Any, live: PromotionRequest) -> None:
    """The API server needs an answer, and the answer must not tell a made-up name from a real one."""
    unknown = refused(webhook, annotated(review(), model="no-such-model"), "not_approved")
    assert unknown == "not_approved: no-such-model version 1 is not approved for production (no version is live there)"


def test_an_unsupported_kind_in_a_governed_namespace_is_refused(webhook: Any, live: PromotionRequest) -> None:
    refused(webhook, review(kind={"group": "", "version": "v1", "kind": "Pod"}), "unsupported_kind")


# --- namespaces ------------------------------------------------------------------------------------------------


def test_a_namespace_mapped_to_no_environment_is_allowed_and_not_recorded(webhook: Any, live: PromotionRequest) -> None:
    before = written()
    doc = annotated(review(namespace="sandbox"), version="99")
    assert answer(webhook, doc)["allowed"] is True
    assert written() == before


def test_namespaces_change_through_the_environment_service_and_a_protected_one_needs_two_people(
    gov: Gov, people: People,
) -> None:
    environments.environment_update(actor=people.infosec, environment=gov.staging, kubernetes_namespaces=["ml-stg"])
    assert entries("environment.updated")[-1]["changes"] == {"kubernetes_namespaces": ["ml-stg"],
                                                             "previous_namespaces": []}
    before = written()
    with pytest.raises(InvalidState) as refused_:
        environments.environment_update(actor=people.infosec, environment=gov.production,
                                        kubernetes_namespaces=[NS])
    assert refused_.value.code == "two_person_required"
    assert written() == before and not EnvironmentNamespace.objects.filter(namespace=NS).exists()

    proposal = change_requests.change_request_create(
        actor=people.infosec, environment=gov.production, kind=GovernanceChangeRequest.Kind.ENVIRONMENT_UPDATE,
        change={"kubernetes_namespaces": [NS]}, reason="govern the payments cluster")
    assert not EnvironmentNamespace.objects.filter(namespace=NS).exists()
    change_requests.change_request_approve(actor=people.infosec2, change_request=proposal, comment="ok")
    assert EnvironmentNamespace.objects.get(namespace=NS).environment == gov.production


@pytest.mark.parametrize("names, code", [
    (["ml-stg", "Payments"], "invalid_namespaces"),
    (["-bad"], "invalid_namespaces"),
    (["x" * 64], "invalid_namespaces"),
    ("ml-stg", "invalid_namespaces"),
    (["payments-prod"], "duplicate"),
])
def test_a_bad_or_taken_namespace_is_refused_and_nothing_written(
    gov: Gov, people: People, live: PromotionRequest, names: Any, code: str,
) -> None:
    before = written(), list(EnvironmentNamespace.objects.values_list("namespace", "environment_id"))
    with pytest.raises(environments.GovernanceError) as refused_:
        environments.environment_update(actor=people.infosec, environment=gov.staging, kubernetes_namespaces=names)
    assert refused_.value.code == code
    assert (written(), list(EnvironmentNamespace.objects.values_list("namespace", "environment_id"))) == before


def test_namespaces_over_the_api_replace_the_list(as_user: Any, gov: Gov, people: People) -> None:
    client = as_user(people.infosec)
    response = client.patch("/api/v1/environments/staging", {"kubernetes_namespaces": ["ml-stg", "ml-stg-2"]},
                            format="json")
    assert response.status_code == 200, response.content
    assert response.json()["kubernetes_namespaces"] == ["ml-stg", "ml-stg-2"]
    listed = client.get("/api/v1/environments").json()["results"]
    assert {e["name"]: e["kubernetes_namespaces"] for e in listed}["staging"] == ["ml-stg", "ml-stg-2"]
    assert problem_of(client.patch("/api/v1/environments/staging", {"kubernetes_namespaces": [5]},
                                   format="json"))["status"] == 400


# --- not applicable, dry runs, coalescing ---------------------------------------------------------------------


def test_delete_subresources_and_objects_being_deleted_are_allowed_unrecorded(
    webhook: Any, live: PromotionRequest,
) -> None:
    before = written()
    bad = annotated(review(), version="2")
    assert answer(webhook, {**bad, "request": {**bad["request"], "operation": "DELETE"}})["allowed"] is True
    assert answer(webhook, {**bad, "request": {**bad["request"], "subResource": "scale"}})["allowed"] is True
    going = copy.deepcopy(bad)
    going["request"]["operation"] = "UPDATE"
    going["request"]["object"]["metadata"]["deletionTimestamp"] = "2026-12-07T10:00:00Z"
    assert answer(webhook, going)["allowed"] is True  # removing a finalizer is never blocked
    assert written() == before


def test_an_update_is_checked_afresh(webhook: Any, live: PromotionRequest) -> None:
    doc = annotated(review(operation="UPDATE"), version="2")
    doc["request"]["oldObject"] = copy.deepcopy(doc["request"]["object"])
    refused(webhook, doc, "not_approved")


def test_a_dry_run_is_answered_but_not_recorded(webhook: Any, live: PromotionRequest) -> None:
    before = written()
    refused(webhook, annotated(review(dryRun=True), version="2"), "not_approved")
    assert answer(webhook, review(dryRun=True))["allowed"] is True
    assert written() == before


def test_repeated_decisions_are_coalesced_then_summarised_with_their_count(
    webhook: Any, live: PromotionRequest, settings: Any,
) -> None:
    doc = annotated(review(), version="2")
    for _ in range(3):
        refused(webhook, doc, "not_approved")
    assert len(entries("admission.refused")) == 1
    row = AdmissionDecision.objects.get()
    assert (row.count, row.summarised_at) == (3, None)

    assert admission.admission_decisions_summarise(now=timezone.now()) == 0  # the interval is not over
    later = timezone.now() + timedelta(seconds=settings.ADMISSION_RECORD_INTERVAL + 1)
    assert admission.admission_decisions_summarise(now=later) == 1
    [summary] = entries("admission.summarised")
    assert (summary["count"], summary["rule"], summary["allowed"], summary["version"]) == (3, "not_approved", False, 2)
    assert admission.admission_decisions_summarise(now=later) == 0  # idempotent

    answer(webhook, doc)  # a new interval: a new first entry
    assert len(entries("admission.refused")) == 2


def test_a_decision_after_the_interval_closes_its_own_window(webhook: Any, live: PromotionRequest,
                                                            settings: Any) -> None:
    doc = annotated(review(), version="2")
    refused(webhook, doc, "not_approved")
    refused(webhook, doc, "not_approved")
    AdmissionDecision.objects.update(first_at=timezone.now() - timedelta(seconds=settings.ADMISSION_RECORD_INTERVAL
                                                                           + 5))
    refused(webhook, doc, "not_approved")
    assert [e["count"] for e in entries("admission.summarised")] == [2]
    assert AdmissionDecision.objects.filter(summarised_at__isnull=True).get().count == 1


def test_different_outcomes_are_not_coalesced(webhook: Any, live: PromotionRequest) -> None:
    answer(webhook, review())
    refused(webhook, annotated(review(), version="2"), "not_approved")
    assert len(entries("admission.allowed")) == len(entries("admission.refused")) == 1


# --- who may call, and bad input ------------------------------------------------------------------------------


def test_a_token_without_the_scope_and_a_person_are_refused(
    token_for: Any, as_user: Any, people: People, live: PromotionRequest,
) -> None:
    assert problem_of(post(token_for(["promotions:read"]), review()))["status"] == 403
    assert problem_of(post(as_user(people.infosec), review()))["status"] == 403
    assert problem_of(post(as_user(None), review()))["status"] in (401, 403)
    # (Signing the person in wrote its own entries: no admission entry and no decision row.)
    assert not PendingEntry.objects.filter(event_type__startswith="admission.").exists()
    assert not AdmissionDecision.objects.exists()


def test_only_infosec_issues_an_admission_token(people: People) -> None:
    account = service_account_create(actor=people.owner, name="kube-apiserver")
    before = PendingEntry.objects.count()
    with pytest.raises(NotPermitted):
        api_token_create(actor=people.owner, service_account=account, name="webhook", scopes=["admission:review"])
    assert PendingEntry.objects.count() == before
    issued = api_token_create(actor=people.infosec, service_account=account, name="webhook",
                              scopes=["admission:review"])
    assert issued.token.scopes == ["admission:review"]
    assert ServiceAccount.objects.get(name="kube-apiserver").tokens.count() == 1


@pytest.mark.parametrize("body", [
    {}, [], "AdmissionReview", {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}},
    {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
    {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "x y"}},
])
def test_a_malformed_review_is_a_400_problem_and_writes_nothing(webhook: Any, live: PromotionRequest,
                                                               body: Any) -> None:
    before = written()
    assert problem_of(post(webhook, body))["status"] == 400
    assert written() == before


@pytest.mark.parametrize("change", [
    {"operation": "PATCH"}, {"dryRun": "yes"}, {"namespace": "Not_A_Namespace"}, {"object": None},
    {"object": {"metadata": {"annotations": {"governance.ml/version": 1}}}}, {"kind": "Deployment"},
    {"userInfo": ["admin"]},
])
def test_a_review_with_a_bad_field_is_a_400(webhook: Any, live: PromotionRequest, change: dict[str, Any]) -> None:
    before = written()
    assert problem_of(post(webhook, review(**change)))["status"] == 400
    assert written() == before


def test_garbage_deep_and_huge_bodies_are_4xx_never_500(webhook: Any, live: PromotionRequest, settings: Any) -> None:
    before = written()
    garbage = webhook.post(URL, b"\xff\xfe{not json", content_type="application/json")
    assert problem_of(garbage)["status"] == 400
    deep: Any = "x"
    for _ in range(300):
        deep = {"a": deep}
    assert problem_of(post(webhook, review(object=deep)))["status"] == 400
    huge = review()
    huge["request"]["object"]["metadata"]["labels"] = {"filler": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    assert problem_of(post(webhook, huge))["status"] == 413
    assert written() == before


def test_the_review_is_bounded_in_queries(webhook: Any, live: PromotionRequest,
                                          django_assert_max_num_queries: Any) -> None:
    answer(webhook, review())  # the token's first-use bookkeeping is behind us
    # The token (and its last use), the namespace, the admission check (two), the digest, the repeat's UPDATE.
    with django_assert_max_num_queries(9):
        answer(webhook, review())
    with django_assert_max_num_queries(16):  # a first decision: its own transaction, the row and the entry
        refused(webhook, annotated(review(), version="2"), "not_approved")
