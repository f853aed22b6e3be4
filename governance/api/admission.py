"""``POST /api/v1/admission/review``: the Kubernetes ValidatingAdmissionWebhook (docs/admission.md).

The body is an ``admission.k8s.io/v1`` AdmissionReview exactly as the API server sends it; the answer is the
AdmissionReview it expects back (``response.uid`` echoed, ``allowed``, ``status.code``/``message`` naming the
rule, ``warnings``). Only an API token with ``admission:review`` (the kube-apiserver's, from the kubeconfig of
the webhook; only InfoSec may issue one) reaches it: a person signed in to the console cannot, because each
decision is written to the ledger in the webhook's name. A body that is not an AdmissionReview v1 answers 400
(problem details): the API server treats any non-200 as a failed call, which ``failurePolicy: Fail`` refuses.
"""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.services import admission
from web.api.auth import token_of
from web.api.docs import answers

SCOPE = "admission:review"

_REQUEST = {
    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
    "request": {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "name": "fraud-api", "namespace": "payments-prod", "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller"},
        "object": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
            "name": "fraud-api", "namespace": "payments-prod",
            "annotations": {"governance.ml/model": "fraud-detector", "governance.ml/version": "4",
                            "governance.ml/artifact-digest": "sha256:" + "ab" * 32}}},
        "dryRun": False,
    },
}


class AdmissionReviewApi(APIView):
    """Answer one AdmissionReview v1 (bounded: about ten queries, whatever the object)."""

    required_scope = SCOPE

    @extend_schema(
        summary="Kubernetes admission review (the API server's ValidatingAdmissionWebhook)",
        description="Body: an admission.k8s.io/v1 AdmissionReview as the API server sends it. Answer: the "
                    "AdmissionReview with response.uid, allowed, status (code 403 and a message starting with the "
                    "rule's name) and warnings. API tokens with admission:review only. In a namespace mapped to "
                    "an environment, a Deployment, StatefulSet or InferenceService must name an approved model "
                    "version and its artifact digest (annotations governance.ml/model, governance.ml/version, "
                    "governance.ml/artifact-digest); a namespace mapped to none is allowed and not recorded. "
                    "dryRun reviews are answered and not recorded. A body that is not an AdmissionReview v1 "
                    "answers 400. Rules and their messages: docs/admission.md.",
        tags=["admission"], request=OpenApiTypes.OBJECT,
        responses=answers({200: OpenApiTypes.OBJECT}, (400, 401, 403, 413, 415, 429)),
        examples=[
            OpenApiExample("a Deployment", request_only=True, value=_REQUEST),
            OpenApiExample("refused", response_only=True, value={
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
                    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": False, "status": {
                        "code": 403, "message": "not_approved: fraud-detector version 4 is not approved for "
                                                "production (version 3 is live)"}}}),
        ],
    )
    def post(self, request: Request) -> Response:
        if token_of(request) is None:
            # Each decision is a ledger entry in the webhook's name: only the API server's token writes them.
            raise PermissionDenied("this endpoint answers the Kubernetes API server: use an API token with the "
                                   f"scope {SCOPE!r}")
        answer = admission.admission_review(actor=request.user, document=request.data)
        return Response(answer.response())
