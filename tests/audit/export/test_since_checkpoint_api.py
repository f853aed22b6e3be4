"""POST /api/v1/exports takes since_checkpoint (rule C3); a size the ledger never signed is a 400 writing nothing."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from audit.export.service import export_run
from audit.models import Entry, ExportJob, PendingEntry
from audit.services import checkpoints
from tests.audit.export.helpers import members
from tests.audit.integration.helpers import fill

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_cache")]


@pytest.fixture(autouse=True)
def _exports_under_tmp(tmp_path: Path) -> Iterator[None]:
    with override_settings(VAR_DIR=tmp_path):
        yield


def test_the_api_records_since_checkpoint_and_the_bundle_includes_it(people, as_user) -> None:
    fill(6)
    known = checkpoints.checkpoint_create()
    fill(6)
    assert known is not None

    response = as_user(people.auditor).post("/api/v1/exports", {"format": "bundle",
                                                                "since_checkpoint": known.tree_size}, format="json")

    assert response.status_code == 202, response.content
    job = export_run(export_id=response.json()["id"])
    assert job.scope["since_checkpoint"] == known.tree_size
    assert f"checkpoints/{known.pk:012d}.txt" in members(Path(job.file_path))


@pytest.mark.parametrize("value", [5, 0, "x"])
def test_a_since_checkpoint_the_ledger_never_signed_is_a_400_and_nothing_is_written(
    people, as_user, value
) -> None:
    fill(6)
    assert checkpoints.checkpoint_create().tree_size == 7  # type: ignore[union-attr]
    entries, pending = Entry.objects.count(), PendingEntry.objects.count()

    response = as_user(people.auditor).post("/api/v1/exports", {"format": "bundle", "since_checkpoint": value},
                                            format="json")

    assert response.status_code == 400, response.content
    assert not ExportJob.objects.exists()
    assert (Entry.objects.count(), PendingEntry.objects.count()) == (entries, pending)
