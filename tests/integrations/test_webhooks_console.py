"""The console's webhooks pages: InfoSec subscribes (secret shown once), replays; auditors read; others 403."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry, PendingEntry
from integrations.models import StreamCursor, WebhookAttempt, WebhookSubscription
from integrations.webhooks.delivery import subscription_deliver
from tests.console.helpers import client_for
from tests.integrations.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local_targets(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_ALLOW_HTTP = True


@pytest.fixture
def receiver() -> Any:
    r = Receiver().start()
    yield r
    r.stop()


def _create(client: Any, receiver: Receiver, **extra: str) -> Any:
    data = {"name": "bridge", "url": receiver.url, "event_types": "ledger.note_added webhook.*", **extra}
    return client.post("/console/webhooks/new/", data)


def test_infosec_subscribes_and_sees_the_secret_once(infosec: User, receiver: Receiver) -> None:
    response = _create(client_for(infosec), receiver)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    sub = WebhookSubscription.objects.get()
    assert sub.secret in response.content.decode()
    assert sub.event_types == ["ledger.note_added", "webhook.*"]
    # Never again: neither the list nor the detail page shows it.
    client = client_for(infosec)
    for page in ("/console/webhooks/", f"/console/webhooks/{sub.pk}/"):
        answer = client.get(page)
        assert answer.status_code == 200 and sub.secret not in answer.content.decode()
        assert sub.secret[6:] not in answer.content.decode()


def test_bad_input_is_a_message_not_a_500(infosec: User, receiver: Receiver, settings: Any) -> None:
    client = client_for(infosec)
    for extra in ({"event_types": "nosuch.type"}, {"url": "ftp://x/"}, {"from_seq": "abc"},
                  {"subject_id": "x"}, {"name": ""}):
        response = _create(client, receiver, **extra)
        assert response.status_code == 302, extra
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    response = _create(client, receiver)
    assert response.status_code == 302
    messages = client.get("/console/webhooks/").content.decode()
    assert "non-public address" in messages
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize("who", ["auditor", "owner", "outsider"])
def test_nobody_but_infosec_subscribes_or_replays(request: pytest.FixtureRequest, infosec: User,
                                                   receiver: Receiver, who: str) -> None:
    _create(client_for(infosec), receiver, url=receiver.url + "?token=receiver-token-42")
    sub = WebhookSubscription.objects.get()
    pending = PendingEntry.objects.count()
    person = request.getfixturevalue(who)
    client = client_for(person)
    created = _create(client, receiver)
    replay = client.post(f"/console/webhooks/{sub.pk}/replay/", {"from_seq": "0", "reason": "r"})
    paused = client.post(f"/console/webhooks/{sub.pk}/pause/", {"reason": "r"})
    rotated = client.post(f"/console/webhooks/{sub.pk}/rotate/", {"reason": "r"})
    if who == "auditor":  # reads the pages; the service refuses the actions
        listing = client.get("/console/webhooks/")
        assert listing.status_code == 200 and "only InfoSec manages webhook subscriptions" in listing.content.decode()
        detail = client.get(f"/console/webhooks/{sub.pk}/")
        assert detail.status_code == 200
        csv = b"".join(client.get("/console/webhooks/?format=csv").streaming_content).decode()
        # An auditor sees the target's origin, never the path or query (a token may be in them).
        for page in (listing.content.decode(), detail.content.decode(), csv):
            assert f"127.0.0.1:{receiver.port}" in page and "receiver-token-42" not in page
        assert {created.status_code, replay.status_code, paused.status_code, rotated.status_code} == {302}
    else:
        assert client.get("/console/webhooks/").status_code == 403
        assert {created.status_code, replay.status_code, paused.status_code, rotated.status_code} == {403}
    assert WebhookSubscription.objects.count() == 1 and PendingEntry.objects.count() == pending
    sub.refresh_from_db()
    assert sub.status == "active" and sub.secret not in rotated.content.decode()


def test_replay_and_the_delivery_log_in_the_console(infosec: User, receiver: Receiver) -> None:
    client = client_for(infosec)
    receiver.secret = WebhookSubscription.objects.get(pk=_sub_pk(client, receiver)).secret
    sub = WebhookSubscription.objects.get()
    with transaction.atomic():
        for text in ("a", "b"):
            record(event_type="ledger.note_added", actor=Actor.system("t"), subject=Subject("registered_model", "m"),
                   payload={"text": text, "reference": "R"})
    integrate()
    subscription_deliver(subscription_id=sub.pk)
    notes = list(Entry.objects.filter(event_type="ledger.note_added").values_list("seq", flat=True))
    assert len([d for d in receiver.deliveries if d.body["type"] == "ledger.note_added"]) == 2
    response = client.post(f"/console/webhooks/{sub.pk}/replay/",
                           {"from_seq": str(notes[1]), "reason": "lost on the receiver", "next": "/console/webhooks/"})
    assert response.status_code == 302
    assert StreamCursor.objects.get(name=sub.stream_name).seq == notes[1] - 1
    integrate()
    subscription_deliver(subscription_id=sub.pk)
    assert receiver.ids.count(f"ledger-{notes[1]}-sub-{sub.pk}") == 2
    page = client.get(f"/console/webhooks/{sub.pk}/").content.decode()
    assert f"ledger-{notes[1]}-sub-{sub.pk}" in page and "delivered" in page
    assert WebhookAttempt.objects.filter(subscription=sub).count() >= 4
    csv = client.get(f"/console/webhooks/{sub.pk}/?format=csv")
    assert csv.status_code == 200 and b"webhook-id" in b"".join(csv.streaming_content)
    assert sub.secret not in page


def _sub_pk(client: Any, receiver: Receiver) -> int:
    _create(client, receiver)
    integrate()
    return WebhookSubscription.objects.get().pk


def test_pause_resume_rotate_delete_through_the_console(infosec: User, receiver: Receiver) -> None:
    client = client_for(infosec)
    pk = _sub_pk(client, receiver)
    client.post(f"/console/webhooks/{pk}/pause/", {"reason": "maintenance"})
    assert WebhookSubscription.objects.get(pk=pk).status == "paused"
    client.post(f"/console/webhooks/{pk}/resume/", {"reason": "done"})
    assert WebhookSubscription.objects.get(pk=pk).status == "active"
    old = WebhookSubscription.objects.get(pk=pk).secret
    rotated = client.post(f"/console/webhooks/{pk}/rotate/", {"reason": "leak drill"})
    new = WebhookSubscription.objects.get(pk=pk).secret
    assert new != old and new in rotated.content.decode() and "no-store" in rotated["Cache-Control"]
    client.post(f"/console/webhooks/{pk}/delete/", {"reason": "retired"})
    assert WebhookSubscription.objects.get(pk=pk).status == "deleted"
    assert client.get("/console/webhooks/?show=deleted").status_code == 200


def test_infosec_changes_the_filters_and_a_bad_change_changes_nothing(infosec: User, receiver: Receiver) -> None:
    client = client_for(infosec)
    pk = _sub_pk(client, receiver)
    data = {"name": "bridge 2", "url": receiver.url, "event_types": "access.*", "subject_type": "dataset",
            "reason": "only datasets"}
    assert client.post(f"/console/webhooks/{pk}/edit/", data).status_code == 302
    sub = WebhookSubscription.objects.get(pk=pk)
    assert (sub.name, sub.event_types, sub.subject_type) == ("bridge 2", ["access.*"], "dataset")
    integrate()
    updated = Entry.objects.get(event_type="webhook.subscription_updated").payload
    assert updated["event_types"] == ["access.*"] and updated["reason"] == "only datasets"
    client.post(f"/console/webhooks/{pk}/edit/", {**data, "url": "ftp://internal/", "name": "evil"})
    sub.refresh_from_db()
    assert sub.name == "bridge 2" and sub.url == receiver.url
