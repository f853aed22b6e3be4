"""Dashboard and violations pages: who sees what, who may acknowledge, bounded queries, CSRF."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from access.models import Dataset, ReviewItem
from access.services.reviews import review_campaign_start, review_item_decide
from audit.ledger import Subject, integrate
from audit.models import Entry, PendingEntry
from governance.models import ComplianceViolation
from governance.services.compliance import violation_record
from tests.access.helpers import grant
from tests.catalog import Resources
from tests.console.helpers import client_for, make_violation, seed_ledger
from tests.governance.helpers import make_deployed
from tests.personas import People
from web import embedded_scheduler

pytestmark = pytest.mark.django_db
DASHBOARD = reverse("console-dashboard")
VIOLATIONS = reverse("console-violations")
# Measured, with a little room; the point is that they do not grow with the rows.
DASHBOARD_QUERIES = 20
LIST_QUERIES = 8


def _ack_url(v: ComplianceViolation) -> str:
    return reverse("console-violation-acknowledge", args=[v.pk])


@pytest.mark.parametrize("url", [DASHBOARD, VIOLATIONS])
def test_anonymous_is_sent_to_login(url: str) -> None:
    response = client_for(None).get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")


def test_oversight_dashboard_shows_integrity_queues_and_charts(people: People) -> None:
    # given
    seed_ledger(4)
    make_violation()
    integrate()
    # when
    response = client_for(people.auditor).get(DASHBOARD)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Ledger integrity" in html and "Last signed checkpoint" in html
    assert "never verified" in html or "passed" in html
    assert "<svg" in html and "Events per day" in html
    assert "1 out of band alias" in html
    assert "ledger: 4" not in html  # the data table holds counts per day, not a dump


@pytest.mark.parametrize(("state", "shown"), [
    ("celery_beat", 'muted">periodic tasks: celery beat'),
    ("running", 'muted">periodic tasks: this server (embedded scheduler, no broker)'),
    ("standby", 'muted">periodic tasks: another process of this server'),
    ("off", 'badge warn">no scheduler runs here: without a broker nothing signs checkpoints'),
])
def test_the_dashboard_says_who_runs_the_periodic_tasks(people: People, monkeypatch: pytest.MonkeyPatch,
                                                         state: str, shown: str) -> None:
    monkeypatch.setattr(embedded_scheduler, "state", lambda: state)
    html = client_for(people.auditor).get(DASHBOARD).content.decode()
    assert shown in html


def test_plain_user_dashboard_shows_only_their_queues(people: People) -> None:
    seed_ledger(2)
    response = client_for(people.outsider).get(DASHBOARD)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Waiting on you" in html
    assert "Ledger integrity" not in html and "<svg" not in html


def test_dashboard_queries_are_bounded_whatever_the_ledger_size(
    people: People, django_assert_max_num_queries: Any
) -> None:
    seed_ledger(3)
    client = client_for(people.infosec)
    client.get(DASHBOARD)
    with django_assert_max_num_queries(DASHBOARD_QUERIES):
        client.get(DASHBOARD)
    seed_ledger(40, days=10)
    for _ in range(5):
        make_violation()
    with django_assert_max_num_queries(DASHBOARD_QUERIES):
        client.get(DASHBOARD)


@pytest.mark.parametrize("who", ["approver", "owner", "steward", "outsider"])
def test_violations_are_refused_to_non_oversight(people: People, who: str) -> None:
    make_violation("secret summary")
    response = client_for(getattr(people, who)).get(VIOLATIONS)
    assert response.status_code == 403
    html = response.content.decode()
    assert "Not permitted" in html and "secret summary" not in html


def test_auditor_reads_violations_but_cannot_acknowledge(people: People) -> None:
    v = make_violation("alias moved by hand")
    client = client_for(people.auditor)
    html = client.get(VIOLATIONS).content.decode()
    assert "alias moved by hand" in html and "Acknowledge" not in html
    # when the auditor posts anyway
    response = client.post(_ack_url(v), {"comment": "looks fine"})
    # then
    assert response.status_code == 403
    v.refresh_from_db()
    assert v.acknowledged_at is None


def test_infosec_acknowledges_with_a_comment_recorded_in_the_ledger(people: People) -> None:
    v = make_violation()
    client = client_for(people.infosec)
    response = client.post(_ack_url(v), {"comment": "Reverted by the reconciler; owner briefed."}, follow=True)
    assert response.status_code == 200
    assert "acknowledged; recorded in the ledger" in response.content.decode()
    v.refresh_from_db()
    assert v.acknowledged_by == people.infosec and v.acknowledgement.startswith("Reverted")
    integrate()
    entry = Entry.objects.get(event_type="compliance.violation_acknowledged")
    assert entry.actor_id == str(people.infosec.pk) and entry.payload["violation_id"] == v.pk
    # the open filter no longer lists it; the acknowledged filter does
    assert f"<td>{v.pk}</td>" not in client.get(VIOLATIONS).content.decode()
    assert f"<td>{v.pk}</td>" in client.get(VIOLATIONS + "?status=acknowledged").content.decode()


def test_empty_comment_shows_a_message_and_writes_nothing(people: People) -> None:
    v = make_violation()
    pending = PendingEntry.objects.count()
    response = client_for(people.infosec).post(_ack_url(v), {"comment": "   "}, follow=True)
    assert response.status_code == 200
    assert "was not acknowledged: a comment is required" in response.content.decode()
    v.refresh_from_db()
    assert v.acknowledged_at is None
    assert PendingEntry.objects.count() == pending


def test_acknowledging_twice_is_a_message_not_an_error(people: People) -> None:
    v = make_violation()
    client = client_for(people.infosec)
    client.post(_ack_url(v), {"comment": "first"})
    response = client.post(_ack_url(v), {"comment": "second"}, follow=True)
    assert "already acknowledged" in response.content.decode()


def test_unknown_violation_is_a_message(people: People) -> None:
    response = client_for(people.infosec).post(reverse("console-violation-acknowledge", args=[999]),
                                             {"comment": "x"}, follow=True)
    assert "There is no violation #999" in response.content.decode()


def test_acknowledge_needs_a_csrf_token(people: People) -> None:
    v = make_violation()
    response = client_for(people.infosec, csrf=True).post(_ack_url(v), {"comment": "no token"})
    assert response.status_code == 403
    v.refresh_from_db()
    assert v.acknowledged_at is None


def test_acknowledge_is_post_only(people: People) -> None:
    v = make_violation()
    assert client_for(people.infosec).get(_ack_url(v)).status_code == 405


def test_violations_list_queries_are_bounded(
    people: People, django_assert_max_num_queries: Any
) -> None:
    client = client_for(people.infosec)
    v = make_violation()
    client.post(_ack_url(v), {"comment": "seen"})
    with django_assert_max_num_queries(LIST_QUERIES):
        client.get(VIOLATIONS + "?status=all")
    for i in range(30):
        w = make_violation(f"v{i}")
        if i % 3 == 0:
            client.post(_ack_url(w), {"comment": "seen"})
    with django_assert_max_num_queries(LIST_QUERIES):
        response = client.get(VIOLATIONS + "?status=all")
    assert "Next →" in response.content.decode()  # 31 rows: two pages


def test_violations_filter_by_kind_and_bad_filters_fall_back(people: People) -> None:
    make_violation("an alias")
    client = client_for(people.auditor)
    assert "an alias" not in client.get(VIOLATIONS + "?kind=integrity").content.decode()
    assert "an alias" in client.get(VIOLATIONS + "?kind=bogus&status=bogus").content.decode()


def violation(subject_type: str, subject_id: str, **details: Any) -> ComplianceViolation:
    return violation_record(kind=ComplianceViolation.Kind.OUT_OF_BAND_ALIAS, subject=Subject(subject_type, subject_id),
                            summary=f"about {subject_type}", details=details)


def test_violation_subjects_link_to_their_console_pages(people: People, res: Resources) -> None:
    # given violations about a model, one of its versions, a dataset, a broken ledger and something with no page
    about_model = violation("registered_model", "fraud-detector")
    about_version = violation("model_version", "fraud-detector/2")
    about_dataset = violation("dataset", res.pci.name)
    about_ledger = violation("ledger", "origin", first_bad_seq=7)
    no_page = violation("webhook_endpoint", "mlflow")
    unknown_model = violation("registered_model", "no-such-model")
    # when
    response = client_for(people.auditor).get(VIOLATIONS)
    # then
    links = dict((v.pk, link) for v, link in response.context["rows"])
    assert links[about_model.pk] == links[about_version.pk] == reverse("console-model", args=[res.model.pk])
    assert links[about_dataset.pk] == reverse("console-dataset", args=[res.pci.pk])
    assert links[about_ledger.pk] == reverse("console-entry", args=[7])
    assert links[no_page.pk] is None and links[unknown_model.pk] is None
    html = response.content.decode()
    assert f'<a href="{reverse("console-dataset", args=[res.pci.pk])}">dataset:card-transactions</a>' in html
    assert "webhook_endpoint:mlflow</td>" in html


def test_a_violation_about_a_promotion_links_to_its_request(people: People, res: Resources) -> None:
    request = make_deployed(res.model.versions.get(version=1), res.production, requested_by=people.owner)
    v = violation("promotion_request", str(request.pk))
    rows = dict(client_for(people.infosec).get(VIOLATIONS).context["rows"])
    assert rows[v] == reverse("console-request", args=[request.pk])


# --- the data steward's review work -------------------------------------------------------------------------


def test_a_data_steward_sees_their_review_items_and_the_datasets_to_classify(people: People, res: Resources) -> None:
    # given: sam owns one confidential dataset that rita may read, an access review is open, and a dataset
    # has just been registered without a classification
    stewarded = Dataset.objects.create(name="merchant-risk", owner=people.steward, level="confidential",
                                       effective_level="confidential")
    grant(people.steward, people.requester, stewarded)
    campaign = review_campaign_start(actor=people.infosec, name="Q4 review",
                                     deadline=timezone.now() + timedelta(days=7))
    Dataset.objects.exclude(pk__in=[stewarded.pk, res.public.pk]).update(classified_at=timezone.now())
    # when
    response = client_for(people.steward).get(DASHBOARD)
    # then
    html = response.content.decode()
    [(item, label)] = response.context["review_items"]
    assert item.campaign == campaign and item.grant.resource_id == stewarded.pk and label == "dataset:merchant-risk"
    assert f'<a href="{reverse("console-review", args=[campaign.pk])}">Q4 review</a>' in html
    assert "Access-review items for you (1)" in html
    assert {d.name for d in response.context["unclassified"]} == {"fx-rates", "merchant-risk"}
    assert f'<a href="{reverse("console-dataset", args=[res.public.pk])}">fx-rates</a>' in html


def test_a_decided_item_leaves_the_stewards_dashboard(people: People, res: Resources) -> None:
    stewarded = Dataset.objects.create(name="merchant-risk", owner=people.steward, level="confidential",
                                       effective_level="confidential", classified_at=timezone.now())
    grant(people.steward, people.requester, stewarded)
    review_campaign_start(actor=people.infosec, name="Q4 review", deadline=timezone.now() + timedelta(days=7))
    item = ReviewItem.objects.get(reviewer=people.steward)
    review_item_decide(actor=people.steward, review_item=item, decision="certified", comment="still needed")
    response = client_for(people.steward).get(DASHBOARD)
    assert response.context["review_items"] == []
    assert "No access-review item waits for you." in response.content.decode()


def test_others_see_no_classification_queue(people: People, res: Resources) -> None:
    for who in ("requester", "approver", "auditor"):
        response = client_for(getattr(people, who)).get(DASHBOARD)
        assert response.context["unclassified"] == [] and "Datasets awaiting classification" not in \
            response.content.decode()
