"""Access requests (who approves what), access reviews (certify, revoke, deadline) and their admin pages."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from access.errors import AccessError, InvalidState, NotPermitted
from access.models import AccessRequest, Grant, ReviewCampaign, ReviewItem, ServiceAccount
from access.selectors import guardian_drift, requests_awaiting
from access.services.access_requests import (
    access_request_approve,
    access_request_create,
    access_request_reject,
    access_request_withdraw,
)
from access.services.checks import check
from access.services.grants import grant_revoke
from access.services.reviews import review_campaign_close, review_campaign_start, review_item_decide
from access.tasks import close_due_reviews, close_review
from audit.models import Entry
from config.celery import app
from tests.access.helpers import grant, ledger, ledger_entries, writes_nothing
from tests.catalog import Resources
from tests.personas import People, fresh

pytestmark = pytest.mark.django_db

# fixtures


@pytest.fixture(autouse=True)
def _celery_eager() -> object:
    saved = {k: app.conf[k] for k in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(saved)


def ask(user: User, resource: object, permission: str = "read_data", days: int = 30, **kwargs: object) -> AccessRequest:
    return access_request_create(
        actor=user, resource=resource, permission=permission, duration_days=days,  # type: ignore[arg-type]
        justification=kwargs.pop("justification", "features for the Q3 fraud model"), **kwargs,  # type: ignore[arg-type]
    )


# --- requests ----------------------------------------------------------------------------------------------


def test_the_owner_approves_a_request_and_the_grant_follows(people: People, res: Resources) -> None:
    request = ask(people.requester, res.confidential, days=60)
    assert not request.needs_infosec
    assert requests_awaiting(people.owner) == [request]
    assert requests_awaiting(people.requester) == []
    # when
    before = timezone.now()
    access_request_approve(actor=people.owner, access_request=request, comment="fine for the Q3 model")
    # then
    request.refresh_from_db()
    assert request.state == "approved" and request.owner_approved_by == people.owner
    g = Grant.objects.get(request=request)
    assert g.granted_by == people.owner and g.user == people.requester
    assert before + timedelta(days=60) <= g.expires_at <= timezone.now() + timedelta(days=60)
    assert check(people.requester, "read_data", res.confidential)
    assert fresh(people.requester).has_perm("access.read_data", res.confidential)
    assert requests_awaiting(people.owner) == []
    assert ledger("access.request_created") == [{
        "request_id": request.pk, "principal": f"user:{people.requester.pk}", "resource": "dataset:customers",
        "permission": "read_data", "duration_days": 60, "justification": "features for the Q3 fraud model",
        "needs_infosec": False,
    }]
    assert ledger("access.request_approved") == [
        {"request_id": request.pk, "as_role": "owner", "comment": "fine for the Q3 model", "final": True}
    ]
    [created] = ledger("access.grant_created")
    assert created["request_id"] == request.pk and created["grant_id"] == g.pk
    # the whole story is on the dataset's history, in order
    history = Entry.objects.filter(subject_type="dataset", subject_id="customers").order_by("seq")
    assert list(history.values_list("event_type", flat=True)) == [
        "access.request_created", "access.request_approved", "access.grant_created"
    ]


def test_self_approval_is_refused(people: People, res: Resources, service_account: ServiceAccount) -> None:
    # the owner asks for their own dataset: they cannot approve it themselves
    own = ask(people.owner, res.internal)
    with writes_nothing(), pytest.raises(NotPermitted, match="cannot approve") as exc:
        access_request_approve(actor=people.owner, access_request=own, comment="me")
    assert exc.value.code == "self_approval"
    # nor can the requester approve a request for their service account, nor the account itself
    for_pipeline = ask(people.requester, res.internal, "train_on", for_service_account=service_account)
    assert for_pipeline.principal_user == service_account.user
    for approver in (people.requester, service_account.user):
        with writes_nothing(), pytest.raises(NotPermitted, match="cannot approve"):
            access_request_approve(actor=approver, access_request=for_pipeline, comment="me")
    # the owner approves the pipeline's request; InfoSec stands in for the owner on the owner's own request
    access_request_approve(actor=people.owner, access_request=for_pipeline, comment="ok")
    assert check(service_account.user, "train_on", res.internal)
    assert requests_awaiting(people.infosec) == [own]
    access_request_approve(actor=people.infosec, access_request=own, comment="owner's own access, checked")
    own.refresh_from_db()
    assert own.state == "approved" and own.owner_approved_by == people.infosec
    assert ledger("access.request_approved")[-1]["as_role"] == "infosec_for_owner"


def test_a_request_over_the_maximum_duration_is_refused(people: People, res: Resources) -> None:
    for resource, days, limit in ((res.confidential, 91, 90), (res.restricted, 31, 30), (res.internal, 181, 180),
                                  (res.production, 91, 90)):
        permission = "deploy_to" if resource is res.production else "read_data"
        with writes_nothing(), pytest.raises(AccessError, match=f"at most {limit} days") as exc:
            ask(people.requester, resource, permission, days=days)
        assert exc.value.code == "duration_too_long"
        ask(people.requester, resource, permission, days=limit)


@pytest.mark.parametrize("resource", ["restricted", "pci"])
def test_restricted_or_pci_data_needs_infosec_too(people: People, res: Resources, resource: str) -> None:
    dataset = getattr(res, resource)
    request = ask(people.requester, dataset, days=10)
    assert request.needs_infosec
    assert requests_awaiting(people.infosec) == [request]
    # the owner's approval alone does not grant
    access_request_approve(actor=people.owner, access_request=request, comment="owner ok")
    request.refresh_from_db()
    assert request.state == "pending" and not Grant.objects.exists()
    assert not check(people.requester, "read_data", dataset, record_denial=False)
    assert requests_awaiting(people.owner) == []
    # the owner cannot fill InfoSec's slot too
    with writes_nothing(), pytest.raises(NotPermitted):
        access_request_approve(actor=people.owner, access_request=request, comment="again")
    # InfoSec completes it: the grant is made by InfoSec, the last approver
    access_request_approve(actor=people.infosec, access_request=request, comment="DPIA on file")
    g = Grant.objects.get(request=request)
    assert g.granted_by == people.infosec
    assert check(people.requester, "read_data", dataset)
    assert [p["as_role"] for p in ledger("access.request_approved")] == ["owner", "infosec"]
    assert [p["final"] for p in ledger("access.request_approved")] == [False, True]


def test_infosec_first_then_the_owner_grants_restricted_data(people: People, res: Resources) -> None:
    request = ask(people.requester, res.restricted, days=30)
    access_request_approve(actor=people.infosec, access_request=request, comment="ok")
    assert requests_awaiting(people.infosec2) == []  # InfoSec's slot is filled
    assert requests_awaiting(people.owner) == [request]
    access_request_approve(actor=people.owner, access_request=request, comment="ok")
    # the owner may not grant restricted data directly, but may as the last approver of this request
    assert Grant.objects.get(request=request).granted_by == people.owner


def test_one_person_fills_one_slot(people: People, res: Resources) -> None:
    people.owner.groups.add(people.infosec.groups.get(name="infosec"))  # the owner is also InfoSec
    request = ask(people.requester, res.restricted, days=5)
    access_request_approve(actor=people.owner, access_request=request, comment="as owner")
    with writes_nothing(), pytest.raises(NotPermitted, match="already approved") as exc:
        access_request_approve(actor=people.owner, access_request=request, comment="as infosec")
    assert exc.value.code == "already_approved"
    access_request_approve(actor=people.infosec, access_request=request, comment="second pair of eyes")
    assert AccessRequest.objects.get(pk=request.pk).state == "approved"


def test_an_environment_request_is_approved_by_infosec(people: People, res: Resources) -> None:
    request = ask(people.requester, res.production, "deploy_to", days=14)
    assert request.needs_infosec
    assert requests_awaiting(people.owner) == []
    access_request_approve(actor=people.infosec, access_request=request, comment="on-call rota")
    assert check(people.requester, "deploy_to", res.production)
    assert fresh(people.requester).has_perm("governance.deploy_to", res.production)


def test_a_classification_raised_after_the_request_needs_infosec(people: People, res: Resources) -> None:
    request = ask(people.requester, res.confidential, days=20)
    res.confidential.effective_level = "restricted"
    res.confidential.save()
    access_request_approve(actor=people.owner, access_request=request, comment="ok")
    request.refresh_from_db()
    assert request.state == "pending" and request.needs_infosec
    access_request_approve(actor=people.infosec, access_request=request, comment="ok")
    assert Grant.objects.filter(request=request).exists()


def test_request_refusals_write_nothing(people: People, res: Resources, service_account: ServiceAccount) -> None:
    request = ask(people.requester, res.internal)
    with writes_nothing():
        with pytest.raises(NotPermitted, match="governance role") as exc:
            ask(people.outsider, res.internal)
        assert exc.value.code == "no_role"
        with pytest.raises(AccessError, match="justification is required"):
            ask(people.steward, res.internal, justification="")
        with pytest.raises(AccessError, match="does not apply"):
            ask(people.steward, res.internal, "deploy_to")
        with pytest.raises(AccessError, match="at least 1"):
            ask(people.steward, res.internal, days=0)
        with pytest.raises(AccessError, match="already requested") as exc:
            ask(people.requester, res.internal)
        assert exc.value.code == "duplicate"
        with pytest.raises(NotPermitted, match="owner of service account"):
            ask(people.steward, res.internal, for_service_account=service_account)
        for who in (people.steward, people.outsider, people.auditor, people.infosec2):
            # not the owner; InfoSec is not needed for internal data
            with pytest.raises(NotPermitted, match="only the owner"):
                access_request_approve(actor=who, access_request=request, comment="ok")
        with pytest.raises(AccessError, match="comment is required"):
            access_request_approve(actor=people.owner, access_request=request, comment=" ")
        with pytest.raises(NotPermitted):
            access_request_reject(actor=people.steward, access_request=request, comment="no")
        with pytest.raises(NotPermitted, match="withdraw it instead"):
            access_request_reject(actor=people.requester, access_request=request, comment="no")
        with pytest.raises(NotPermitted, match="only the requester"):
            access_request_withdraw(actor=people.owner, access_request=request)


def test_reject_and_withdraw(people: People, res: Resources) -> None:
    rejected = ask(people.requester, res.internal)
    access_request_reject(actor=people.owner, access_request=rejected, comment="use the aggregated table")
    withdrawn = ask(people.steward, res.internal)
    access_request_withdraw(actor=people.steward, access_request=withdrawn, reason="not needed")
    for request in (rejected, withdrawn):
        with writes_nothing(), pytest.raises(InvalidState):
            access_request_approve(actor=people.owner, access_request=request, comment="late")
    assert not Grant.objects.exists()
    assert ledger("access.request_rejected") == [{"request_id": rejected.pk, "comment": "use the aggregated table"}]
    assert ledger("access.request_withdrawn") == [{"request_id": withdrawn.pk, "reason": "not needed"}]
    # after a rejection the same access may be asked again
    ask(people.requester, res.internal)


def test_requests_awaiting_does_not_grow_queries_with_requests(
    people: People, res: Resources, django_assert_max_num_queries: object
) -> None:
    for dataset in (res.internal, res.confidential, res.pci, res.restricted, res.public):
        ask(people.requester, dataset, days=10)
        ask(people.steward, dataset, days=10)
    with django_assert_max_num_queries(8):  # type: ignore[operator]
        awaiting = requests_awaiting(people.infosec)
    assert {(r.resource_id, r.requester_id) for r in awaiting} == {
        (d.pk, p.pk) for d in (res.pci, res.restricted) for p in (people.requester, people.steward)
    }
    assert len(requests_awaiting(people.owner)) == 10


# --- reviews -----------------------------------------------------------------------------------------------


@pytest.fixture
def granted(people: People, res: Resources) -> dict[str, Grant]:
    """Grants on every kind of resource, made before the campaign."""
    return {
        "internal": grant(people.owner, people.requester, res.internal),
        "confidential": grant(people.owner, people.requester, res.confidential),
        "restricted": grant(people.infosec, people.steward, res.restricted, days=20),
        "owner_self": grant(people.infosec, people.owner, res.restricted, days=20),
        "model": grant(people.owner, people.requester, res.model, "deploy_to"),
        "production": grant(people.infosec, people.team, res.production, "deploy_to"),
        "dev": grant(people.infosec, people.requester, res.dev, "deploy_to"),
    }


def _deadline() -> object:
    return timezone.now() + timedelta(days=14)


def test_a_campaign_covers_sensitive_resources_with_the_right_reviewers(
    people: People, res: Resources, granted: dict[str, Grant]
) -> None:
    campaign = review_campaign_start(actor=people.infosec, name="Q3 access review", deadline=_deadline())
    items = {i.grant_id: i for i in campaign.items.all()}
    assert set(items) == {granted[k].pk for k in ("confidential", "restricted", "owner_self", "model", "production",
                                                  "dev")}
    assert items[granted["confidential"].pk].reviewer == people.owner
    assert items[granted["model"].pk].reviewer == people.owner
    assert items[granted["production"].pk].reviewer == people.infosec  # environments: the campaign's creator
    assert items[granted["owner_self"].pk].reviewer == people.infosec  # nobody certifies their own access
    [payload] = ledger("access.review_started")
    assert payload["campaign_id"] == campaign.pk and payload["items"] == 6 and payload["name"] == "Q3 access review"
    restricted_only = review_campaign_start(actor=people.infosec, name="restricted", deadline=_deadline(),
                                                levels=["restricted"])
    assert {i.grant_id for i in restricted_only.items.all()} == {
        granted["restricted"].pk, granted["owner_self"].pk, granted["dev"].pk
    }


def test_only_infosec_starts_a_review_and_bad_input_writes_nothing(people: People, granted: dict[str, Grant]) -> None:
    with writes_nothing():
        for who in (people.owner, people.auditor, people.outsider):
            with pytest.raises(NotPermitted):
                review_campaign_start(actor=who, name="x", deadline=_deadline())
        with pytest.raises(AccessError, match="future"):
            review_campaign_start(actor=people.infosec, name="x", deadline=timezone.now())
        with pytest.raises(AccessError, match="levels"):
            review_campaign_start(actor=people.infosec, name="x", deadline=_deadline(), levels=["secret"])
        with pytest.raises(AccessError, match="name is required"):
            review_campaign_start(actor=people.infosec, name="", deadline=_deadline())


def test_reviewers_certify_or_revoke_and_revocation_is_immediate(
    people: People, res: Resources, granted: dict[str, Grant]
) -> None:
    campaign = review_campaign_start(actor=people.infosec, name="Q3", deadline=_deadline())
    items = {i.grant_id: i for i in campaign.items.all()}
    review_item_decide(actor=people.owner, review_item=items[granted["confidential"].pk], decision="certified",
                           comment="still on the fraud team")
    review_item_decide(actor=people.owner, review_item=items[granted["model"].pk], decision="revoked",
                           comment="moved to credit risk")
    assert check(people.requester, "read_data", res.confidential)
    assert not check(people.requester, "deploy_to", res.model, record_denial=False)
    assert not fresh(people.requester).has_perm("governance.deploy_to", res.model)
    assert ledger("access.review_decided") == [
        {"campaign_id": campaign.pk, "grant_id": granted["confidential"].pk, "decision": "certified",
         "comment": "still on the fraud team"},
        {"campaign_id": campaign.pk, "grant_id": granted["model"].pk, "decision": "revoked",
         "comment": "moved to credit risk"},
    ]
    [revoked] = ledger("access.grant_revoked")
    assert revoked["reason"] == "revoked in access review Q3: moved to credit risk"
    with writes_nothing():
        with pytest.raises(InvalidState, match="already certified"):
            review_item_decide(actor=people.owner, review_item=items[granted["confidential"].pk], decision="revoked")
        with pytest.raises(NotPermitted, match="reviewer or InfoSec"):
            review_item_decide(actor=people.steward, review_item=items[granted["restricted"].pk], decision="certified")
        with pytest.raises(NotPermitted, match="your own access"):  # the owner's own grant, even as InfoSec
            people.owner.groups.add(people.infosec.groups.get(name="infosec"))
            # roles are read once per user object (access.roles.role_names): a fresh one sees the new group
            review_item_decide(actor=fresh(people.owner), review_item=items[granted["owner_self"].pk],
                                   decision="certified")
        with pytest.raises(AccessError, match="'certified' or 'revoked'"):
            review_item_decide(actor=people.infosec, review_item=items[granted["dev"].pk], decision="maybe")


def test_the_deadline_revokes_uncertified_grants(people: People, res: Resources, granted: dict[str, Grant]) -> None:
    campaign = review_campaign_start(actor=people.infosec, name="Q3", deadline=_deadline())
    items = {i.grant_id: i for i in campaign.items.all()}
    review_item_decide(actor=people.owner, review_item=items[granted["confidential"].pk], decision="certified")
    review_item_decide(actor=people.infosec, review_item=items[granted["dev"].pk], decision="revoked")
    grant_revoke(actor=people.infosec, grant=granted["restricted"], reason="left")  # ended meanwhile
    # before the deadline: not due, nothing written
    with writes_nothing(), pytest.raises(InvalidState, match="not due"):
        review_campaign_close(campaign=campaign)
    # when: at the deadline
    closed = review_campaign_close(campaign=campaign, now=campaign.deadline)
    # then: what nobody certified is revoked; the certified grant stays
    assert closed.state == "closed" and closed.closed_at == campaign.deadline
    assert check(people.requester, "read_data", res.confidential)
    for key, principal, resource, permission in (
        ("model", people.requester, res.model, "governance.deploy_to"),
        ("production", people.requester, res.production, "governance.deploy_to"),
        ("owner_self", people.owner, res.restricted, "access.read_data"),
    ):
        g = Grant.objects.get(pk=granted[key].pk)
        assert g.revoke_reason == "not certified by the review deadline" and g.revoked_by is None
        assert not fresh(principal).has_perm(permission, resource)
    assert not check(people.team, "deploy_to", res.production, record_denial=False)
    report = closed.report
    assert (report["items"], report["certified"], report["revoked"], report["auto_revoked"],
            report["already_ended"]) == (6, 1, 1, 3, 1)
    outcomes = {o["grant_id"]: o["outcome"] for o in report["outcomes"]}
    assert outcomes[granted["production"].pk] == "auto_revoked"
    assert outcomes[granted["restricted"].pk] == "already_ended"
    assert {o["resource"] for o in report["outcomes"]} >= {"environment:production", "registered_model:fraud-detector"}
    assert ledger("access.review_closed") == [
        {"campaign_id": campaign.pk, "certified": 1, "revoked": 1, "auto_revoked": 3}
    ]
    [closing] = ledger_entries("access.review_closed")
    assert (closing.actor_type, closing.actor_id) == ("system", "access-review")
    assert sorted(p["reason"] for p in ledger("access.grant_revoked")).count(
        "not certified by the review deadline") == 3
    assert guardian_drift() == []
    # closing twice is refused and writes nothing
    with writes_nothing(), pytest.raises(InvalidState, match="already closed"):
        review_campaign_close(campaign=campaign, now=campaign.deadline)


def test_decisions_after_the_deadline_are_refused(people: People, granted: dict[str, Grant]) -> None:
    campaign = review_campaign_start(actor=people.infosec, name="Q3", deadline=_deadline())
    ReviewCampaign.objects.filter(pk=campaign.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    item = campaign.items.get(grant=granted["confidential"])
    with writes_nothing(), pytest.raises(InvalidState, match="deadline") as exc:
        review_item_decide(actor=people.owner, review_item=item, decision="certified")
    assert exc.value.code == "deadline_passed"


def test_the_close_task_closes_due_campaigns_once(people: People, res: Resources, granted: dict[str, Grant]) -> None:
    due = review_campaign_start(actor=people.infosec, name="due", deadline=_deadline())
    later = review_campaign_start(actor=people.infosec, name="later", deadline=_deadline())
    ReviewCampaign.objects.filter(pk=due.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    assert close_due_reviews.delay().get() == 1
    assert close_due_reviews.delay().get() == 0
    assert close_review.delay(due.pk).get() == "nothing to do (invalid_state)"
    assert close_review.delay(later.pk).get() == "nothing to do (not_due)"
    assert close_review.delay(999999).get() == "missing"
    assert ReviewCampaign.objects.get(pk=due.pk).state == "closed"
    assert ReviewCampaign.objects.get(pk=later.pk).state == "open"
    assert not check(people.requester, "read_data", res.confidential, record_denial=False)
    # the later campaign's items for revoked grants close as "already ended"
    ReviewCampaign.objects.filter(pk=later.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    assert close_due_reviews.delay().get() == 1
    report = ReviewCampaign.objects.get(pk=later.pk).report
    assert report["auto_revoked"] == 0 and report["already_ended"] == 6
    assert ReviewItem.objects.filter(decision="pending").count() == 0


# The access admin pages are InfoSec's and auditors' read-only view: tests/admin/.
