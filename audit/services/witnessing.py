"""The log side of witnessing (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature).

After each checkpoint commits, ``checkpoint_witness`` submits the latest checkpoint to
every configured witness with an ``add-checkpoint`` request (old size = what the witness
last told us, a consistency proof from it), concurrently, each exchange bounded by
``LEDGER_WITNESS_TIMEOUT``. Every cosignature returned is verified against the witness's
configured key before it is stored (``WitnessCosignature``, append-only evidence); an
answer that does not verify, a 409 naming a size we cannot believe, or an error status is
recorded on the witness (``WitnessState``) and counted, never stored and never looped on.

``published_note`` is a checkpoint with its stored cosignature lines appended (still a
valid signed note: verifiers ignore keys they do not know). ``witness_quorum_check``
raises one ``integrity`` violation per stall when checkpoints do not gather
``LEDGER_WITNESS_QUORUM`` cosignatures within ``LEDGER_WITNESS_DEADLINE``.
``witness_anchors`` asks each witness for the latest checkpoint it cosigned for us: a
size and root outside the operator's reach that the ledger must extend.

Submission outcomes are deliberately not ledger entries: an entry would grow the tree,
which calls for a new checkpoint, which is submitted again, forever.
"""
from __future__ import annotations

import http.client
import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from audit.cosignature import Cosigner, add_checkpoint_body, verify_cosignatures
from audit.ledger import Subject
from audit.lock_objects import witness_quorum_stall_lock
from audit.models import Checkpoint, WitnessCosignature, WitnessQuorumStall, WitnessState
from audit.note import CheckpointBody, NoteError, open_note
from audit.selectors import consistency_proof
from audit.signals import integrity_failed, witnessing_requested
from audit.verification import Anchor, trusted_verifiers

logger = logging.getLogger(__name__)

# A witness's answer is a few signature lines (or a size); anything longer is not an answer.
MAX_REPLY_BYTES = 64 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"
# Clock skew tolerated in a cosignature's timestamp; a later one is refused.
FUTURE_SKEW_SECONDS = 600
# The spec's meaning of each refusal, recorded as the witness's error.
_STATUS_MEANING = {
    400: "the witness found the request malformed (400 Bad Request)",
    403: "the witness does not trust the log's signing key (403 Forbidden)",
    404: "the witness does not know this log's origin (404 Not Found)",
    422: "the witness could not verify the consistency proof (422 Unprocessable Entity)",
}


@dataclass(frozen=True)
class WitnessConfig:
    name: str
    url: str  # no trailing slash
    verifier_key: str
    cosigner: Cosigner


@lru_cache(maxsize=8)
def _parse_witnesses(entries: tuple[tuple[str, str, str], ...]) -> list[WitnessConfig]:
    return [WitnessConfig(name=n, url=u.rstrip("/"), verifier_key=v, cosigner=Cosigner.parse(v)) for n, u, v in entries]


def configured_witnesses() -> list[WitnessConfig]:
    """The witnesses of ``LEDGER_WITNESSES`` (validated at start-up by the settings)."""
    entries = tuple((w["name"], w["url"], w["verifier_key"]) for w in settings.LEDGER_WITNESSES)
    return list(_parse_witnesses(entries))


def quorum() -> int:
    return int(settings.LEDGER_WITNESS_QUORUM)


# --- publication --------------------------------------------------------------------------------


def published_note(checkpoint: Checkpoint) -> str:
    """The checkpoint's signed note with every stored cosignature line appended (a valid signed note).

    Lines are published as stored: a line forged into the table makes the note fail for
    any verifier that knows that witness's key, which is how such a forgery is caught.
    """
    lines = [c.line for c in checkpoint.cosignatures.all()]
    return checkpoint.note + "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    status: int  # 0: no answer (``error`` says why)
    content_type: str = ""
    body: bytes = b""
    error: str = ""


def _request(method: str, url: str, *, body: bytes | None = None, timeout: float) -> _Reply:
    """One HTTP exchange; every failure is a ``_Reply`` with status 0, never an exception."""
    split = urlsplit(url)
    cls = http.client.HTTPSConnection if split.scheme == "https" else http.client.HTTPConnection
    path = split.path or "/"
    if split.query:
        path += "?" + split.query
    conn = cls(split.hostname or "", split.port, timeout=timeout)
    try:
        headers = {"Content-Type": "text/plain; charset=utf-8"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(MAX_REPLY_BYTES + 1)
        if len(data) > MAX_REPLY_BYTES:
            return _Reply(0, error=f"the answer is longer than {MAX_REPLY_BYTES} bytes")
        return _Reply(response.status, response.getheader("Content-Type") or "", data)
    except (OSError, http.client.HTTPException) as exc:
        return _Reply(0, error=f"no answer ({type(exc).__name__}: {exc})"[:300])
    finally:
        conn.close()


# --- submission ---------------------------------------------------------------------------------


@dataclass
class _Job:
    witness: WitnessConfig
    state: WitnessState
    old_size: int
    sends: int = 0


@dataclass
class WitnessingOutcome:
    """What one submission round did, per witness name: "cosigned", "skipped" or the error recorded."""

    checkpoint_id: int
    tree_size: int
    results: dict[str, str] = field(default_factory=dict)
    transient: list[str] = field(default_factory=list)  # witnesses worth retrying soon (no answer, 5xx)

    @property
    def cosigned(self) -> list[str]:
        return [name for name, result in self.results.items() if result == "cosigned"]


def _state(witness: WitnessConfig) -> WitnessState:
    try:
        with transaction.atomic():
            state, _ = WitnessState.objects.get_or_create(verifier_key=witness.verifier_key,
                                                          defaults={"name": witness.name})
    except IntegrityError:  # a concurrent round created it first
        state = WitnessState.objects.get(verifier_key=witness.verifier_key)
    return state


def _fail(state: WitnessState, message: str, *, refusal: bool, size: int) -> None:
    """Record a failed exchange on the witness (a refusal also counts and is not resubmitted for ``size``)."""
    now = timezone.now()
    changes: dict[str, Any] = {"last_error": message[:1000], "last_error_at": now, "last_attempt_at": now,
                               "failures": F("failures") + 1}
    if refusal:
        changes.update(refusals=F("refusals") + 1, refused_size=size)
    WitnessState.objects.filter(pk=state.pk).update(**changes)
    logger.warning("witness %s: %s", state.name, message)


def _proof(old_size: int, new_size: int) -> list[bytes]:
    if old_size in (0, new_size):
        return []
    return consistency_proof(old_size=old_size, new_size=new_size).path


def _store(checkpoint: Checkpoint, job: _Job, reply: _Reply) -> str:
    """Verify a 200's cosignatures against the witness's configured key and store them."""
    try:
        text = reply.body.decode("utf-8")
        cosignatures = verify_cosignatures(checkpoint.note + text, [job.witness.cosigner])
    except (UnicodeDecodeError, NoteError) as exc:
        return f"refused: its answer is not a valid cosignature by {job.witness.verifier_key} ({exc})"
    if not cosignatures:
        return f"refused: its answer holds no cosignature by its configured key {job.witness.verifier_key}"
    now = timezone.now()
    future = [c.timestamp for c in cosignatures if c.timestamp > now.timestamp() + FUTURE_SKEW_SECONDS]
    if future:
        # tlog-cosignature lets verifiers refuse these; kept, they would make a stale view look fresh.
        return f"refused: its cosignature is dated in the future ({future[0]}, now {int(now.timestamp())})"
    for cosignature in cosignatures:
        try:
            with transaction.atomic():
                WitnessCosignature.objects.create(
                    checkpoint=checkpoint, witness=cosignature.cosigner.name,
                    key_id=cosignature.cosigner.key_id.hex(), timestamp=cosignature.timestamp,
                    line=cosignature.line if cosignature.line.endswith("\n") else cosignature.line + "\n",
                    received_at=now,
                )
        except IntegrityError:
            pass  # already stored by an earlier (or concurrent) round: idempotent
    WitnessState.objects.filter(pk=job.state.pk).update(
        size=checkpoint.tree_size, cosigned_size=Greatest(F("cosigned_size"), checkpoint.tree_size),
        cosigned_at=now, last_attempt_at=now, last_error="", failures=0,
    )
    return "cosigned"


def _believable_size(reply: _Reply, job: _Job, checkpoint: Checkpoint) -> tuple[int | None, str]:
    """The size a 409 names, if we can believe it: never larger than our tree, and one we signed."""
    if not reply.content_type.split(";")[0].strip().lower() == SIZE_CONTENT_TYPE:
        return None, f"refused: its 409 is not {SIZE_CONTENT_TYPE} ({reply.content_type or 'no type'})"
    text = reply.body.decode("ascii", "replace")
    digits = text[:-1] if text.endswith("\n") else text
    if not (digits.isascii() and digits.isdigit()) or (len(digits) > 1 and digits.startswith("0")):
        return None, "refused: its 409 does not hold a tree size"
    size = int(digits)
    if size > checkpoint.tree_size:
        return None, (f"refused: it claims to have cosigned size {size}, larger than our latest checkpoint "
                      f"({checkpoint.tree_size}): a lying witness, or checkpoints were removed here")
    if size == job.old_size:
        return None, (f"refused: 409 at size {size}, the size we sent: it holds a different tree at that size "
                      "(a fork?)")
    if size and not Checkpoint.objects.filter(tree_size=size).exists():
        return None, f"refused: it claims to have cosigned size {size}, at which this log never signed a checkpoint"
    if job.sends > 1:
        return None, f"refused: a second 409 (size {size}) after resending with its size"
    return size, ""


def _handle(checkpoint: Checkpoint, job: _Job, reply: _Reply) -> tuple[str, bool, bool]:
    """(result, resend, transient) for one answer."""
    if reply.status == 200:
        return _store(checkpoint, job, reply), False, False
    if reply.status == 409:
        size, problem = _believable_size(reply, job, checkpoint)
        if size is None:
            return problem, False, False
        if size < job.state.cosigned_size:
            # Consistent, so it is asked again, but it forgot what it cosigned: a restored state file or a
            # reset witness no longer protects the sizes in between (docs/witness.md, "Backups").
            logger.error("witness %s now says size %s, below the %s it cosigned for us: it lost its state",
                         job.witness.name, size, job.state.cosigned_size)
        WitnessState.objects.filter(pk=job.state.pk).update(size=size)
        job.old_size = size
        return "", True, False
    if reply.status == 0:
        return f"error: {reply.error}", False, True
    meaning = _STATUS_MEANING.get(reply.status)
    detail = reply.body[:200].decode("utf-8", "replace").strip()
    if meaning is None:
        transient = reply.status >= 500 or reply.status == 429
        return f"error: unexpected HTTP {reply.status} {detail}".strip(), False, transient
    return f"refused: {meaning}{': ' + detail if detail else ''}", False, False


def checkpoint_witness(*, checkpoint_id: int, only_behind: bool = False) -> WitnessingOutcome:
    """Submit the latest checkpoint (at least as large as ``checkpoint_id``'s) to every configured witness.

    Idempotent: a witness that already cosigned it is skipped (one that holds a larger size than
    our latest checkpoint is an alarm: checkpoints were removed here). With
    ``only_behind`` (the periodic resubmission) a witness that refused this very size is
    skipped too. Witnesses are asked concurrently and each answer is stored as it
    arrives, so a slow witness delays nobody else's cosignature; one that has not
    answered by the deadline is recorded as unreachable. A crash leaves each witness's
    state as its last complete answer left it, which the next round recovers from (409).
    """
    checkpoint = Checkpoint.objects.get(pk=checkpoint_id)
    latest = Checkpoint.objects.order_by("-tree_size", "-id").first()
    if latest is not None and latest.tree_size > checkpoint.tree_size:
        checkpoint = latest  # a witness accepts any larger consistent size: the latest covers the others
    outcome = WitnessingOutcome(checkpoint.pk, checkpoint.tree_size)
    size = checkpoint.tree_size
    already = set(checkpoint.cosignatures.values_list("witness", flat=True))
    jobs: list[_Job] = []
    for witness in configured_witnesses():
        state = _state(witness)
        if max(state.size, state.cosigned_size) > size:
            # Only possible if checkpoints it saw are gone from here: never resubmitted as if nothing happened.
            message = (f"refused: it holds size {max(state.size, state.cosigned_size)}, larger than our latest "
                       f"checkpoint ({size}): checkpoints or entries were removed here?")
            _fail(state, message, refusal=True, size=size)
            outcome.results[witness.name] = message
            continue
        if witness.name in already or (only_behind and state.refused_size == size):
            outcome.results[witness.name] = "skipped"
            continue
        jobs.append(_Job(witness, state, state.size))
    if not jobs:
        return outcome
    timeout = float(settings.LEDGER_WITNESS_TIMEOUT)
    # One resend after a 409: two exchanges, plus slack for the proof.
    deadline = time.monotonic() + 2 * timeout + 1
    pool = ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="witness")
    running: dict[Future[_Reply], _Job] = {}

    def send(job: _Job) -> None:
        job.sends += 1
        try:
            request = add_checkpoint_body(old_size=job.old_size, proof=_proof(job.old_size, size),
                                          note=checkpoint.note)
        except Exception as exc:  # a proof we cannot build is this witness's error, not the whole round's
            outcome.results[job.witness.name] = f"error: cannot build the request ({exc})"
            _fail(job.state, outcome.results[job.witness.name], refusal=False, size=size)
            return
        running[pool.submit(_request, "POST", f"{job.witness.url}/add-checkpoint", body=request,
                            timeout=timeout)] = job

    try:
        for job in jobs:
            send(job)
        while running:
            done, _ = wait(list(running), timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED)
            if not done:
                break
            for future in done:
                job = running.pop(future)
                result, resend, transient = _handle(checkpoint, job, future.result())
                if resend:
                    send(job)
                    continue
                outcome.results[job.witness.name] = result
                if result != "cosigned":
                    _fail(job.state, result, refusal=result.startswith("refused"), size=size)
                if transient:
                    outcome.transient.append(job.witness.name)
        for job in running.values():
            message = f"error: no answer within {2 * timeout + 1:.0f} s"
            outcome.results[job.witness.name] = message
            outcome.transient.append(job.witness.name)
            _fail(job.state, message, refusal=False, size=size)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return outcome


def witness_schedule(checkpoint: Checkpoint) -> None:
    """Queue the submission of ``checkpoint`` once the current transaction commits (no-op without witnesses)."""
    if not settings.LEDGER_WITNESSES:
        return
    # audit/tasks.py queues the submission once the current transaction commits.
    witnessing_requested.send(sender=Checkpoint, checkpoint_id=checkpoint.pk)


# --- quorum policy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessRow:
    name: str
    url: str
    cosigned_size: int
    cosigned_at: datetime | None
    last_error: str
    last_error_at: datetime | None
    refusals: int


@dataclass(frozen=True)
class QuorumStatus:
    configured: bool
    quorum: int
    latest_size: int  # of the latest checkpoint (0 when none)
    quorum_size: int  # the largest checkpoint size cosigned by a quorum (0 when none)
    overdue_size: int | None  # the latest checkpoint past its deadline without a quorum, if any
    witnesses: list[WitnessRow]

    @property
    def ok(self) -> bool:
        return self.overdue_size is None

    @property
    def lag(self) -> int:
        return max(0, self.latest_size - self.quorum_size)


def _quorum_size(cosigners: list[Cosigner], needed: int, *, candidates: int = 20) -> int:
    """The largest checkpoint size whose published note carries ``needed`` valid cosignatures.

    Re-verified from the stored lines, so a row forged into the table never counts.
    """
    if needed <= 0:
        return Checkpoint.objects.order_by("-tree_size").values_list("tree_size", flat=True).first() or 0
    checkpoints = (Checkpoint.objects.filter(cosignatures__isnull=False).distinct().order_by("-tree_size", "-id")
                   .prefetch_related("cosignatures")[:candidates])
    for checkpoint in checkpoints:
        try:
            valid = verify_cosignatures(published_note(checkpoint), cosigners)
        except NoteError as exc:
            logger.error("checkpoint #%s carries a cosignature that does not verify: %s", checkpoint.pk, exc)
            continue
        if len({c.cosigner.name for c in valid}) >= needed:
            return checkpoint.tree_size
    return 0


def witness_quorum_status(*, now: datetime | None = None) -> QuorumStatus:
    """Where witnessing stands: each witness, the largest quorum-cosigned size, any overdue checkpoint."""
    now = now or timezone.now()
    witnesses = configured_witnesses()
    needed = quorum()
    latest = Checkpoint.objects.order_by("-tree_size", "-id").values_list("tree_size", flat=True).first() or 0
    if not witnesses:
        return QuorumStatus(False, 0, latest, latest, None, [])
    keys = [w.verifier_key for w in witnesses]
    states = {s.verifier_key: s for s in WitnessState.objects.filter(verifier_key__in=keys)}
    rows = []
    for w in witnesses:
        s = states.get(w.verifier_key)
        rows.append(WitnessRow(w.name, w.url, s.cosigned_size if s else 0, s.cosigned_at if s else None,
                               s.last_error if s else "", s.last_error_at if s else None, s.refusals if s else 0))
    cosigned = _quorum_size([w.cosigner for w in witnesses], needed)
    cutoff = now - timedelta(seconds=float(settings.LEDGER_WITNESS_DEADLINE))
    overdue = (Checkpoint.objects.filter(created_at__lte=cutoff, tree_size__gt=cosigned)
               .order_by("tree_size").values_list("tree_size", flat=True).first())
    return QuorumStatus(True, needed, latest, cosigned, overdue, rows)


def _ledger_subject() -> Any:
    return Subject("ledger", str(settings.LEDGER_ORIGIN)[:300])


def witness_quorum_check(*, now: datetime | None = None, resubmit: bool = True) -> QuorumStatus:
    """The periodic check: resubmit the latest checkpoint to witnesses behind it, then apply the policy.

    A checkpoint older than ``LEDGER_WITNESS_DEADLINE`` that is not covered by a
    quorum-cosigned checkpoint opens a stall and records one ``integrity`` violation;
    the stall closes once a quorum covers the checkpoints again. One open stall at a
    time (a unique index), so concurrent checks raise it once.
    """
    if resubmit and configured_witnesses():
        latest = Checkpoint.objects.order_by("-tree_size", "-id").first()
        if latest is not None:
            checkpoint_witness(checkpoint_id=latest.pk, only_behind=True)
    now = now or timezone.now()
    status = witness_quorum_status(now=now)
    with transaction.atomic():
        stall = witness_quorum_stall_lock()
        if status.overdue_size is not None and stall is None:
            try:
                with transaction.atomic():
                    WitnessQuorumStall.objects.create(tree_size=status.overdue_size, started_at=now)
            except IntegrityError:
                return status  # another check opened it first
            errors = {r.name: r.last_error[:300] for r in status.witnesses if r.last_error}
            integrity_failed.send(
                sender=WitnessQuorumStall,
                subject=_ledger_subject(),
                summary=(f"checkpoint of size {status.overdue_size} has not reached the witness quorum "
                         f"({status.quorum} of {len(status.witnesses)}) within "
                         f"{float(settings.LEDGER_WITNESS_DEADLINE):.0f} s"),
                details={"witness_quorum": True, "tree_size": status.overdue_size,
                         "quorum_size": status.quorum_size, "quorum": status.quorum,
                         "witnesses": [r.name for r in status.witnesses], "errors": errors},
            )
        elif status.overdue_size is None and stall is not None:
            stall.resolved_at = now
            stall.is_open = None
            stall.save(update_fields=["resolved_at", "is_open"])
    return status


# --- anchors ------------------------------------------------------------------------------------


def _anchor(witness: WitnessConfig, reply: _Reply, log_verifiers: list[Any]) -> tuple[Anchor | None, str]:
    origin = str(settings.LEDGER_ORIGIN)
    if reply.status == 404:
        return None, f"witness {witness.name} has cosigned no checkpoint of {origin}"
    if reply.status != 200:
        return None, f"witness {witness.name} could not be asked: {reply.error or f'HTTP {reply.status}'}"
    try:
        note = reply.body.decode("utf-8")
        cosignatures = verify_cosignatures(note, [witness.cosigner])
    except (UnicodeDecodeError, NoteError) as exc:
        return None, f"witness {witness.name} answered a checkpoint whose cosignature does not verify: {exc}"
    if not cosignatures:
        return None, f"witness {witness.name} answered a checkpoint without its cosignature"
    try:
        body = CheckpointBody.parse(open_note(note, log_verifiers).text)
    except NoteError as exc:
        return None, f"witness {witness.name} answered a checkpoint not signed by a trusted log key: {exc}"
    if body.origin != origin:
        return None, f"witness {witness.name} answered a checkpoint of another origin ({body.origin!r})"
    return Anchor(size=body.tree_size, root=body.root_hash, source=f"witness {witness.name}"), ""


def witness_anchors() -> tuple[list[Anchor], list[str]]:
    """The latest checkpoint each configured witness cosigned for our origin, both signatures verified.

    Returns the anchors and one message per witness that could not be asked or answered
    badly. The witnesses are asked concurrently, each bounded by ``LEDGER_WITNESS_TIMEOUT``.
    """
    witnesses = configured_witnesses()
    if not witnesses:
        return [], []
    log_verifiers = trusted_verifiers()
    origin = quote(str(settings.LEDGER_ORIGIN), safe="")
    timeout = float(settings.LEDGER_WITNESS_TIMEOUT)
    with ThreadPoolExecutor(max_workers=len(witnesses), thread_name_prefix="witness-anchor") as pool:
        replies = list(pool.map(lambda w: _request("GET", f"{w.url}/latest?origin={origin}", timeout=timeout),
                                witnesses))
    anchors: list[Anchor] = []
    messages: list[str] = []
    for witness, reply in zip(witnesses, replies, strict=True):
        anchor, message = _anchor(witness, reply, log_verifiers)
        if anchor is not None:
            anchors.append(anchor)
        else:
            messages.append(message)
    return anchors, messages
