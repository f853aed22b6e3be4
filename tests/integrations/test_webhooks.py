"""Outbound webhooks (integrations.webhooks) against a real receiver on 127.0.0.1.

The receiver (tests/integrations/webhook_receiver.py) is a real HTTP server verifying each delivery with the
Standard Webhooks reference implementation. Nothing here is mocked except DNS in the rebinding test, where a
public name that resolves to a private address cannot exist on this machine otherwise (said there).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from audit.canonical import leaf_hash
from audit.ledger import Actor, Subject, integrate, record
from audit.models import Entry, PendingEntry
from audit.offline_verify import verify_inclusion
from integrations.models import StreamCursor, WebhookAttempt, WebhookSubscription
from integrations.webhooks import delivery
from integrations.webhooks.delivery import retry_delay, subscription_deliver, webhook_id
from integrations.webhooks.errors import NotPermitted, TargetRefused, WebhookError
from integrations.webhooks.services import (
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_pause,
    webhook_subscription_replay,
    webhook_subscription_resume,
    webhook_subscription_secret_rotate,
    webhook_subscription_update,
)
from tests.integrations.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local_targets(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 3.0
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _note(text: str, subject: str = "m", event_type: str = "ledger.note_added") -> None:
    with transaction.atomic():
        record(event_type=event_type, actor=Actor.system("test"), subject=Subject("registered_model", subject),
               payload={"text": text, "reference": "T-1"})


def _notes(*texts: str, subject: str = "m") -> list[int]:
    for t in texts:
        _note(t, subject)
    integrate()
    return list(Entry.objects.filter(event_type="ledger.note_added").order_by("seq").values_list("seq", flat=True))


def _subscribe(infosec: User, receiver: Receiver, **kwargs: Any) -> WebhookSubscription:
    kwargs.setdefault("event_types", ["ledger.note_added"])
    sub, secret = webhook_subscription_create(actor=infosec, name="siem-bridge", url=receiver.url, **kwargs)
    receiver.secret = secret
    integrate()
    return sub


def _due_now(sub: WebhookSubscription) -> None:
    # The retry's wait, elapsed (the test does not sleep through a real backoff).
    WebhookSubscription.objects.filter(pk=sub.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def _texts(r: Receiver) -> list[str]:
    import json
    return [json.loads(d.body["data"]["entry"]["canonical"])["payload"]["text"] for d in r.deliveries]


# --- signature, payload, verification ------------------------------------------------------------------


def test_a_delivery_is_signed_per_standard_webhooks_and_verifies(infosec: User, receiver: Receiver) -> None:
    sub = _subscribe(infosec, receiver)
    seqs = _notes("one")
    assert subscription_deliver(subscription_id=sub.pk) >= 1
    [d] = receiver.deliveries
    assert d.verified and d.path == "/hook"
    assert d.webhook_id == webhook_id(sub.pk, seqs[0]) == f"ledger-{seqs[0]}-sub-{sub.pk}"
    assert d.headers["webhook-signature"].startswith("v1,")
    assert abs(int(d.headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60
    assert d.body["type"] == "ledger.note_added"


def test_a_receiver_with_the_wrong_secret_rejects_the_delivery(infosec: User, receiver: Receiver) -> None:
    sub = _subscribe(infosec, receiver)
    receiver.secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    _notes("one")
    subscription_deliver(subscription_id=sub.pk)
    assert [d.verified for d in receiver.deliveries] == [False]


def test_the_payload_is_the_entry_as_hashed_and_its_inclusion_proof_verifies(
        infosec: User, auditor: User, receiver: Receiver, as_user: Callable[[User | None], Any]) -> None:
    import json
    sub = _subscribe(infosec, receiver)
    _notes("one", "two")
    subscription_deliver(subscription_id=sub.pk)
    data = receiver.deliveries[-1].body["data"]
    entry = data["entry"]
    canonical = entry["canonical"].encode("utf-8")
    # The receiver recomputes the leaf hash from the canonical body: it is the entry's hash.
    assert leaf_hash(canonical).hex() == entry["entry_hash"]
    assert json.loads(canonical)["seq"] == entry["seq"]
    assert Entry.objects.get(seq=entry["seq"]).entry_hash == entry["entry_hash"]
    # ... and the inclusion proof the payload points at (the real API) leads to the tree's root.
    proof = as_user(auditor).get(data["proof"]["url"])
    assert proof.status_code == 200, proof.content
    body = proof.json()
    assert body["tree_size"] == data["proof"]["tree_size"] == entry["seq"] + 1
    assert verify_inclusion(entry["seq"], body["tree_size"], leaf_hash(canonical),
                            [bytes.fromhex(h) for h in body["audit_path"]], bytes.fromhex(body["root_hash"]))
    # A tampered body does not verify.
    forged = canonical.replace(b'"two"', b'"tww"')
    assert leaf_hash(forged).hex() != entry["entry_hash"]


# --- filters and order ------------------------------------------------------------------------------------


def test_only_matching_entries_are_sent_in_order_and_the_cursor_passes_the_rest(
        infosec: User, receiver: Receiver) -> None:
    sub = _subscribe(infosec, receiver, subject_type="registered_model", subject_id="fraud")
    _note("a", "fraud")
    _note("b", "other")
    _note("c", "fraud")
    integrate()
    subscription_deliver(subscription_id=sub.pk)
    assert _texts(receiver) == ["a", "c"]
    assert StreamCursor.objects.get(name=sub.stream_name).seq == Entry.objects.order_by("-seq").first().seq  # type: ignore[union-attr]


def test_prefix_filters_and_unknown_event_types(infosec: User, receiver: Receiver) -> None:
    sub = _subscribe(infosec, receiver, event_types=["webhook.*"])
    _notes("not sent")
    webhook_subscription_pause(actor=infosec, subscription=sub)
    webhook_subscription_resume(actor=infosec, subscription=sub)
    integrate()
    subscription_deliver(subscription_id=sub.pk)
    # The subscription's own creation is the first entry after the head it starts at.
    assert [d.body["type"] for d in receiver.deliveries] == ["webhook.subscription_created",
                                                            "webhook.subscription_paused",
                                                            "webhook.subscription_resumed"]
    for bad in (["promotion.aproved"], ["nosuchdomain.*"], [], "  "):
        with pytest.raises(WebhookError):
            webhook_subscription_create(actor=infosec, name="x", url=receiver.url, event_types=bad)


def test_a_subscription_starts_at_the_head_unless_asked_for_history(infosec: User, receiver: Receiver) -> None:
    seqs = _notes("old-1", "old-2")
    head = _subscribe(infosec, receiver)
    _notes("new")
    subscription_deliver(subscription_id=head.pk)
    assert _texts(receiver) == ["new"]
    history = Receiver().start()
    try:
        sub = _subscribe(infosec, history, from_seq=seqs[1])
        subscription_deliver(subscription_id=sub.pk)
        assert _texts(history) == ["old-2", "new"]
    finally:
        history.stop()


# --- failures, retries, replay ------------------------------------------------------------------------------


def test_a_receiver_down_gets_everything_in_order_once_back_with_backoff_between(
        infosec: User, receiver: Receiver) -> None:
    sub = _subscribe(infosec, receiver)
    receiver.stop()  # connection refused
    seqs = _notes("1", "2", "3")
    subscription_deliver(subscription_id=sub.pk)
    # Stopped before the first note (nothing taken).
    assert StreamCursor.objects.get(name=sub.stream_name).seq < seqs[0] and receiver.deliveries == []
    first = WebhookAttempt.objects.get(subscription=sub)
    assert not first.delivered and first.status_code is None and "Refused" in first.error
    sub.refresh_from_db()
    assert sub.failures_in_row == 1 and sub.next_attempt_at > timezone.now()  # type: ignore[operator]
    # Not due yet: nothing is tried.
    assert subscription_deliver(subscription_id=sub.pk) == 0
    assert WebhookAttempt.objects.filter(subscription=sub).count() == 1
    receiver.start()
    receiver.mode = "fail"  # up, but answering 500
    _due_now(sub)
    subscription_deliver(subscription_id=sub.pk)
    second = WebhookAttempt.objects.filter(subscription=sub).first()
    assert second is not None and second.status_code == 500 and len(second.response_excerpt) <= delivery.EXCERPT
    sub.refresh_from_db()
    assert sub.failures_in_row == 2
    # The wait doubles (within the jitter) from one failure to the next.
    assert (second.next_attempt_at - second.attempted_at).total_seconds() > 1.3 * 30  # type: ignore[operator]
    receiver.mode = "ok"
    _due_now(sub)
    subscription_deliver(subscription_id=sub.pk)
    delivered = receiver.deliveries
    # The 500'd attempt, then everything in order; nothing lost.
    assert _texts(receiver) == ["1", "1", "2", "3"]
    # Every attempt of the first entry carried the same webhook-id (the receiver de-duplicates on it).
    assert len({d.webhook_id for d in delivered[:2]}) == 1
    sub.refresh_from_db()
    assert (sub.failures_in_row, sub.failing_since, sub.next_attempt_at) == (0, None, None)


def test_the_backoff_grows_exponentially_with_jitter_up_to_the_cap(settings: Any) -> None:
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    settings.WEBHOOK_RETRY_MAX_SECONDS = 300
    assert 8 <= retry_delay(1) <= 12
    assert 32 <= retry_delay(3) <= 48
    assert 240 <= retry_delay(20) <= 360


def test_failures_past_the_window_mark_the_subscription_failing(infosec: User, receiver: Receiver,
                                                                settings: Any) -> None:
    settings.WEBHOOK_FAILING_AFTER_HOURS = 0
    sub = _subscribe(infosec, receiver)
    receiver.mode = "fail"
    _notes("1")
    subscription_deliver(subscription_id=sub.pk)
    sub.refresh_from_db()
    assert sub.status == WebhookSubscription.FAILING
    integrate()
    failing = Entry.objects.get(event_type="webhook.subscription_failing")
    assert failing.payload["subscription_id"] == sub.pk and failing.payload["last_error"] == "HTTP 500"
    # Failing: the beat skips it; resumed, the waiting entry goes first.
    receiver.mode = "ok"
    assert subscription_deliver(subscription_id=sub.pk) == 0
    webhook_subscription_resume(actor=infosec, subscription=sub, reason="receiver fixed")
    subscription_deliver(subscription_id=sub.pk)
    assert _texts(receiver) == ["1", "1"]
    assert receiver.deliveries[0].webhook_id == receiver.deliveries[1].webhook_id


def test_replay_from_seq_n_redelivers_with_the_same_webhook_ids(infosec: User, receiver: Receiver) -> None:
    sub = _subscribe(infosec, receiver)
    seqs = _notes("1", "2", "3")
    subscription_deliver(subscription_id=sub.pk)
    first_ids = receiver.ids
    webhook_subscription_replay(actor=infosec, subscription=sub, from_seq=seqs[1], reason="receiver lost data")
    integrate()
    subscription_deliver(subscription_id=sub.pk)
    assert receiver.ids[3:] == first_ids[1:]
    replayed = Entry.objects.get(event_type="webhook.replay_requested")
    assert replayed.payload == {"subscription_id": sub.pk, "from_seq": seqs[1], "reason": "receiver lost data"}
    assert replayed.actor_id == str(infosec.pk)
    for bad in (-1, 10**9, "x"):
        with pytest.raises(WebhookError):
            webhook_subscription_replay(actor=infosec, subscription=sub, from_seq=bad, reason="r")
    with pytest.raises(WebhookError, match="reason"):
        webhook_subscription_replay(actor=infosec, subscription=sub, from_seq=0, reason=" ")


def test_paused_and_deleted_subscriptions_send_nothing(infosec: User, receiver: Receiver) -> None:
    sub = _subscribe(infosec, receiver)
    webhook_subscription_pause(actor=infosec, subscription=sub, reason="maintenance")
    _notes("1")
    assert subscription_deliver(subscription_id=sub.pk) == 0
    webhook_subscription_resume(actor=infosec, subscription=sub)
    subscription_deliver(subscription_id=sub.pk)
    assert _texts(receiver) == ["1"]
    webhook_subscription_delete(actor=infosec, subscription=sub, reason="retired")
    _notes("2")
    assert subscription_deliver(subscription_id=sub.pk) == 0
    sub.refresh_from_db()
    assert sub.status == WebhookSubscription.DELETED and sub.secret == ""
    with pytest.raises(WebhookError, match="deleted"):
        webhook_subscription_resume(actor=infosec, subscription=sub)


def test_a_rotated_secret_signs_the_next_deliveries(infosec: User, receiver: Receiver) -> None:
    sub = _subscribe(infosec, receiver)
    old = receiver.secret
    _, new = webhook_subscription_secret_rotate(actor=infosec, subscription=sub)
    assert new != old and new.startswith("whsec_") and len(base64.b64decode(new[6:])) == 32
    _notes("1")
    subscription_deliver(subscription_id=sub.pk)
    assert [d.verified for d in receiver.deliveries] == [False]  # the receiver still holds the old one
    receiver.secret = new
    assert Receiver(secret=new).secret == new
    webhook_subscription_replay(actor=infosec, subscription=sub, from_seq=receiver.seqs()[0], reason="rotated")
    subscription_deliver(subscription_id=sub.pk)
    assert receiver.deliveries[-1].verified


# --- attacks ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:19200/hook", "https://localhost/hook", "https://10.0.0.8/", "https://169.254.169.254/latest",
    "https://[::1]/", "https://192.168.1.1/", "https://0.0.0.0/", "https://[::ffff:127.0.0.1]/",
])
def test_private_and_loopback_targets_are_refused_without_the_setting(infosec: User, settings: Any,
                                                                       url: str) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(TargetRefused):
        webhook_subscription_create(actor=infosec, name="x", url=url, event_types=["*"])
    assert not WebhookSubscription.objects.exists() and not PendingEntry.objects.exists()


@pytest.mark.parametrize("url", [
    "ftp://example.org/", "https://user:pw@example.org/", "https://example.org/a b", "https://ex\r\nample.org/",
    "https://example.org/\r\nX-Injected: 1", "javascript:alert(1)", "https:///nohost", "x" * 3000,
])
def test_malformed_targets_are_refused(infosec: User, url: str) -> None:
    with pytest.raises(TargetRefused):
        webhook_subscription_create(actor=infosec, name="x", url=url, event_types=["*"])


def test_http_needs_the_setting(infosec: User, receiver: Receiver, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_HTTP = False
    with pytest.raises(TargetRefused, match="https"):
        webhook_subscription_create(actor=infosec, name="x", url=receiver.url, event_types=["*"])


def test_a_redirect_to_an_internal_address_is_not_followed(infosec: User, receiver: Receiver) -> None:
    internal = Receiver().start()
    try:
        receiver.mode = "redirect"
        receiver.redirect_to = internal.url
        sub = _subscribe(infosec, receiver)
        _notes("1")
        subscription_deliver(subscription_id=sub.pk)
        assert internal.deliveries == []
        attempt = WebhookAttempt.objects.get(subscription=sub)
        assert attempt.status_code == 302 and not attempt.delivered and "not followed" in attempt.error
    finally:
        internal.stop()


def test_the_host_is_checked_again_at_delivery_dns_rebinding(infosec: User, receiver: Receiver, settings: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # A public name that later resolves to a private address cannot exist on this offline machine: DNS is
    # the one thing replaced here, so the name answers a public address at subscription time, then 127.0.0.1.
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    answers = {"hooks.example.com": "93.184.215.14"}
    real = socket.getaddrinfo

    def fake(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    sub, receiver.secret = webhook_subscription_create(
        actor=infosec, name="x", url=f"http://hooks.example.com:{receiver.port}/hook", event_types=["*"])
    answers["hooks.example.com"] = "127.0.0.1"  # rebinding
    _notes("1")
    subscription_deliver(subscription_id=sub.pk)
    assert receiver.deliveries == []
    attempt = WebhookAttempt.objects.get(subscription=sub)
    assert "non-public address (127.0.0.1)" in attempt.error and attempt.status_code is None


@pytest.mark.parametrize("who", ["auditor", "owner", "outsider"])
def test_only_infosec_creates_or_replays_and_a_refusal_writes_nothing(
        request: pytest.FixtureRequest, infosec: User, receiver: Receiver, who: str) -> None:
    person = request.getfixturevalue(who)
    with pytest.raises(NotPermitted):
        webhook_subscription_create(actor=person, name="x", url=receiver.url, event_types=["*"])
    assert not WebhookSubscription.objects.exists() and not PendingEntry.objects.exists()
    sub = _subscribe(infosec, receiver)
    pending = PendingEntry.objects.count()
    cursor = StreamCursor.objects.get(name=sub.stream_name).seq
    for action in (lambda: webhook_subscription_replay(actor=person, subscription=sub, from_seq=0, reason="r"),
                   lambda: webhook_subscription_pause(actor=person, subscription=sub),
                   lambda: webhook_subscription_secret_rotate(actor=person, subscription=sub),
                   lambda: webhook_subscription_delete(actor=person, subscription=sub),
                   lambda: webhook_subscription_update(actor=person, subscription=sub, name="y", url=receiver.url,
                                                       event_types=["*"])):
        with pytest.raises(NotPermitted):
            action()
    assert PendingEntry.objects.count() == pending
    assert StreamCursor.objects.get(name=sub.stream_name).seq == cursor
    sub.refresh_from_db()
    assert (sub.status, sub.name) == (WebhookSubscription.ACTIVE, "siem-bridge")


def test_a_former_infosec_is_refused_at_once(infosec: User, receiver: Receiver) -> None:
    infosec.groups.clear()
    with pytest.raises(NotPermitted):
        webhook_subscription_create(actor=infosec, name="x", url=receiver.url, event_types=["*"])


def test_the_secret_is_never_in_the_ledger_the_logs_or_the_delivery_log(
        infosec: User, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = receiver.url + "?token=url-secret-123"
    sub, secret = webhook_subscription_create(actor=infosec, name="x", url=url, event_types=["*"])
    receiver.secret = secret
    _, rotated = webhook_subscription_secret_rotate(actor=infosec, subscription=sub)
    receiver.secret = rotated
    integrate()
    receiver.mode = "fail"
    _notes("1")
    subscription_deliver(subscription_id=sub.pk)
    receiver.mode = "ok"
    _due_now(sub)
    subscription_deliver(subscription_id=sub.pk)
    assert receiver.deliveries and receiver.deliveries[-1].verified
    signatures = {d.headers["webhook-signature"] for d in receiver.deliveries}

    needles = [secret, secret[6:], rotated, rotated[6:], "url-secret-123", *signatures,
               *(sig[3:] for sig in signatures)]
    ledger = " ".join(Entry.objects.values_list("payload_json", flat=True))
    ledger += " ".join(PendingEntry.objects.values_list("payload_json", flat=True))
    attempts = " ".join(str(v) for row in WebhookAttempt.objects.values() for v in row.values())
    logs = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for needle in needles:
        assert needle not in ledger and needle not in attempts and needle not in logs, needle
    created = Entry.objects.get(event_type="webhook.subscription_created").payload
    assert created["target"] == f"http://127.0.0.1:{receiver.port}"
    assert created["url_sha256"] == hashlib.sha256(url.encode()).hexdigest()


# --- TLS ------------------------------------------------------------------------------------------------------


def _self_signed(tmp_path: Any) -> tuple[Any, Any]:
    """A certificate for 127.0.0.1 (IP SAN) and its key, written as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook receiver")])
    now = timezone.now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_targets_are_verified_against_trusted_certificates(infosec: User, tmp_path: Any, settings: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl
    settings.WEBHOOK_ALLOW_HTTP = False
    cert_path, key_path = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_path, key_path)
    tls = Receiver(tls=server_ctx).start()
    try:
        sub = _subscribe(infosec, tls)
        _notes("1")
        # Untrusted (self-signed) certificate: refused, nothing reaches the receiver's handler.
        subscription_deliver(subscription_id=sub.pk)
        assert tls.deliveries == []
        assert "CERTIFICATE_VERIFY_FAILED" in WebhookAttempt.objects.get(subscription=sub).error
        # Trusted through the system's CA file setting (what a deployment with a private CA does): delivered.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
        _due_now(sub)
        subscription_deliver(subscription_id=sub.pk)
        assert [d.verified for d in tls.deliveries] == [True] and _texts(tls) == ["1"]
    finally:
        tls.stop()


def test_the_beat_task_delivers_every_due_subscription(infosec: User, receiver: Receiver) -> None:
    from integrations.tasks import deliver_webhooks
    sub = _subscribe(infosec, receiver)
    _notes("1", "2")
    deliver_webhooks.apply().get()
    assert _texts(receiver) == ["1", "2"]
    assert StreamCursor.objects.get(name=sub.stream_name).seq == Entry.objects.order_by("-seq").first().seq  # type: ignore[union-attr]


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(infosec: User, receiver: Receiver,
                                                                settings: Any) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    receiver.mode, receiver.delay = "slow", 2.0
    sub = _subscribe(infosec, receiver)
    _notes("1")
    subscription_deliver(subscription_id=sub.pk)
    attempt = WebhookAttempt.objects.get(subscription=sub)
    assert not attempt.delivered and "timed out" in attempt.error and attempt.duration_ms < 1900
    assert StreamCursor.objects.get(name=sub.stream_name).seq < Entry.objects.order_by("-seq").first().seq  # type: ignore[union-attr]


def test_personal_data_never_leaves_in_clear(infosec: User, receiver: Receiver) -> None:
    from access.services.roles import user_register
    sub = _subscribe(infosec, receiver, event_types=["auth.user_registered"])
    user_register(actor=Actor.system("test"), username="zoe.private", email="zoe@private.example",
                  full_name="Zoe Privata")
    integrate()
    subscription_deliver(subscription_id=sub.pk)
    [d] = receiver.deliveries
    assert d.verified
    for value in (b"zoe.private", b"zoe@private.example", b"Zoe Privata"):
        assert value not in d.raw


def test_the_delivery_log_is_pruned_after_its_days(infosec: User, receiver: Receiver, settings: Any) -> None:
    from integrations.tasks import prune_webhook_log
    settings.WEBHOOK_LOG_DAYS = 30
    sub = _subscribe(infosec, receiver)
    _notes("1", "2")
    subscription_deliver(subscription_id=sub.pk)
    old, recent = WebhookAttempt.objects.order_by("pk")
    WebhookAttempt.objects.filter(pk=old.pk).update(attempted_at=timezone.now() - timedelta(days=31))
    assert prune_webhook_log.apply().get() == 1
    assert list(WebhookAttempt.objects.values_list("pk", flat=True)) == [recent.pk]
