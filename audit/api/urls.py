"""``/api/v1/``: the ledger, runtime events and exports."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from audit.api.events import EventsIngestApi
from audit.api.exports import ExportApi, ExportDownloadApi, ExportsApi
from audit.api.ledger import (
    CheckpointsApi,
    ConsistencyProofApi,
    InclusionProofApi,
    KeysApi,
    LatestCheckpointApi,
    LedgerEntriesApi,
    LedgerEntryApi,
)

urlpatterns: list[URLPattern | URLResolver] = [
    path("ledger/entries", LedgerEntriesApi.as_view(), name="api-ledger-entries"),
    path("ledger/entries/<int:seq>", LedgerEntryApi.as_view(), name="api-ledger-entry"),
    path("ledger/entries/<int:seq>/inclusion-proof", InclusionProofApi.as_view(), name="api-ledger-inclusion-proof"),
    path("ledger/consistency-proof", ConsistencyProofApi.as_view(), name="api-ledger-consistency-proof"),
    path("ledger/checkpoint", LatestCheckpointApi.as_view(), name="api-ledger-checkpoint"),
    path("ledger/checkpoints", CheckpointsApi.as_view(), name="api-ledger-checkpoints"),
    path("ledger/keys", KeysApi.as_view(), name="api-ledger-keys"),
    path("events", EventsIngestApi.as_view(), name="api-events"),
    path("exports", ExportsApi.as_view(), name="api-exports"),
    path("exports/<int:export_id>", ExportApi.as_view(), name="api-export"),
    path("exports/<int:export_id>/download", ExportDownloadApi.as_view(), name="api-export-download"),
]
