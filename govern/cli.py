"""``govern``: the governance ledger's API from a pipeline (docs/cli.md has every command and the exit table).

Results go to stdout (an id, a document with ``--json``, a digest); progress and errors go to
stderr, one line each, never a traceback (``--verbose`` adds the API's request ids). The exit status
is the outcome (``govern.exits``), so a CI step can branch on it without parsing text.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from govern import exits
from govern.client import ApiError, Client, CliError, Config, load_config, usage

#: The most events one request may carry (the API's own limit: governance.services.runtime_events.MAX_BATCH).
MAX_BATCH = 1000
STRATEGIES = ("full", "canary", "shadow")
PROGRESS = ("step", "completed", "failed")
EXPORT_FORMATS = ("bundle", "csv", "report", "pdf")
# CI systems' identifiers of one pipeline run, stable across a retried job or a re-run of the workflow:
# the default Idempotency-Key of `promote` is derived from the first one set (with the request itself).
CI_RUN_VARIABLES = (
    ("GITHUB_REPOSITORY", "GITHUB_RUN_ID"),
    ("CI_PROJECT_ID", "CI_PIPELINE_ID"),
    ("BUILDKITE_PIPELINE_SLUG", "BUILDKITE_BUILD_ID"),
    ("JENKINS_URL", "BUILD_TAG"),
)

# --- promotion outcomes --------------------------------------------------------------------------------

ENDED_STATES = {"changes_requested": exits.ENDED, "withdrawn": exits.ENDED, "expired": exits.ENDED,
                "rejected": exits.REJECTED, "failed": exits.FAILED, "rolled_back": exits.FAILED}


def promotion_outcome(doc: dict[str, Any], until: str) -> int | None:
    """The exit status a promotion document settles, or None while it is still on its way.

    ``until="approved"``: approved (or anything past it) is done. ``until="deployed"``: a full rollout
    is done when deployed; a canary or shadow rollout when it started (``deploying``), because from
    there the pipeline itself drives it (``govern rollout progress``).
    """
    state = str(doc.get("state", ""))
    if state in ENDED_STATES:
        return ENDED_STATES[state]
    if state == "deployed":
        return exits.OK
    if state == "approved":
        return exits.OK if until == "approved" else None
    if state == "deploying":
        return exits.OK if until == "approved" or doc.get("strategy") in ("canary", "shadow") else None
    return None


def describe_promotion(doc: dict[str, Any]) -> list[str]:
    """The human summary of a promotion: what, its state, and what it still waits for."""
    lines = [
        f"promotion {doc.get('id')}: {doc.get('model')} v{doc.get('version')} → {doc.get('environment')} "
        f"({doc.get('strategy')}{', break-glass' if doc.get('is_break_glass') else ''})",
        f"state: {doc.get('state')}" + (f" ({doc.get('traffic_percent')}% traffic)"
                                        if doc.get("state") == "deploying" and doc.get("strategy") == "canary"
                                        else ""),
    ]
    status = doc.get("status") or {}
    approvals = status.get("approvals") or {}
    if approvals:
        lines.append("approvals: " + ", ".join(f"{group} {count}" for group, count in sorted(approvals.items())))
    for rule in status.get("unmet_rules") or []:
        lines.append(f"missing: {rule}")
    for gate in status.get("failed_gates") or []:
        lines.append(f"failed gate: {gate}")
    for gate in (doc.get("evidence") or {}).get("gates") or []:
        if isinstance(gate, dict):
            mark = "pass" if gate.get("passed") else "FAIL"
            lines.append(f"gate {gate.get('gate')}: {mark} {gate.get('detail', '')}".rstrip())
    if doc.get("last_error"):
        lines.append(f"last error: {doc['last_error']}")
    return lines


# --- small helpers -------------------------------------------------------------------------------------


class Out:
    """Where a command writes: results to stdout, progress and errors to stderr."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout, self.stderr = stdout, stderr

    def result(self, text: str) -> None:
        print(text, file=self.stdout, flush=True)

    def document(self, doc: Any) -> None:
        print(json.dumps(doc, indent=2, sort_keys=True), file=self.stdout, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.stderr, flush=True)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {value}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 7 * 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 604800 seconds: {text}")
    return value


def percent_list(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected percents separated by commas, e.g. 10,50,100: {text!r}") from None
    if not steps or any(not 1 <= s <= 100 for s in steps):
        raise argparse.ArgumentTypeError(f"each step is a percent from 1 to 100: {text!r}")
    return steps


def percent(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percent: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"a percent is 0 to 100: {value}")
    return value


def _quote(segment: str) -> str:
    import urllib.parse

    return urllib.parse.quote(segment, safe="")


def promote_idempotency_key(explicit: str | None, body: dict[str, Any], environ: dict[str, str]) -> str:
    """The ``Idempotency-Key`` of a promotion request: the one given, else one derived from the CI run and
    the request (a retried job or a re-run workflow replays the first answer instead of asking twice), else
    a fresh one (retries within this invocation still reuse it)."""
    if explicit:
        return explicit
    for scope_name, run_name in CI_RUN_VARIABLES:
        run = environ.get(run_name)
        if run:
            material = json.dumps([environ.get(scope_name, ""), run, body], sort_keys=True)
            return "govern-promote-" + hashlib.sha256(material.encode()).hexdigest()[:48]
    return "govern-promote-" + uuid.uuid4().hex


def wait_for(fetch: Callable[[], Any], settled: Callable[[Any], int | None], *, timeout: float, poll: float,
             on_change: Callable[[Any], None], clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> tuple[Any, int]:
    """Poll ``fetch`` until ``settled`` gives an exit status or ``timeout`` passes (then TIMEOUT)."""
    deadline = clock() + timeout
    doc = fetch()
    on_change(doc)
    while True:
        outcome = settled(doc)
        if outcome is not None:
            return doc, outcome
        remaining = deadline - clock()
        if remaining <= 0:
            return doc, exits.TIMEOUT
        sleep(min(poll, remaining))
        doc = fetch()
        on_change(doc)


# --- commands ------------------------------------------------------------------------------------------


def cmd_promote(args: argparse.Namespace, client: Client, out: Out) -> int:
    body: dict[str, Any] = {"model": args.model, "version": args.version, "environment": args.environment,
                            "strategy": args.strategy, "reason": args.reason}
    if args.canary_steps is not None:
        if args.strategy != "canary":
            raise usage("--canary-steps only goes with --strategy canary")
        body["canary_steps"] = args.canary_steps
    key = promote_idempotency_key(args.idempotency_key, body, dict(os.environ))
    try:
        response = client.call("POST", "/promotions", json_body=body, idempotency_key=key)
    except ApiError as exc:
        # The API names an unknown or invisible version or environment as a field error (400); the arguments
        # are well-formed (checked above), so for a pipeline this is "not found", whatever the reason.
        fields = {detail.partition(":")[0] for detail in exc.details}
        if exc.status == 400 and fields and fields <= {"version", "environment"}:
            exc.exit_code = exits.NOT_FOUND
        raise
    doc = response.json()
    if response.headers.get("Idempotent-Replayed") == "true":
        out.note(f"promotion {doc.get('id')}: already requested by an earlier run of this job (Idempotency-Key)")
    if not args.wait:
        out.note(f"promotion {doc.get('id')}: {doc.get('state')}")
        out.document(doc) if args.json else out.result(str(doc.get("id")))
        return exits.OK
    promotion_id = int(doc["id"])
    seen: dict[str, Any] = {}

    def on_change(current: dict[str, Any]) -> None:
        status = json.dumps(current.get("status"), sort_keys=True)
        marker = (current.get("state"), current.get("traffic_percent"), status)
        if seen.get("last") != marker:
            seen["last"] = marker
            out.note(" | ".join(describe_promotion(current)[1:]) or str(current.get("state")))

    final, outcome = wait_for(lambda: client.get_json(f"/promotions/{promotion_id}"),
                              lambda d: promotion_outcome(d, args.until),
                              timeout=args.timeout, poll=args.poll, on_change=on_change)
    if outcome == exits.TIMEOUT:
        out.note(f"promotion {promotion_id}: still {final.get('state')} after {args.timeout:g} s (exit 20)")
    else:
        out.note(f"promotion {promotion_id}: {final.get('state')}")
    out.document(final) if args.json else out.result(str(promotion_id))
    return outcome


def cmd_status(args: argparse.Namespace, client: Client, out: Out) -> int:
    doc = client.get_json(f"/promotions/{args.promotion_id}")
    if args.json:
        out.document(doc)
    else:
        for line in describe_promotion(doc):
            out.result(line)
    return exits.OK


def cmd_rollout_progress(args: argparse.Namespace, client: Client, out: Out) -> int:
    body: dict[str, Any] = {"status": args.status, "detail": args.detail}
    if args.percent is not None:
        body["traffic_percent"] = args.percent
    key = args.idempotency_key or "govern-progress-" + uuid.uuid4().hex
    doc = client.call("POST", f"/promotions/{args.promotion_id}/progress", json_body=body,
                      idempotency_key=key).json()
    if args.json:
        out.document(doc)
    else:
        out.result(f"promotion {doc.get('id')}: {doc.get('state')}, {doc.get('traffic_percent')}% traffic")
    return exits.OK


def read_events(source: str, stdin: TextIO) -> list[tuple[int, dict[str, Any]]]:
    """(line number, event) for every event of the file (``-``: stdin): a JSON array, or JSON Lines.

    Everything is read and checked before anything is sent: a malformed file is refused whole,
    naming its first bad line, so a pipeline never posts half a file by accident.
    """
    try:
        text = stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise usage(f"cannot read {source}: {exc}") from None
    name = "stdin" if source == "-" else source
    events: list[tuple[int, dict[str, Any]]] = []
    if text.lstrip().startswith("["):
        decoder = json.JSONDecoder()
        start = len(text) - len(text.lstrip())
        try:
            array, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            raise usage(f"{name} line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if text[end:].strip():
            line = text.count("\n", 0, end) + 1
            raise usage(f"{name} line {line}: text after the JSON array")
        # Each element's line: found again by decoding element by element (same grammar, same result).
        position = text.index("[", start) + 1
        for index, value in enumerate(array):
            while text[position] in " \t\r\n,":
                position += 1
            line = text.count("\n", 0, position) + 1
            _, position = decoder.raw_decode(text, position)
            if not isinstance(value, dict):
                raise usage(f"{name} line {line}: event {index + 1} is not a JSON object")
            events.append((line, value))
    else:
        for number, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise usage(f"{name} line {number}: not valid JSON ({exc.msg})") from None
            if not isinstance(value, dict):
                raise usage(f"{name} line {number}: not a JSON object (one event per line)")
            events.append((number, value))
    if not events:
        raise usage(f"{name} holds no events")
    for line, event in events:
        if not isinstance(event.get("event_id"), str) or not event.get("event_id"):
            # Without it a retry would record the event twice; the server refuses it too, but only later.
            raise usage(f"{name} line {line}: the event has no event_id (a UUID that a retry reuses)")
        if not isinstance(event.get("type"), str):
            raise usage(f"{name} line {line}: the event has no type")
    return events


def _batches(items: list[tuple[int, dict[str, Any]]], size: int) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def cmd_events_post(args: argparse.Namespace, client: Client, out: Out) -> int:
    events = read_events(args.file, sys.stdin)
    name = "stdin" if args.file == "-" else args.file
    created = repeated = refused = 0
    for batch in _batches(events, args.batch_size):
        try:
            # Runtime events are idempotent by event_id: a retried batch records nothing twice.
            answer = client.call("POST", "/events", json_body={"events": [e for _, e in batch]}, retry=True).json()
        except ApiError as exc:
            if exc.status != 400:
                out.note(f"events: {created} recorded, {repeated} already recorded, {refused} refused; "
                         f"{len(events) - created - repeated - refused} not sent")
                raise
            refused += len(batch)
            out.note(f"{name} lines {batch[0][0]}-{batch[-1][0]}: batch of {len(batch)} refused: {exc}")
            for detail in exc.details:
                out.note("  " + _event_line(detail, batch, name))
            continue
        for item in answer.get("events", []):
            if item.get("created"):
                created += 1
            else:
                repeated += 1
    summary = {"recorded": created, "already_recorded": repeated, "refused": refused, "total": len(events)}
    if args.json:
        out.document(summary)
    else:
        out.result(f"{created} recorded, {repeated} already recorded, {refused} refused (of {len(events)})")
    return exits.EVENTS_REFUSED if refused else exits.OK


def _event_line(detail: str, batch: list[tuple[int, dict[str, Any]]], name: str) -> str:
    """``events[3].model: ...`` of a batch → ``<file> line N: model: ...``."""
    if detail.startswith("events["):
        index_text, _, rest = detail[len("events["):].partition("]")
        if index_text.isdigit() and int(index_text) < len(batch):
            return f"{name} line {batch[int(index_text)][0]}: {rest.lstrip('.')}"
    return detail


def cmd_export_create(args: argparse.Namespace, client: Client, out: Out) -> int:
    body: dict[str, Any] = {"format": args.format}
    for key in ("model", "dataset", "since", "until", "since_checkpoint"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.event_type:
        body["event_types"] = args.event_type
    if args.subject:
        body["subjects"] = args.subject
    if args.output and not args.wait:
        raise usage("-o/--output needs --wait (the file exists once the export is done)")
    key = args.idempotency_key or "govern-export-" + uuid.uuid4().hex
    job = client.call("POST", "/exports", json_body=body, idempotency_key=key).json()
    job_id = int(job["id"])
    if not args.wait:
        out.note(f"export {job_id}: {job.get('state')}")
        out.document(job) if args.json else out.result(str(job_id))
        return exits.OK

    def settled(doc: dict[str, Any]) -> int | None:
        return {"done": exits.OK, "failed": exits.FAILED}.get(str(doc.get("state")))

    def on_change(doc: dict[str, Any]) -> None:
        out.note(f"export {job_id}: {doc.get('state')} ({doc.get('entries_done')}/{doc.get('entries_total')})")

    final, outcome = wait_for(lambda: client.get_json(f"/exports/{job_id}"), settled, timeout=args.timeout,
                              poll=args.poll, on_change=on_change)
    if outcome == exits.FAILED:
        out.note(f"export {job_id} failed: {final.get('error')}")
    if outcome == exits.OK and args.output:
        outcome = _download_export(client, out, job_id, Path(args.output), final)
    out.document(final) if args.json else out.result(str(job_id))
    return outcome


def _download_export(client: Client, out: Out, job_id: int, target: Path, job: dict[str, Any]) -> int:
    """Download the export's file to ``target`` and check it against the SHA-256 the server recorded."""
    if not target.parent.is_dir():
        raise usage(f"{target.parent} is not a directory")
    size, sha256 = client.download(f"/exports/{job_id}/download", target)
    expected = job.get("file_sha256")
    if expected and sha256 != expected:
        target.unlink(missing_ok=True)
        raise CliError(f"export {job_id}: the download's SHA-256 {sha256} is not the server's {expected}; "
                       "the file was removed", exits.INTEGRITY)
    out.note(f"export {job_id}: {size} bytes written to {target} (sha256 {sha256})")
    return exits.OK


def cmd_export_download(args: argparse.Namespace, client: Client, out: Out) -> int:
    job = client.get_json(f"/exports/{args.export_id}")
    if job.get("state") != "done":
        detail = f": {job.get('error')}" if job.get("state") == "failed" else "; try again when it is done"
        raise CliError(f"export {args.export_id} is {job.get('state')}{detail}",
                       exits.FAILED if job.get("state") == "failed" else exits.CONFLICT)
    outcome = _download_export(client, out, args.export_id, Path(args.output), job)
    out.result(str(Path(args.output)))
    return outcome


def _verify_anchor_args(args: argparse.Namespace) -> list[str]:
    argv: list[str] = []
    for key in args.trusted_key:
        argv += ["--trusted-key", key]
    for path in args.trusted_keys_file:
        argv += ["--trusted-keys-file", path]
    for path in args.witnesses_file:
        argv += ["--witnesses-file", path]
    if args.quorum is not None:
        argv += ["--quorum", str(args.quorum)]
    return argv


def cmd_export_verify(args: argparse.Namespace, out: Out) -> int:
    """The bundle checked by this installation's own copy of verify.py (``audit.offline_verify``), never by
    the ``verify.py`` inside the bundle: a forged bundle could carry a verifier that approves anything."""
    from audit import offline_verify

    argv = [args.bundle, *_verify_anchor_args(args)]
    for path in args.known_checkpoint:
        argv += ["--known-checkpoint", path]
    if args.json:
        argv.append("--json")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out.stdout, out.stderr
    try:
        return offline_verify.main(argv)
    finally:
        sys.stdout, sys.stderr = saved


def cmd_digest(args: argparse.Namespace, out: Out) -> int:
    from governance.directory_digest import digest_with_reason

    digest, why = digest_with_reason(Path(args.path), sys.maxsize, sys.maxsize)
    if not digest:
        raise usage(f"{args.path}: no digest: {why}")
    out.document({"path": args.path, "digest": digest}) if args.json else out.result(digest)
    return exits.OK


def cmd_attest(args: argparse.Namespace, client: Client, out: Out) -> int:
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise usage(f"cannot read {args.file}: {exc}") from None
    try:
        json.loads(raw)
    except ValueError:
        raise usage(f"{args.file} is not a JSON document (a DSSE envelope or a Sigstore bundle)") from None
    key = args.idempotency_key or "govern-attest-" + uuid.uuid4().hex
    path = f"/models/{_quote(args.model)}/versions/{args.version}/attestations"
    response = client.call("POST", path, raw=raw, idempotency_key=key)
    doc = response.json()
    if response.status == 200:
        out.note("this attestation was already stored for the version (nothing new recorded)")
    if args.json:
        out.document(doc)
    else:
        out.result(" ".join(f"{k}={doc[k]}" for k in ("id", "attestation", "kind", "predicate_type", "binds_version")
                            if isinstance(doc, dict) and k in doc) or json.dumps(doc, sort_keys=True))
    return exits.OK


def _read_receipt(path: str) -> Any:
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        return json.loads(raw)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the receipt {path}: {exc}", exits.VERIFY_UNREADABLE) from None


def cmd_receipt_get(args: argparse.Namespace, client: Client, out: Out) -> int:
    """``GET /promotions/{id}/receipt``; while it is pending (409 ``receipt_pending``) wait ``Retry-After``
    (or --poll) and ask again, until --timeout (exit 20)."""
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            response = client.call("GET", f"/promotions/{args.promotion_id}/receipt")
            break
        except ApiError as exc:
            if exc.status != 409 or exc.code != "receipt_pending":
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                out.note(f"promotion {args.promotion_id}: no receipt yet after {args.timeout:g} s ({exc})")
                return exits.TIMEOUT
            wait = min(exc.retry_after if exc.retry_after is not None else args.poll, args.poll * 6, remaining)
            out.note(f"promotion {args.promotion_id}: receipt pending, asking again in {wait:.1f} s")
            time.sleep(wait)
    doc = response.json()
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if args.output:
        target = Path(args.output)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
        out.note(f"promotion {args.promotion_id}: receipt written to {target}")
    else:
        out.stdout.write(text)
    return exits.OK


def cmd_receipt_verify(args: argparse.Namespace, out: Out) -> int:
    """Offline, with ``audit.receipt_verify.verify_receipt`` (standard library and cryptography only):
    0 verified, 1 it does not verify (the first failure named), 2 a file cannot be read."""
    from audit import receipt_verify
    from governance.directory_digest import digest_with_reason

    doc = _read_receipt(args.receipt)
    try:
        keys = [line for path in args.trusted_keys_file for line in Path(path).read_text("utf-8").splitlines()]
        keys += args.trusted_key
        witnesses = [line for path in args.witnesses_file for line in Path(path).read_text("utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read an anchor file: {exc}", exits.VERIFY_UNREADABLE) from None
    if not any(line.strip() and not line.lstrip().startswith("#") for line in keys):
        raise CliError("no trusted key: give --trusted-keys-file (manage.py ledger_keys output, from a channel "
                       "other than the receipt)", exits.VERIFY_UNREADABLE)
    expect = {name: str(getattr(args, name)) for name in ("model", "version", "environment", "artifact")
              if getattr(args, name) is not None}
    if args.artifact_dir is not None:
        digest, why = digest_with_reason(Path(args.artifact_dir), sys.maxsize, sys.maxsize)
        if not digest:
            raise CliError(f"{args.artifact_dir}: no digest: {why}", exits.VERIFY_UNREADABLE)
        expect["artifact"] = digest
    try:
        claims = receipt_verify.verify_receipt(doc, trusted_keys=keys, witnesses=witnesses, quorum=args.quorum,
                                               expect=expect)
    except receipt_verify.ReceiptError as exc:
        out.note(f"govern: receipt FAILED: {exc}")
        return exits.VERIFY_FAILED
    from dataclasses import asdict

    if args.json:
        out.document(asdict(claims))
    else:
        out.result(f"receipt OK: {claims.model} v{claims.version} in {claims.environment}, artifact "
                   f"{claims.artifact}, promotion {claims.promotion} ({claims.approval_event} at seq "
                   f"{claims.approval_seq}), checkpoint of tree size {claims.tree_size}"
                   + (f", {claims.witnesses} witness cosignature(s)" if claims.witnesses else ""))
    return exits.VERIFIED


def cmd_receipt_print(args: argparse.Namespace, out: Out) -> int:
    """The receipt's claims as written, NOT verified (say so): for people reading one."""
    from audit import receipt_verify

    doc = _read_receipt(args.receipt)
    note = doc.get("note") if isinstance(doc, dict) else None
    if not isinstance(note, str) or "\n\n" not in note:
        raise CliError("not a deployment receipt (no signed note)", exits.VERIFY_UNREADABLE)
    try:
        parsed = receipt_verify.parse_receipt_text(note.split("\n\n", 1)[0] + "\n")
    except receipt_verify.ReceiptError as exc:
        raise CliError(f"not a deployment receipt: {exc}", exits.VERIFY_UNREADABLE) from None
    if args.json:
        out.document({"origin": parsed.origin, "verified": False, **parsed.claims})
        return exits.OK
    out.result(f"log: {parsed.origin}")
    width = max(len(k) for k in parsed.claims)
    for key, value in parsed.claims.items():
        out.result(f"{key.ljust(width)}  {value}")
    out.result("(not verified: govern receipt verify FILE --trusted-keys-file K)")
    return exits.OK


# --- the command line ----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with API tokens redacted from its error messages ("unrecognized arguments: mlg_...": a token
    pasted into the wrong place would otherwise land in the job's log)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(exits.USAGE, f"{self.prog}: error: {redact(message)}\n")


def redact(text: str) -> str:
    return re.sub(r"mlg_\S+", "mlg_…(redacted)", text)


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--url, --token-file, --verbose, --json: on the top parser with defaults, on each command too
    (SUPPRESS there, so giving them before the command is not undone by the command's defaults)."""
    default: Any = argparse.SUPPRESS
    group = parser.add_argument_group("connection and output")
    group.add_argument("--url", default=None if top else default,
                       help="the server's base URL (default: $GOVERN_URL)")
    group.add_argument("--token-file", default=None if top else default, metavar="FILE",
                       help="read the API token from FILE (default: $GOVERN_TOKEN_FILE, then $GOVERN_TOKEN); "
                            "there is deliberately no --token: a command line is visible to every local user")
    group.add_argument("-v", "--verbose", action="store_true", default=False if top else default,
                       help="log each request with the API's request id (for support)")
    group.add_argument("--json", action="store_true", default=False if top else default,
                       help="print the result as JSON on stdout")


def _wait_options(parser: argparse.ArgumentParser, timeout: float) -> None:
    parser.add_argument("--wait", action="store_true", help="poll until it is settled (exit status = outcome)")
    parser.add_argument("--timeout", type=seconds, default=timeout, help=f"seconds to wait (default {timeout:g})")
    parser.add_argument("--poll", type=seconds, default=10.0, help="seconds between polls (default 10)")


def _anchor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trusted-keys-file", action="append", default=[], metavar="FILE",
                        help="trusted ledger keys (`manage.py ledger_keys` output), from a channel other than "
                             "the file being verified; repeatable")
    parser.add_argument("--trusted-key", action="append", default=[], metavar="'VKEY[ from=N][ until=M]'",
                        help="one trusted key line; repeatable")
    parser.add_argument("--witnesses-file", action="append", default=[], metavar="FILE",
                        help="witness cosigner keys or c2sp.org/tlog-policy witness lines")
    parser.add_argument("--quorum", type=positive_int, help="how many witnesses must have cosigned")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="govern", allow_abbrev=False,
        description="The governance ledger's API for pipelines: promotions, rollouts, runtime events, exports "
        "and their verification (docs/cli.md). Configuration: GOVERN_URL, GOVERN_TOKEN or "
        "GOVERN_TOKEN_FILE, GOVERN_CA_FILE.",
        epilog="Exit statuses: " + "; ".join(f"{code} {name.lower()}" for code, name, _ in exits.TABLE)
        + ". export verify and receipt verify: verify.py's 0 verified, 1 failed, 2 unreadable, 3 not anchored.",
    )
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(parent: Any, name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text,
                                                         allow_abbrev=False)
        _common(sub, top=False)
        return sub

    p = command(commands, "promote", "request a promotion (and with --wait, wait for its outcome)")
    p.add_argument("model")
    p.add_argument("version", type=positive_int)
    p.add_argument("environment")
    p.add_argument("--reason", required=True, help="why (kept in the ledger; e.g. the commit and the metrics)")
    p.add_argument("--strategy", choices=STRATEGIES, default="full")
    p.add_argument("--canary-steps", type=percent_list, metavar="10,50,100",
                   help="canary traffic percents, increasing, ending at 100")
    p.add_argument("--until", choices=("approved", "deployed"), default="deployed",
                   help="with --wait: stop once approved, or once deployed (default; canary/shadow: once the "
                        "rollout started)")
    p.add_argument("--idempotency-key", default=os.environ.get("GOVERN_IDEMPOTENCY_KEY"),
                   help="default: derived from the CI run and the request, so a retried job asks only once")
    _wait_options(p, 3600.0)
    p.set_defaults(handler=cmd_promote)

    p = command(commands, "status", "show a promotion: state, gates, approvals still missing")
    p.add_argument("promotion_id", type=positive_int)
    p.set_defaults(handler=cmd_status)

    rollout = commands.add_parser("rollout", help="canary/shadow rollouts").add_subparsers(
        dest="rollout_command", metavar="SUBCOMMAND", required=True)
    p = command(rollout, "progress", "report a canary/shadow rollout's progress (completed moves the alias)")
    p.add_argument("promotion_id", type=positive_int)
    p.add_argument("--status", choices=PROGRESS, required=True)
    p.add_argument("--percent", type=percent, help="traffic percent now served by the new version (step)")
    p.add_argument("--detail", default="", help="a short note (error rate, dashboard link)")
    p.add_argument("--idempotency-key", default=None)
    p.set_defaults(handler=cmd_rollout_progress)

    events = commands.add_parser("events", help="runtime events").add_subparsers(
        dest="events_command", metavar="SUBCOMMAND", required=True)
    p = command(events, "post", "post runtime events from a JSON array or JSON Lines file (- for stdin)")
    p.add_argument("file")
    p.add_argument("--batch-size", type=positive_int, default=MAX_BATCH, help="events per request (at most 1000)")
    p.set_defaults(handler=cmd_events_post)

    export = commands.add_parser("export", help="regulator exports").add_subparsers(
        dest="export_command", metavar="SUBCOMMAND", required=True)
    p = command(export, "create", "start an export (--wait: until done; -o: and download it)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="bundle")
    p.add_argument("--model")
    p.add_argument("--dataset")
    p.add_argument("--since", help="ISO 8601 date or date-time, inclusive")
    p.add_argument("--until", help="ISO 8601 date or date-time, inclusive")
    p.add_argument("--event-type", action="append", default=[])
    p.add_argument("--subject", action="append", default=[], help="TYPE:ID, e.g. model_version:fraud/3")
    p.add_argument("--since-checkpoint", type=positive_int, help="bundles: the tree size of a checkpoint you hold")
    p.add_argument("-o", "--output", help="with --wait: download the file here")
    p.add_argument("--idempotency-key", default=None)
    _wait_options(p, 3600.0)
    p.set_defaults(handler=cmd_export_create)
    p = command(export, "download", "download a finished export and check its SHA-256")
    p.add_argument("export_id", type=positive_int)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(handler=cmd_export_download)
    p = command(export, "verify", "verify a bundle offline (verify.py's checks and exit statuses)")
    p.add_argument("bundle")
    _anchor_options(p)
    p.add_argument("--known-checkpoint", action="append", default=[], metavar="FILE")
    p.set_defaults(handler=cmd_export_verify, offline=True)

    receipt = commands.add_parser("receipt", help="deployment receipts").add_subparsers(
        dest="receipt_command", metavar="SUBCOMMAND", required=True)
    p = command(receipt, "get", "fetch a deployed promotion's signed receipt (waits while it is pending)")
    p.add_argument("promotion_id", type=positive_int)
    p.add_argument("-o", "--output", help="write it here (default: stdout)")
    p.add_argument("--timeout", type=seconds, default=300.0, help="seconds to wait while pending (default 300)")
    p.add_argument("--poll", type=seconds, default=10.0, help="seconds between asks without Retry-After")
    p.set_defaults(handler=cmd_receipt_get)
    p = command(receipt, "verify", "verify a receipt offline against trusted keys (0 ok, 1 fails, 2 unreadable)")
    p.add_argument("receipt", help="the receipt JSON (- for stdin)")
    _anchor_options(p)
    p.add_argument("--model")
    p.add_argument("--version", type=positive_int)
    p.add_argument("--environment")
    claim = p.add_mutually_exclusive_group()
    claim.add_argument("--artifact", metavar="sha256:HEX", help="the artifact digest the deployment must be")
    claim.add_argument("--artifact-dir", metavar="DIR", help="the model directory about to be served: its digest")
    p.set_defaults(handler=cmd_receipt_verify, offline=True)
    p = command(receipt, "print", "print a receipt's claims (NOT verified)")
    p.add_argument("receipt")
    p.set_defaults(handler=cmd_receipt_print, offline=True)

    p = command(commands, "digest", "print a model directory's artifact digest as the server computes it")
    p.add_argument("path")
    p.set_defaults(handler=cmd_digest, offline=True)

    p = command(commands, "attest", "send an attestation (DSSE envelope or Sigstore bundle) for a model version")
    p.add_argument("file", help="the JSON document (- for stdin)")
    p.add_argument("--model", required=True)
    p.add_argument("--version", type=positive_int, required=True)
    p.add_argument("--idempotency-key", default=None)
    p.set_defaults(handler=cmd_attest)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run one command; returns its exit status. Errors are one line on stderr, never a traceback."""
    out = Out(stdout or sys.stdout, stderr or sys.stderr)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--token" or a.startswith("--token=") for a in arguments):
        # Refused before argparse, whose "unrecognized arguments" message would print the token into the job log.
        out.note("govern: there is no --token option (a command line is visible to every local user and kept in "
                 "logs): put the token in GOVERN_TOKEN or a file named by --token-file. The value was not shown.")
        return exits.USAGE
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    try:
        if getattr(args, "offline", False):
            code: int = args.handler(args, out)
            return code
        config: Config = load_config(url=args.url, token_file=args.token_file, verbose=args.verbose)
        client = Client(config, log=out.note)
        code = args.handler(args, client, out)
        return code
    except CliError as exc:
        out.note(f"govern: {exc}")
        for detail in exc.details:
            out.note(f"  {detail}")
        if exc.request_id and args.verbose:
            out.note(f"  request id: {exc.request_id}")
        return exc.exit_code
    except KeyboardInterrupt:
        out.note("govern: interrupted")
        return 130
