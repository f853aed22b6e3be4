"""Console tables (web/console/tables.py): sorting by whitelisted columns, the total, pages that jump,
and "download this view as CSV" with the same rows as the view, across pages, within the viewer's visibility."""
from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from access.console.service_accounts import TOKENS_TABLE
from access.models import Dataset, Grant
from access.services.service_accounts import service_account_create
from audit.models import ExportJob
from audit.services.retention import legal_hold_create
from governance.models import BreakGlassReview, RegisteredModel
from tests.access.helpers import grant
from tests.catalog import Resources
from tests.console.helpers import client_for, make_violation, messages_of, seed_ledger
from tests.personas import People
from web.console import tables
from web.console.tables import Column, Table, TableSpec, csv_cell

pytestmark = pytest.mark.django_db

DATASETS = reverse("console-access")
GRANTS = reverse("console-grants")
HOLDS = reverse("console-legal-holds")
VIOLATIONS = reverse("console-violations")
MODELS = reverse("console-models")


def csv_of(client: Client, url: str, params: dict[str, Any] | None = None) -> list[list[str]]:
    response = client.get(url, {**(params or {}), "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="')
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def names_on(client: Client, url: str, **params: Any) -> list[str]:
    return [d.name for d in client.get(url, params).context["page"].object_list]


# --- the mechanism --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "cell"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+1", "'+1+1"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("plain", "plain"), ("a=b", "a=b"),
    (-5, "-5"), (None, ""), (True, "yes"),
])
def test_csv_cells_that_a_spreadsheet_would_evaluate_are_quoted(value: Any, cell: str) -> None:
    assert csv_cell(value) == cell


@pytest.mark.parametrize(("raw", "page"), [
    ("3", 3), ("999", 4), ("0", 1), ("-7", 1), ("abc", 1), ("", 1), (None, 1), ("1e3", 1), ("9" * 50, 4),
])
def test_a_bad_page_number_lands_on_the_nearest_valid_page(raw: str | None, page: int) -> None:
    assert tables._page_number(raw, 4) == page


def test_page_numbers_show_the_ends_and_the_neighbourhood() -> None:
    spec = TableSpec(name="t", columns=(Column("n", "N", ("n",)),), default_sort="n")
    page = Paginator(list(range(200)), 10).page(10)
    assert Table(spec=spec, page=page, sort="n", query="", hidden=[]).page_numbers == [1, None, 8, 9, 10, 11, 12,
                                                                                         None, 20]


def test_a_default_sort_that_is_not_a_sortable_column_is_refused() -> None:
    with pytest.raises(ValueError, match="not a sortable column"):
        TableSpec(name="t", columns=(Column("n", "N"),), default_sort="n")


# --- datasets: sort, bad sort, total, page jump, CSV ---------------------------------------------------


def _bulk_datasets(people: People, n: int = 30) -> None:
    Dataset.objects.bulk_create(Dataset(name=f"bulk-{i:02d}", owner=people.owner) for i in range(n))


def test_sorting_by_a_column_both_ways(people: People, res: Resources) -> None:
    client = client_for(people.steward)
    ascending = names_on(client, DATASETS, sort="name")
    assert ascending == sorted(ascending) and len(ascending) == 5
    assert names_on(client, DATASETS, sort="-name") == ascending[::-1]
    by_level = names_on(client, DATASETS, sort="-level")  # by sensitivity, not alphabetically
    assert by_level[0] == "kyc-documents" and by_level[-1] == "fx-rates"
    html = client.get(DATASETS, {"sort": "name"}).content.decode()
    assert 'aria-sort="ascending"><a class="sort" href="?sort=-name">Dataset' in html
    assert '<a class="sort" href="?sort=owner">Owner</a>' in html


@pytest.mark.parametrize("bad", ["password", "owner__password", "-owner__password", "?", "name;drop", "-" * 300])
def test_an_unknown_sort_key_is_ignored_and_said(people: People, res: Resources, bad: str) -> None:
    client = client_for(people.steward)
    response = client.get(DATASETS, {"sort": bad})
    assert response.status_code == 200
    assert [d.name for d in response.context["page"].object_list] == names_on(client, DATASETS)
    assert any("Cannot sort by" in m for m in messages_of(response))
    assert response.context["table"].query == ""  # the refused key is not carried into the pager's links
    assert client.get(DATASETS, {"sort": bad, "format": "csv"}).status_code == 200


def test_the_total_and_the_page_jump(people: People, res: Resources) -> None:
    _bulk_datasets(people, 60)
    client = client_for(people.steward)
    response = client.get(DATASETS, {"q": "bulk", "sort": "-name"})
    html = response.content.decode()
    assert "60 in all" in html and "Page 1 of 3" in html
    assert 'name="q" value="bulk"' in html and 'name="sort" value="-name"' in html  # the go-to-page form keeps them
    assert 'id="goto-page" name="page"' in html and "?q=bulk&amp;sort=-name&amp;page=3" in html  # last page
    last = client.get(DATASETS, {"q": "bulk", "sort": "-name", "page": "999"})
    assert last.context["page"].number == 3 and names_on(client, DATASETS, q="bulk", sort="-name", page=3)[-1] == \
        "bulk-00"
    assert client.get(DATASETS, {"page": "zero"}).context["page"].number == 1


def test_the_csv_holds_every_row_of_the_view_in_its_order(people: People, res: Resources) -> None:
    _bulk_datasets(people, 30)
    client = client_for(people.steward)
    params = {"q": "bulk", "sort": "-name"}
    pages = [n for p in (1, 2) for n in names_on(client, DATASETS, page=p, **params)]
    rows = csv_of(client, DATASETS, params)
    assert rows[0][:3] == ["Dataset", "Owner", "Own level"]
    assert [r[0] for r in rows[1:]] == pages and len(pages) == 30


def test_the_csv_shows_only_what_the_viewer_may_see(people: People, res: Resources) -> None:
    _bulk_datasets(people, 3)
    mine = Dataset.objects.create(name="outsider-notes", owner=people.outsider)
    assert [r[0] for r in csv_of(client_for(people.outsider), DATASETS)[1:]] == [mine.name]
    assert len(csv_of(client_for(people.steward), DATASETS)) == 1 + Dataset.objects.count()
    assert client_for(None).get(DATASETS, {"format": "csv"}).status_code == 302  # to the login page


def test_the_csv_reads_in_chunks_without_a_query_per_row(
    people: People, res: Resources, django_assert_max_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "CSV_CHUNK", 10)
    _bulk_datasets(people, 45)
    client = client_for(people.steward)
    # session, user, roles, count, then one query per chunk of 10 (50 rows: 5 chunks + the empty end).
    with django_assert_max_num_queries(12):
        assert len(csv_of(client, DATASETS)) == 51


def test_the_csv_is_capped(people: People, res: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "CSV_MAX_ROWS", 4)
    monkeypatch.setattr(tables, "CSV_CHUNK", 3)
    client = client_for(people.steward)
    response = client.get(DATASETS, {"format": "csv", "sort": "name"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 5 and response["X-Total-Count"] == "5" and response["X-Truncated"] == "true"
    assert "(the first 4 rows)" in client.get(DATASETS).content.decode()


def test_a_post_is_never_answered_with_a_csv(people: People) -> None:
    response = client_for(people.infosec).post(reverse("console-exports") + "?format=csv", {"format": "bogus"})
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")


# --- grants: visibility and CSV injection ---------------------------------------------------------------


def test_grants_csv_is_the_viewers_grants_with_formulas_defused(people: People, res: Resources) -> None:
    evil = grant(people.owner, people.requester, res.internal, justification="=cmd|' /C calc'!A0")
    grant(people.owner, people.auditor, res.public)
    requester_rows = csv_of(client_for(people.requester), GRANTS)
    assert [r[0] for r in requester_rows[1:]] == [str(evil.pk)]
    header = requester_rows[0]
    assert requester_rows[1][header.index("Justification")] == "'=cmd|' /C calc'!A0"
    assert requester_rows[1][header.index("Resource")] == "dataset:payments-internal"
    everyone = csv_of(client_for(people.infosec), GRANTS, {"sort": "id"})
    assert [int(r[0]) for r in everyone[1:]] == sorted(Grant.objects.values_list("pk", flat=True))


def test_grants_sort_and_the_page_query_count_does_not_grow(
    people: People, res: Resources, django_assert_max_num_queries: Any
) -> None:
    client = client_for(people.infosec)
    for d in (res.internal, res.public, res.confidential):
        grant(people.owner, people.requester, d)
    ids = [r["grant"].pk for r in client.get(GRANTS, {"sort": "id"}).context["rows"]]
    assert ids == sorted(ids) and [r["grant"].pk for r in client.get(GRANTS).context["rows"]] == ids[::-1]
    with django_assert_max_num_queries(14):
        rows = csv_of(client, GRANTS, {"sort": "principal"})
    assert len(rows) == 4


# --- legal holds, violations, exports, models and the other lists --------------------------------------


def test_legal_holds_sort_total_and_csv(people: People) -> None:
    for i, reason in enumerate(["@SUM(1+1)", "+tel", "plain"]):
        legal_hold_create(actor=people.infosec, data_subject=f"user:{900300 + i}", reason=reason)
    client = client_for(people.auditor)
    subjects = [h.data_subject for h in client.get(HOLDS, {"sort": "-subject"}).context["page"].object_list]
    assert subjects == ["user:900302", "user:900301", "user:900300"]
    rows = csv_of(client, HOLDS, {"sort": "subject"})
    assert [r[1] for r in rows[1:]] == subjects[::-1]
    assert [r[3] for r in rows[1:]] == ["'@SUM(1+1)", "'+tel", "plain"]
    assert "3 in all" in client.get(HOLDS).content.decode()


def test_violations_sort_both_ways_and_csv(people: People) -> None:
    made = [make_violation(f"summary {i}").pk for i in range(3)]
    client = client_for(people.auditor)
    listed = [v.pk for v in client.get(VIOLATIONS, {"status": "all", "sort": "id"}).context["page"].object_list]
    assert listed == made
    assert [v.pk for v in client.get(VIOLATIONS, {"status": "all", "sort": "-id"}).context["page"].object_list] == \
        made[::-1]
    assert [int(r[0]) for r in csv_of(client, VIOLATIONS, {"status": "all", "sort": "id"})[1:]] == made
    assert client_for(people.outsider).get(VIOLATIONS, {"format": "csv"}).status_code == 403


def test_exports_sort_and_an_auditor_exports_only_their_own(people: People) -> None:
    seed_ledger(1)
    for who in (people.infosec, people.auditor, people.auditor):
        client_for(who).post(reverse("console-exports"), {"format": "csv"})
    mine = list(ExportJob.objects.filter(created_by=people.auditor).order_by("pk").values_list("pk", flat=True))
    client = client_for(people.auditor)
    assert [int(r[0]) for r in csv_of(client, reverse("console-exports"), {"sort": "id"})[1:]] == mine
    assert [j.pk for j, _s, _d in client.get(reverse("console-exports")).context["rows"]] == mine[::-1]
    assert len(csv_of(client_for(people.infosec), reverse("console-exports"))) == 4


def test_models_sort_and_csv_with_a_column_per_environment(people: People, res: Resources) -> None:
    RegisteredModel.objects.create(name="aardvark", owner=people.owner)
    client = client_for(people.owner)
    names = [r["model"].name for r in client.get(MODELS, {"sort": "-name"}).context["rows"]]
    assert names == ["fraud-detector", "aardvark"]
    rows = csv_of(client, MODELS, {"sort": "name"})
    assert rows[0][:4] == ["Model", "Owner", "Latest version", "Effective classification"]
    assert "In production" in rows[0] and [r[0] for r in rows[1:]] == ["aardvark", "fraud-detector"]
    assert [r[2] for r in rows[1:]] == ["", "2"]
    assert csv_of(client_for(people.outsider), MODELS) == [rows[0]]  # the header only: nothing visible


def test_approvals_and_break_glass_lists_sort_and_export(people: People, broken_glass: BreakGlassReview) -> None:
    client = client_for(people.infosec)
    approvals = csv_of(client, reverse("console-approvals"), {"show": "all"})
    shown = {r.pk for r in client.get(reverse("console-approvals"), {"show": "all"}).context["page"].object_list}
    assert {int(r[0]) for r in approvals[1:]} == shown
    reviews = csv_of(client, reverse("console-breakglass"), {"sort": "-due"})
    assert [int(r[0]) for r in reviews[1:]] == [broken_glass.request_id]
    assert reviews[1][reviews[0].index("Justification")] == "fraud spike, hotfix"
    html = client.get(reverse("console-breakglass"), {"sort": "-due"}).content.decode()
    assert 'aria-sort="descending"><a class="sort" href="?sort=due">Due' in html


def test_service_accounts_and_tokens_export_no_secret(people: People) -> None:
    account = service_account_create(actor=people.infosec, name="nightly", description="-risky")
    service_account_create(actor=people.infosec, name="alpha")
    client = client_for(people.infosec)
    rows = csv_of(client, reverse("console-service-accounts"), {"sort": "-name"})
    assert [r[0] for r in rows[1:]] == ["nightly", "alpha"] and rows[1][3] == "'-risky"
    tokens = csv_of(client, reverse("console-service-account", args=[account.name]))
    assert tokens == [[c.label for c in tables_tokens_columns()]]


def tables_tokens_columns() -> list[Column]:
    return [c for c in TOKENS_TABLE.columns if c.value is not None]


def test_identity_links_and_reviews_lists_sort(people: People) -> None:
    client = client_for(people.infosec)
    for url in (reverse("console-identity-links"), reverse("console-reviews"), reverse("console-access-requests")):
        response = client.get(url, {"sort": "nonsense"})
        assert response.status_code == 200 and "table" in response.context
        assert client.get(url, {"format": "csv"}).status_code == 200


def test_a_user_outside_oversight_gets_no_csv_of_oversight_pages(people: People, outsider: User) -> None:
    for url in (HOLDS, VIOLATIONS, reverse("console-exports"), reverse("console-identity-links")):
        response = client_for(outsider).get(url, {"format": "csv"})
        assert response.status_code == 403 and not response.get("Content-Disposition")


# --- no query per row: a CSV of 2 rows and of 40 rows cost the same ------------------------------------


def _holds(people: People, start: int, n: int) -> None:
    for i in range(start, start + n):
        legal_hold_create(actor=people.infosec, data_subject=f"user:{900500 + i}", reason=f"r{i}")


def _violations(people: People, start: int, n: int) -> None:
    for i in range(start, start + n):
        make_violation(f"v{i}")


def _models(people: People, start: int, n: int) -> None:
    RegisteredModel.objects.bulk_create(RegisteredModel(name=f"m-{i}", owner=people.owner)
                                        for i in range(start, start + n))


def _accounts(people: People, start: int, n: int) -> None:
    for i in range(start, start + n):
        service_account_create(actor=people.infosec, name=f"svc-{i}")


def _grants(people: People, start: int, n: int) -> None:
    for i in range(start, start + n):
        grant(people.infosec, people.requester, Dataset.objects.create(name=f"g-{i}", owner=people.owner))


@pytest.mark.parametrize(("url", "make"), [
    (HOLDS, _holds), (VIOLATIONS + "?status=all", _violations), (MODELS, _models),
    (reverse("console-service-accounts"), _accounts), (GRANTS, _grants),
])
def test_a_csv_costs_the_same_queries_whatever_its_rows(people: People, url: str, make: Any) -> None:
    client = client_for(people.infosec)
    client.get(url)  # the session and the roles, as on any later page

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url + ("&" if "?" in url else "?") + "format=csv")
            body = b"".join(response.streaming_content).decode()
        assert response.status_code == 200 and body.count("\n") >= 3
        return len(captured)

    make(people, 0, 2)
    small = queries()
    make(people, 2, 40)
    assert queries() == small
