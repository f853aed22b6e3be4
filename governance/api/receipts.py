"""``GET /api/v1/promotions/{id}/receipt``: a deployed promotion's signed deployment receipt (docs/receipts.md).

What a serving platform fetches at start-up and verifies offline (``python -m audit.receipt_verify``).
Visible as the promotion detail is (scope ``promotions:read``); unknown and invisible are both 404, and
so is a promotion without a receipt (not deployed, or none could be issued), with a message saying so.
The proof is attached at read time against the newest checkpoint; while none covers the approval
entry the answer is 409 ``receipt_pending`` with ``Retry-After``.

Not a recorded ledger read (``ledger.accessed``): it shows one entry about the promotion the caller
may already see, as the promotion's page does with its whole trail.
"""
from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.receipts import ProofPending
from governance import selectors
from web.api.docs import READ_PROBLEMS, answers
from web.api.problems import CONTENT_TYPE, problem

TAGS = ["promotions"]
READ = "promotions:read"


class InclusionProofOut(serializers.Serializer):
    leaf_index = serializers.IntegerField(help_text="the approval entry's seq (its leaf index)")
    tree_size = serializers.IntegerField(help_text="the checkpoint's tree size")
    hashes = serializers.ListField(child=serializers.CharField(), help_text="RFC 9162 audit path, hex")


class ReceiptOut(serializers.Serializer):
    format = serializers.CharField(help_text="deployment-receipt/v1")
    note = serializers.CharField(help_text="the C2SP signed receipt note (docs/receipts.md)")
    entry = serializers.DictField(help_text="the approval entry's body, exactly as hashed (RFC 8785)")
    checkpoint = serializers.CharField(help_text="the newest signed checkpoint, with its witness cosignatures")
    inclusion_proof = InclusionProofOut()


EXAMPLE = {
    "format": "deployment-receipt/v1",
    "note": "ledger.example/log\ndeployment-receipt v1\npromotion 42\nmodel fraud-detector\nversion 3\n"
            "environment production\nartifact sha256:9f…\napproval-event promotion.approved\napproval-seq 1234\n"
            "approval-hash 3f0c…\ntree-size 1240\nissued 2026-12-07T18:00:00Z\n\n— ledger.example/log AbC…\n",
    "entry": {"seq": 1234, "event_type": "promotion.approved", "…": "…"},
    "checkpoint": "ledger.example/log\n1300\nq1…=\n\n— ledger.example/log AbC…\n",
    "inclusion_proof": {"leaf_index": 1234, "tree_size": 1300, "hashes": ["5d2e…"]},
}


class PromotionReceiptApi(APIView):
    required_scope = READ

    @extend_schema(
        summary="A deployed promotion's signed deployment receipt, with the approval's inclusion proof",
        description="Verify it offline with `python -m audit.receipt_verify` (docs/receipts.md). 404 when the "
                    "promotion is unknown, invisible to you, or has no receipt; 409 `receipt_pending` with "
                    "`Retry-After` while no signed checkpoint covers the approval entry yet.",
        tags=TAGS, responses=answers({200: ReceiptOut}, (*READ_PROBLEMS, 409)),
        examples=[OpenApiExample("a receipt", response_only=True, value=EXAMPLE)],
    )
    def get(self, request: Request, promotion_id: int) -> Response:
        promotion, receipt = selectors.receipt_of(request.user, promotion_id)
        if promotion is None:
            raise Http404("not found")
        if receipt is None:
            why = (f"it is {promotion.state}; a receipt is issued when a promotion's alias is applied"
                   if promotion.deployed_at is None and promotion.state != "deploying"
                   else "none could be issued (its promotion.receipt_refused entry says why), or it was deployed "
                        "before receipts existed")
            raise Http404(f"promotion #{promotion.pk} has no deployment receipt: {why}")
        try:
            return Response(selectors.receipt_document(receipt))
        except ProofPending as pending:
            return Response(
                problem(409, f"promotion #{promotion.pk}'s receipt is issued, but no signed checkpoint covers its "
                             f"approval entry (seq {receipt.approval_seq}) yet; retry in {pending.retry_after} s",
                        code="receipt_pending"),
                status=409, headers={"Retry-After": str(pending.retry_after)}, content_type=CONTENT_TYPE,
            )
