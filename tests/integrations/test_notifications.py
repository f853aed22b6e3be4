"""Notifications to people (integrations.notifications), against a real SMTP server and a real chat receiver.

The SMTP server is aiosmtpd's ``Controller`` on 127.0.0.1 and Django's smtp backend talks to it; the chat
receiver is a stdlib ``http.server`` on 127.0.0.1 taking Slack-format JSON. Nothing is mocked.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from access.models import Dataset
from access.services.access_requests import access_request_create, access_request_reject
from audit.ledger import Subject, integrate
from governance.services.break_glass import break_glass_reviews_flag_overdue, promotion_break_glass
from governance.services.compliance import violation_record
from governance.services.promotions import promotion_request, promotion_withdraw
from integrations.models import Notification, NotificationPreference
from integrations.notifications import channels, rules, services
from integrations.notifications.services import (
    PreferenceError,
    grants_expiring_scan,
    notifications_collect,
    notifications_send,
    preference_update,
)
from tests.access.helpers import grant
from tests.catalog import Resources
from tests.personas import People
from tests.promotions import Gov

pytestmark = pytest.mark.django_db

SMTP_PORT = 19300
CHAT_PORT = 19301
BASE = "https://console.example.test"


class Mailbox:
    """aiosmtpd handler: every accepted message, parsed."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for rcpt, m in self.messages if address in rcpt]


def _start_smtp(box: Mailbox) -> Controller:
    controller = Controller(box, hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    return controller


@pytest.fixture
def mailbox(settings: Any) -> Iterator[tuple[Mailbox, list[Controller]]]:
    """A real SMTP server on 127.0.0.1 and Django's smtp backend pointed at it (stoppable by the test)."""
    box = Mailbox()
    running = [_start_smtp(box)]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", SMTP_PORT
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    yield box, running
    for controller in running:
        try:
            controller.stop()
        except (AssertionError, RuntimeError):
            pass  # already stopped by the test


@pytest.fixture
def box(mailbox: tuple[Mailbox, list[Controller]]) -> Mailbox:
    return mailbox[0]


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    settings.CONSOLE_BASE_URL = BASE
    settings.NOTIFY_COALESCE_SECONDS = 60
    settings.NOTIFY_CHAT_ALLOW_PRIVATE = True  # the chat receiver runs on 127.0.0.1


class ChatReceiver:
    """A Slack-compatible incoming webhook on 127.0.0.1: keeps each JSON body, answers ``status``."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if receiver.status == 200:
                    receiver.posts.append(body)
                self.send_response(receiver.status)
                if receiver.status in (301, 302, 307, 308):
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", CHAT_PORT), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{CHAT_PORT}/services/T000/B000/secret-token"


@pytest.fixture
def chat() -> Iterator[ChatReceiver]:
    receiver = ChatReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def deliver(later: timedelta = timedelta(minutes=2)) -> dict[str, int]:
    """Integrate the ledger, collect every new entry into the queues, and send what is due ``later`` from now."""
    integrate()
    while notifications_collect().count:
        pass
    return notifications_send(now=timezone.now() + later)


def body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


# --- who hears of what ----------------------------------------------------------------------------------------

def test_a_pending_promotion_reaches_its_approvers_by_email_with_a_link_and_nobody_else(
        box: Mailbox, gov: Gov, people: People) -> None:
    request = promotion_request(actor=people.owner, version=gov.v2, environment=gov.staging, reason="better recall")
    deliver()
    for approver in (people.approver, people.approver2):
        [mail] = box.to(approver.email)
        text = body(mail)
        assert f"Promotion #{request.pk} of fraud-detector v2 to staging waits for your approval" in mail["Subject"]
        assert f"{BASE}/console/approvals/requests/{request.pk}/" in text
        # No third party's personal data: not the requester's name, username or address, nor the reason.
        for leak in (people.owner.username, people.owner.email, people.owner.get_full_name() or "olga",
                     "better recall"):
            assert leak not in text and leak not in mail["Subject"]
    assert box.to(people.owner.email) == []  # the requester is not asked to approve her own request
    assert box.to(people.outsider.email) == [] and box.to(people.model_risk.email) == []


def test_a_decision_reaches_the_requester(box: Mailbox, gov: Gov, people: People) -> None:
    request = promotion_request(actor=people.owner, version=gov.v2, environment=gov.staging, reason="r")
    deliver()
    box.messages.clear()
    promotion_withdraw(actor=people.infosec, promotion=request, reason="superseded")
    deliver(timedelta(minutes=10))
    [mail] = box.to(people.owner.email)
    assert f"Your promotion #{request.pk} of fraud-detector v2 to staging was withdrawn" in mail["Subject"]
    assert people.infosec.username not in body(mail) and "superseded" not in body(mail)
    assert box.to(people.infosec.email) == []  # nobody hears of their own action


def test_an_access_request_reaches_the_dataset_owner_not_someone_without_a_role_on_it(
        box: Mailbox, res: Resources, people: People) -> None:
    request = access_request_create(actor=people.requester, resource=res.internal, permission="read_data",
                                    duration_days=30, justification="features")
    deliver()
    [mail] = box.to(people.owner.email)
    assert f"Access request #{request.pk} (read_data on dataset:payments-internal) waits" in mail["Subject"]
    assert f"{BASE}/console/access/requests/{request.pk}/" in body(mail)
    assert people.requester.username not in body(mail)
    for other in (people.outsider, people.steward, people.approver, people.requester):
        assert box.to(other.email) == [], other.username
    access_request_reject(actor=people.owner, access_request=request, comment="use the aggregate")
    deliver(timedelta(minutes=10))
    [decision] = box.to(people.requester.email)
    assert "was rejected" in decision["Subject"] and "use the aggregate" not in body(decision)


def test_a_violation_reaches_infosec_only(box: Mailbox, people: People, db: None) -> None:
    violation_record(kind="out_of_band_alias", subject=Subject("registered_model", "fraud-detector"),
                     summary="alias moved", details={})
    deliver()
    assert box.to(people.infosec.email) and box.to(people.infosec2.email)
    assert "Compliance violation (out of band alias)" in box.to(people.infosec.email)[0]["Subject"]
    assert box.to(people.auditor.email) == [] and box.to(people.owner.email) == []


def test_an_integrity_failure_reaches_infosec(box: Mailbox, people: People, db: None) -> None:
    violation_record(kind="integrity", subject=Subject("ledger", "ledger"), summary="verification failed",
                     details={})
    deliver()
    [mail] = box.to(people.infosec.email)
    assert "Ledger integrity check failed" in mail["Subject"] and f"{BASE}/console/violations/" in body(mail)
    assert Notification.objects.get(recipient=people.infosec).category == "integrity"


def test_a_grant_expiring_within_7_days_is_announced_once_to_grantee_and_owner(
        box: Mailbox, res: Resources, people: People) -> None:
    soon = grant(people.owner, people.requester, res.internal, days=3)
    grant(people.owner, people.steward, res.internal, days=30)  # not within 7 days
    assert grants_expiring_scan() == 2 and grants_expiring_scan() == 0  # once per grant, however many runs
    deliver()
    for person in (people.requester, people.owner):
        [mail] = box.to(person.email)
        assert f"Grant #{soon.pk} (read_data on dataset:payments-internal) expires on" in mail["Subject"]
    # The owner is not told who holds it.
    assert people.requester.username not in body(box.to(people.owner.email)[0])
    assert box.to(people.steward.email) == []


# --- digests, preferences, chat ---------------------------------------------------------------------------------

def test_several_notifications_become_one_digest(box: Mailbox, res: Resources, people: People) -> None:
    for dataset in (res.internal, res.public, res.confidential):
        access_request_create(actor=people.requester, resource=dataset, permission="read_data", duration_days=5,
                              justification="features")
    deliver()
    [digest] = box.to(people.owner.email)
    assert digest["Subject"] == "[governance] 3 notifications"
    assert body(digest).count(f"{BASE}/console/access/requests/") == 3


def test_the_hourly_digest_waits_for_the_hour(box: Mailbox, res: Resources, people: People) -> None:
    preference_update(actor=people.owner, user=people.owner, channels={}, digest="hourly")
    access_request_create(actor=people.requester, resource=res.internal, permission="read_data", duration_days=5,
                          justification="features")
    deliver(timedelta(seconds=0))
    assert box.to(people.owner.email) == []
    row = Notification.objects.get(recipient=people.owner)
    assert (row.state, row.due_at.minute, row.due_at.second) == ("pending", 0, 0) and row.due_at > timezone.now()
    notifications_send(now=timezone.now() + timedelta(hours=1, minutes=1))
    assert len(box.to(people.owner.email)) == 1


def test_none_sends_nothing(box: Mailbox, res: Resources, people: People) -> None:
    preference_update(actor=people.owner, user=people.owner, channels={"access_waiting": "none"}, digest="immediate")
    access_request_create(actor=people.requester, resource=res.internal, permission="read_data", duration_days=5,
                          justification="features")
    deliver()
    assert box.to(people.owner.email) == []
    assert not Notification.objects.filter(recipient=people.owner).exists()


def test_chat_gets_slack_json_and_no_email(box: Mailbox, chat: ChatReceiver, res: Resources, people: People) -> None:
    preference_update(actor=people.owner, user=people.owner, channels={"access_waiting": "chat"}, digest="immediate",
                      chat_url=chat.url)
    request = access_request_create(actor=people.requester, resource=res.internal, permission="read_data",
                                    duration_days=5, justification="features")
    deliver()
    assert box.to(people.owner.email) == []
    [post] = chat.posts
    assert post["text"].startswith(f"Access request #{request.pk}")
    [block] = post["blocks"]
    assert block["text"]["text"].startswith(f"<{BASE}/console/access/requests/{request.pk}/|Access request")


def test_a_chat_receiver_failing_keeps_the_notification_and_the_url_out_of_the_error(
        box: Mailbox, chat: ChatReceiver, res: Resources, people: People) -> None:
    preference_update(actor=people.owner, user=people.owner, channels={"access_waiting": "chat"}, digest="immediate",
                      chat_url=chat.url)
    access_request_create(actor=people.requester, resource=res.internal, permission="read_data", duration_days=5,
                          justification="features")
    chat.status = 500
    assert deliver()["failed"] == 1
    row = Notification.objects.get(recipient=people.owner)
    assert row.state == "pending" and "HTTP 500" in row.last_error and "secret-token" not in row.last_error
    chat.status = 200
    notifications_send(now=timezone.now() + timedelta(minutes=5))
    assert len(chat.posts) == 1


def test_smtp_down_is_retried_later_nothing_lost_no_duplicates(
        mailbox: tuple[Mailbox, list[Controller]], res: Resources, people: People) -> None:
    box, running = mailbox
    running.pop().stop()
    access_request_create(actor=people.requester, resource=res.internal, permission="read_data", duration_days=5,
                          justification="features")
    assert deliver()["failed"] == 1
    row = Notification.objects.get(recipient=people.owner)
    assert (row.state, row.attempts, row.sent_at) == ("pending", 1, None)
    # Before the backoff runs out nothing is tried; the server comes back; afterwards exactly one message.
    assert notifications_send(now=timezone.now() + timedelta(minutes=2, seconds=30)) == \
        {"sent": 0, "dropped": 0, "failed": 0}
    running.append(_start_smtp(box))
    assert notifications_send(now=timezone.now() + timedelta(minutes=4))["sent"] == 1
    assert notifications_send(now=timezone.now() + timedelta(minutes=30))["sent"] == 0
    assert len(box.to(people.owner.email)) == 1
    row.refresh_from_db()
    assert row.state == "sent" and row.sent_at is not None


def test_a_redelivered_entry_queues_nothing_twice(box: Mailbox, res: Resources, people: People) -> None:
    access_request_create(actor=people.requester, resource=res.internal, permission="read_data", duration_days=5,
                          justification="features")
    deliver()
    from integrations.streams import stream_rewind
    stream_rewind(name="notifications", to_seq=-1)  # the at-least-once stream delivers the same entries again
    deliver(timedelta(minutes=10))
    assert Notification.objects.filter(recipient=people.owner).count() == 1
    assert len(box.to(people.owner.email)) == 1


def test_rows_claimed_by_another_worker_are_not_sent_again(box: Mailbox, res: Resources, people: People) -> None:
    access_request_create(actor=people.requester, resource=res.internal, permission="read_data", duration_days=5,
                          justification="features")
    integrate()
    notifications_collect()
    Notification.objects.update(claim_token="other", claimed_until=timezone.now() + timedelta(minutes=10))
    assert notifications_send(now=timezone.now() + timedelta(minutes=2))["sent"] == 0
    assert box.messages == []
    # That worker died: once its claim runs out the rows leave.
    assert notifications_send(now=timezone.now() + timedelta(minutes=11))["sent"] == 1


def test_old_history_is_not_notified(box: Mailbox, people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    violation_record(kind="out_of_band_alias", subject=Subject("registered_model", "m"), summary="s", details={})
    integrate()
    # The ledger is append-only (no entry can be back-dated): the entry is made "old" by shrinking the horizon.
    monkeypatch.setattr(services, "MAX_AGE", timedelta(seconds=-1))
    assert notifications_collect().count == 1  # read, passed over
    assert not Notification.objects.exists()


# --- attacks ----------------------------------------------------------------------------------------------------

def test_a_model_name_cannot_inject_mail_headers(box: Mailbox, gov: Gov, people: People) -> None:
    gov.model.name = "evil\r\nBcc: attacker@evil.test"
    gov.model.save(update_fields=["name"])
    promotion_request(actor=people.owner, version=gov.v2, environment=gov.staging, reason="r")
    deliver()
    assert all("attacker@evil.test" not in rcpt for rcpt, _ in box.messages)
    assert box.messages and all(m["Bcc"] is None for _, m in box.messages)
    assert rules.clean("a\r\nb\x00c") == "a b c"


def test_chat_urls_must_be_https_to_a_public_host(settings: Any, people: People) -> None:
    settings.NOTIFY_CHAT_ALLOW_PRIVATE = False
    for url, reason in (("http://hooks.example.com/x", "https"), ("https://127.0.0.1/x", "public address"),
                        ("https://10.0.0.5/x", "public address"), ("https://[::1]/x", "public address"),
                        ("https://169.254.169.254/latest", "public address"), ("https://u:p@hooks.example/x", "user")):
        with pytest.raises(PreferenceError, match=reason) as refused:
            preference_update(actor=people.owner, user=people.owner, channels={}, digest="daily", chat_url=url)
        assert url not in str(refused.value)  # the URL is a secret: never echoed
    assert not NotificationPreference.objects.exists()
    with pytest.raises(channels.ChatError, match="public address"):
        channels.send_chat("https://127.0.0.1:19302/x", [channels.Item("t", "u")])


def test_a_person_sets_only_their_own_preferences(people: People) -> None:
    with pytest.raises(PreferenceError, match="only their own"):
        preference_update(actor=people.infosec, user=people.owner, channels={"violation": "none"}, digest="daily")
    with pytest.raises(PreferenceError, match="channel must be"):
        preference_update(actor=people.owner, user=people.owner, channels={"violation": "sms"}, digest="daily")
    with pytest.raises(PreferenceError, match="chat needs"):
        preference_update(actor=people.owner, user=people.owner, channels={"violation": "chat"}, digest="daily")


def test_an_attacker_flooding_requests_makes_one_message_per_digest(
        box: Mailbox, res: Resources, people: People) -> None:
    for i in range(25):
        dataset = Dataset.objects.create(name=f"spam-{i}", owner=people.owner, level="public", effective_level="public")
        access_request_create(actor=people.requester, resource=dataset, permission="read_data", duration_days=1,
                              justification="x")
    deliver()
    [mail] = box.to(people.owner.email)
    assert mail["Subject"] == "[governance] 25 notifications" and "… and 5 more" in body(mail)


# --- the console page -------------------------------------------------------------------------------------------

def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_console_page_saves_preferences_and_never_shows_the_chat_url(chat: ChatReceiver, people: People) -> None:
    client = _client(people.owner)
    page = client.get("/console/preferences/notifications/")
    assert page.status_code == 200 and b"A promotion waits for your approval" in page.content
    form = {f"channel_{k}": "email" for k in rules.CATEGORIES} | {"channel_violation": "chat", "digest": "daily",
                                                                 "chat_url": chat.url}
    assert client.post("/console/preferences/notifications/", form).status_code == 302
    pref = NotificationPreference.objects.get(user=people.owner)
    assert (pref.digest, pref.channels["violation"], pref.chat_url) == ("daily", "chat", chat.url)
    again = client.get("/console/preferences/notifications/")
    assert b"secret-token" not in again.content and b"oken" in again.content  # masked: host and last 4 only
    bad = client.post("/console/preferences/notifications/", form | {"channel_violation": "pager"})
    assert bad.status_code == 400 and b"channel must be" in bad.content
    # Keeping the saved URL: an empty field changes nothing.
    assert client.post("/console/preferences/notifications/", form | {"chat_url": ""}).status_code == 302
    assert NotificationPreference.objects.get(user=people.owner).chat_url == chat.url


def test_preferences_are_erased_with_the_person(people: People) -> None:
    from audit.signals import subject_erased
    preference_update(actor=people.owner, user=people.owner, channels={}, digest="daily")
    subject_erased.send(sender=None, data_subject=f"user:{people.owner.pk}")
    assert not NotificationPreference.objects.exists()



def test_a_break_glass_reaches_its_reviewers_and_so_does_its_overdue_review(
        box: Mailbox, gov: Gov, people: People, fake_registry: Any, celery_eager: None) -> None:
    request = promotion_break_glass(actor=people.breakglass, version=gov.v2, environment=gov.production,
                                    justification="INC-4711: v1 blocks every Amex transaction")
    deliver()
    reviewers = {p.email for p in (people.model_risk, people.model_risk2)}
    for address in reviewers:
        [mail] = box.to(address)
        assert f"Break-glass promotion #{request.pk} of fraud-detector v2 to production needs your post-hoc review" \
            in mail["Subject"] and f"{BASE}/console/approvals/break-glass/" in body(mail)
        assert "INC-4711" not in body(mail) and people.breakglass.username not in body(mail)
    for other in (people.breakglass, people.approver, people.outsider, people.owner):
        assert box.to(other.email) == [], other.username
    box.messages.clear()
    break_glass_reviews_flag_overdue(now=timezone.now() + timedelta(days=30))
    deliver(timedelta(minutes=10))
    for address in reviewers:
        [mail] = box.to(address)
        assert "post-hoc review of break-glass" in mail["Subject"] and "is overdue" in mail["Subject"]
    assert "Compliance violation (overdue break glass review)" in body(box.to(people.infosec.email)[0])


def test_the_scheduled_tasks_collect_and_send(
        box: Mailbox, res: Resources, people: People, settings: Any, celery_eager: None) -> None:
    from config.celery import app
    from integrations import tasks
    names = {e["task"] for k, e in settings.CELERY_BEAT_SCHEDULE.items() if k.startswith("notifications-")}
    assert names == {"integrations.tasks.collect_notifications", "integrations.tasks.send_notifications",
                     "integrations.tasks.scan_expiring_grants"} and names <= set(app.tasks)
    settings.NOTIFY_COALESCE_SECONDS = 0
    access_request_create(actor=people.requester, resource=res.internal, permission="read_data", duration_days=5,
                          justification="features")
    integrate()
    assert tasks.collect_notifications() == 1  # then queues send_notifications (eager here): due at once
    assert len(box.to(people.owner.email)) == 1
    grant(people.owner, people.requester, res.public, days=2)
    assert tasks.scan_expiring_grants() == 2


def test_a_chat_redirect_is_not_followed(chat: ChatReceiver, res: Resources, people: People) -> None:
    preference_update(actor=people.owner, user=people.owner, channels={"access_waiting": "chat"}, digest="immediate",
                      chat_url=chat.url)
    access_request_create(actor=people.requester, resource=res.internal, permission="read_data", duration_days=5,
                          justification="features")
    chat.status = 302  # towards the cloud metadata service (urllib would follow it as a GET)
    assert deliver()["failed"] == 1
    assert "HTTP 302" in Notification.objects.get(recipient=people.owner).last_error


def test_a_channel_turned_off_before_the_digest_leaves_drops_it(box: Mailbox, res: Resources, people: People) -> None:
    access_request_create(actor=people.requester, resource=res.internal, permission="read_data", duration_days=5,
                          justification="features")
    integrate()
    notifications_collect()
    preference_update(actor=people.owner, user=people.owner, channels={"access_waiting": "none"}, digest="immediate")
    assert notifications_send(now=timezone.now() + timedelta(minutes=2)) == {"sent": 0, "dropped": 1, "failed": 0}
    assert box.messages == [] and Notification.objects.get(recipient=people.owner).state == "dropped"


def test_a_person_without_an_address_or_no_longer_active_gets_nothing(
        box: Mailbox, res: Resources, people: People) -> None:
    User.objects.filter(pk=people.owner.pk).update(email="")
    access_request_create(actor=people.requester, resource=res.internal, permission="read_data", duration_days=5,
                          justification="features")
    assert deliver() == {"sent": 0, "dropped": 1, "failed": 0}
    assert box.messages == []


def test_the_page_needs_a_signed_in_person(db: None) -> None:
    response = Client().get("/console/preferences/notifications/")
    assert response.status_code == 302 and "/console/login/" in response["Location"]
