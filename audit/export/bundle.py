"""The verifiable bundle (a zip that ``verify.py`` checks offline: docs/export-format.md) and its trust
anchors: the signing keys and witness cosignatures a recipient passes to ``verify.py``."""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import queue
import shlex
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from audit import offline_verify, signing
from audit.canonical import format_timestamp, leaf_hash
from audit.compliance import scope_summary
from audit.event_catalogue import catalogue_json
from audit.export.errors import ExportError
from audit.export.proofs import BLOCK_LEVEL, Proofs
from audit.export.scope import model_exclusions
from audit.export.selection import FIELDS, PROGRESS_EVERY, Checked, Plan, Row, rows
from audit.models import Checkpoint, Entry, ExportJob, SigningKey
from audit.note import NoteError, Verifier, open_note
from audit.selectors import consistency_proof
from audit.services.witnessing import configured_witnesses, published_note
from audit.signing import current_verifier_key, key_name
from audit.verification import trusted_verifiers

EVENT_TYPES_FILE = "event-types.json"


BUNDLE_FORMAT = offline_verify.FORMAT


MAX_CHECKPOINTS = 1000  # earlier checkpoints in a bundle before thinning to one per day


class _Background:
    """One thread running submitted writes in order; a failure is raised in the submitting thread."""

    def __init__(self, depth: int = 16) -> None:
        self._queue: queue.Queue[tuple[Callable[[bytes], None], bytes] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="export-writer", daemon=True)

    def __enter__(self) -> _Background:
        self._thread.start()
        return self

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    item[0](item[1])
                except BaseException as exc:  # handed to the submitting thread
                    self._error = exc

    def submit(self, fn: Callable[[bytes], None], data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((fn, data))

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error


class _Zip:
    """A deterministic zip (fixed timestamps) recording the SHA-256 and size of every member."""

    def __init__(self, path: Path, moment: datetime) -> None:
        self.zip = zipfile.ZipFile(path, "w", allowZip64=True)
        utc = moment.astimezone(UTC)
        self.date_time = (max(utc.year, 1980), utc.month, utc.day, utc.hour, utc.minute, utc.second)
        self.files: dict[str, dict[str, Any]] = {}

    def info(self, name: str, compress: int, level: int | None) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self.date_time)
        info.compress_type = compress
        info._compresslevel = level  # type: ignore[attr-defined]  # (public in 3.13 as compress_level)
        info.external_attr = 0o644 << 16
        return info

    def put(self, name: str, data: bytes, *, compress: int = zipfile.ZIP_DEFLATED, level: int | None = 6) -> None:
        self.zip.writestr(self.info(name, compress, level), data)
        self.files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    @contextlib.contextmanager
    def stream(
        self, name: str, *, compress: int = zipfile.ZIP_DEFLATED, level: int | None = 1, sha256: str | None = None
    ) -> Iterator[Callable[[bytes], None]]:
        """A writer into a new member; ``sha256`` when the caller already hashed the bytes it will write."""
        digest = hashlib.sha256()
        size = 0
        with self.zip.open(self.info(name, compress, level), "w", force_zip64=True) as fh:

            def write(data: bytes) -> None:
                nonlocal size
                fh.write(data)
                if sha256 is None:
                    digest.update(data)
                size += len(data)

            yield write
        self.files[name] = {"sha256": sha256 or digest.hexdigest(), "bytes": size}

    def close(self) -> None:
        self.zip.close()


def _earlier_checkpoints(head: Checkpoint, low: int, known: int | None = None) -> list[Checkpoint]:
    """The earlier checkpoints a bundle includes (docs/export-format.md, "Which checkpoints"), in file order.

    Every checkpoint signed before ``head`` (smaller id) whose tree holds entry ``low`` (the lowest seq in the
    bundle), i.e. ``low < tree_size <= head.tree_size``; a note identical to one already kept (the same tree
    re-signed by the same keys) is left out. Beyond MAX_CHECKPOINTS: the first, the last of each UTC day and
    every one signed by more than one key (a rotation's handover). ``known`` (the scope's ``since_checkpoint``):
    the first checkpoint of that tree size is included too, whatever ``low``, unless the anchor is of that size.
    Raises ExportError when id order and tree-size order disagree (the files are verified in name, i.e. id, order).
    """
    qs = Checkpoint.objects.filter(id__lt=head.pk, tree_size__gt=low, tree_size__lte=head.tree_size).order_by("id")
    seen = {head.note}
    unique: list[Checkpoint] = []
    for cp in qs.iterator(chunk_size=2000):
        if cp.note not in seen:
            seen.add(cp.note)
            unique.append(cp)
    wanted = None
    if known is not None and known != head.tree_size:
        wanted = Checkpoint.objects.filter(id__lt=head.pk, tree_size=known).order_by("id").first()
        if wanted is not None and wanted.note not in seen:
            unique = sorted([*unique, wanted], key=lambda c: c.pk)
    if len(unique) > MAX_CHECKPOINTS:
        kept: dict[Any, Checkpoint] = {}
        for cp in unique:
            kept[cp.created_at.astimezone(UTC).date()] = cp
        chosen = {cp.pk for cp in [unique[0], *kept.values()]}
        chosen |= {cp.pk for cp in unique if len(offline_verify.signers_of(cp.note)) > 1}
        chosen |= {cp.pk for cp in unique if wanted is not None and cp.note == wanted.note}
        unique = [cp for cp in unique if cp.pk in chosen]
    for a, b in itertools.pairwise([*unique, head]):
        if a.tree_size > b.tree_size:
            raise ExportError(f"checkpoint #{a.pk} (size {a.tree_size}) is larger than the later #{b.pk} "
                              f"(size {b.tree_size}): run verify_ledger", code="ledger_not_intact")
    return unique


def checkpoint_published(checkpoint: Checkpoint) -> str:
    """The checkpoint as published: its signed note with the witnesses' cosignature lines."""
    return published_note(checkpoint)


def trusted_key_lines() -> list[str]:
    """The ledger's verifier keys as trusted-key lines (with their validity), from configuration."""
    return [lt.line() for lt in signing.key_lifetimes()]


def witness_anchors() -> tuple[list[str], int | None]:
    """The configured witnesses' cosigner verifier keys and the quorum a recipient should require."""
    vkeys = [w.verifier_key for w in configured_witnesses()]
    if not vkeys:
        return [], None
    return vkeys, int(settings.LEDGER_WITNESS_QUORUM)


def _quoted(value: str) -> str:
    """``value`` in single quotes for a POSIX shell (always: keys are easier to spot and copy that way)."""
    return "'" + value.replace("'", "'\\''") + "'"


def verify_command(bundle: str = "BUNDLE.zip") -> str:
    """The full verify.py command for a bundle with this ledger's trust anchors filled in."""
    parts = ["python", "verify.py", shlex.quote(bundle)]
    for line in trusted_key_lines():
        parts += ["--trusted-key", _quoted(line)]
    vkeys, quorum = witness_anchors()
    for vkey in vkeys:
        parts += ["--witness-key", _quoted(vkey)]
    if quorum:
        parts += ["--quorum", str(quorum)]
    return " ".join(parts)


def _keys_text(signers: dict[str, list[Checkpoint]], origin: str) -> bytes:
    """keys.txt: the verifier keys that signed the bundle's checkpoints, with when each was in use."""
    retired: dict[str, str] = {}
    for payload_json, ts in Entry.objects.filter(event_type="ledger.signing_key_rotated").values_list(
        "payload_json", "timestamp"
    ):
        old = json.loads(payload_json).get("old_verifier_key")
        if isinstance(old, str):
            retired.setdefault(old, ts)
    current = current_verifier_key()
    lifetimes = _lifetime_lines()
    lines = [
        "# Verifier keys (C2SP signed-note format) of the keys that signed the checkpoints in this bundle.",
        f"# Key name = the ledger's origin, {origin}. INFORMATION ONLY: verify.py does not trust these keys.",
        "# Obtain the ledger's keys from a channel other than this bundle (the operator's publication,",
        "# python manage.py ledger_keys, an earlier export you kept, a regulator's copy) and pass them to",
        "# verify.py with --trusted-key (see README.txt).",
        "#",
    ]
    for vkey, cps in signers.items():
        name, kid = vkey.split("+")[:2]
        row = SigningKey.objects.filter(name=name, key_id=kid).first()
        start = format_timestamp(row.created_at) if row else "unknown"
        if vkey in retired:
            end = f"{retired[vkey]} (rotated out)"
        elif vkey == current:
            end = "the export (the current key)"
        else:
            end = "unknown"
        times = sorted(format_timestamp(cp.created_at) for cp in cps)
        lines.append(f"# {name}+{kid}: valid from {start} to {end}; signed {len(cps)} checkpoint(s) here, "
                     f"from {times[0]} to {times[-1]}")
        lines.append(lifetimes.get(vkey, vkey))
    return ("\n".join(lines) + "\n").encode()


def _lifetime_lines() -> dict[str, str]:
    """vkey -> its trusted-key line with from=/until=."""
    return {line.split()[0]: line for line in trusted_key_lines() if line.split()}


def _boundary_rows(p: Plan) -> list[tuple[str, Row]]:
    seqs = sorted({seq for _, seq in p.boundaries})
    found = {r[0]: r for r in Entry.objects.filter(seq__in=seqs).values_list(*FIELDS)} if seqs else {}
    out = []
    for role, seq in p.boundaries:
        if seq not in found:
            raise ExportError(f"entry {seq} is missing from the ledger: run verify_ledger", code="ledger_not_intact")
        out.append((role, found[seq]))
    return out


def _entry_json(body: bytes, entry_hash: str, extra: bytes = b"") -> bytes:
    return b'{"body":' + body + b',"entry_hash":"' + entry_hash.encode() + b'"' + extra + b"}"


def write_bundle(
    *, job: ExportJob, plan: Plan, entry: Entry, checkpoint: Checkpoint, path: Path, progress: Callable[[int], None]
) -> int:
    size, root = checkpoint.tree_size, bytes.fromhex(checkpoint.root_hash)
    size_in_scope = int(job.scope["ledger_size"])
    verifiers = trusted_verifiers()
    signers: dict[str, list[Checkpoint]] = {}
    for v in _verified(checkpoint, verifiers):
        signers.setdefault(str(v), []).append(checkpoint)
    proofs = Proofs(size, root)
    out = _Zip(path, job.created_at)
    count = 0
    next_progress = PROGRESS_EVERY
    first_seq: int | None = None
    last_seq: int | None = None
    proofs_tmp = path.with_name(path.name + ".proofs")
    try:
        proofs_digest = hashlib.sha256()
        proofs_size = 0
        check = Checked()
        by_type: Counter[str] = Counter()  # entries of each event type: the manifest's compliance member
        # Entries are compressed into the zip and proofs spooled to a file by a second thread
        # (zlib and hashlib release the GIL), while this one reads the ledger and makes proofs.
        with proofs_tmp.open("wb") as proofs_fh, out.stream("entries.jsonl", level=1) as write_entries, \
                _Background() as background:
            block: list[tuple[int, bytes]] = []
            lines: list[bytes] = []

            def spool(data: bytes) -> None:
                nonlocal proofs_size
                proofs_fh.write(data)
                proofs_digest.update(data)
                proofs_size += len(data)

            def flush() -> None:
                if block:
                    background.submit(spool, proofs.lines(block))
                    block.clear()
                if lines:
                    background.submit(write_entries, b"".join(lines))
                    lines.clear()

            current_block = -1
            add_line, add_leaf = lines.append, block.append
            for row in rows(plan):
                seq = row[0]
                if seq >> BLOCK_LEVEL != current_block:
                    flush()
                    current_block = seq >> BLOCK_LEVEL
                    if count >= next_progress:
                        progress(count)
                        next_progress = count + PROGRESS_EVERY
                body, leaf = check(row)
                by_type[row[2]] += 1
                add_line(b'{"body":' + body + b',"entry_hash":"' + row[10].encode() + b'"}\n')
                add_leaf((seq, leaf))
                count += 1
                if first_seq is None:
                    first_seq = seq
                last_seq = seq
            flush()
        with out.stream("proofs.jsonl", compress=zipfile.ZIP_STORED, level=None,
                        sha256=proofs_digest.hexdigest()) as write_proofs, proofs_tmp.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                write_proofs(chunk)
        proofs_tmp.unlink()
        if out.files["proofs.jsonl"]["bytes"] != proofs_size:
            raise ExportError("proofs.jsonl changed on disk while it was copied into the bundle", code="io_error")

        # boundaries and the export's own entry, each with its proof
        lines_b = []
        for role, row in _boundary_rows(plan):
            body, leaf = Checked()(row)
            extra = f',"tree_size":{size},"inclusion":{json.dumps(proofs.one(row[0], leaf))}'.encode()
            lines_b.append(b'{"role":"' + role.encode() + b'",' + _entry_json(body, row[10], extra)[1:] + b"\n")
        out.put("boundaries.jsonl", b"".join(lines_b))
        export_body = entry.canonical_body()
        export_leaf = leaf_hash(export_body)
        if export_leaf.hex() != entry.entry_hash:
            raise ExportError(f"the export's own entry {entry.seq} does not match its hash: run verify_ledger",
                              code="ledger_not_intact")
        extra = f',"tree_size":{size},"inclusion":{json.dumps(proofs.one(entry.seq, export_leaf))}'.encode()
        out.put("export-entry.json", _entry_json(export_body, entry.entry_hash, extra) + b"\n")

        # checkpoints: the anchor, earlier ones whose trees hold the bundle's lowest entry, consistency between them
        out.put("checkpoint.txt", checkpoint_published(checkpoint).encode())
        low = min([entry.seq, *(s for _, s in plan.boundaries), *([first_seq] if first_seq is not None else [])])
        earlier = _earlier_checkpoints(checkpoint, low, job.scope.get("since_checkpoint"))
        names = [f"checkpoints/{cp.pk:012d}.txt" for cp in earlier]
        chain = [*zip(names, earlier, strict=True), ("checkpoint.txt", checkpoint)]
        consistency = []
        for (old_name, old), (new_name, new) in itertools.pairwise(chain):
            proof = consistency_proof(old_size=old.tree_size, new_size=new.tree_size)
            if proof.old_root.hex() != old.root_hash or proof.new_root.hex() != new.root_hash:
                raise ExportError(f"checkpoint #{old.pk} or #{new.pk} does not match the stored tree: "
                                  "run verify_ledger", code="ledger_not_intact")
            consistency.append(json.dumps(
                {"from": old_name, "to": new_name, "old_size": old.tree_size, "new_size": new.tree_size,
                 "consistency": [h.hex() for h in proof.path]}, separators=(",", ":")) + "\n")
        for name, cp in zip(names, earlier, strict=True):
            for v in _verified(cp, verifiers):
                signers.setdefault(str(v), []).append(cp)
            out.put(name, checkpoint_published(cp).encode())
        if earlier:
            out.put("checkpoints/consistency.jsonl", "".join(consistency).encode())
        out.put("keys.txt", _keys_text(signers, key_name()))
        out.put("verify.py", Path(offline_verify.__file__).read_bytes())
        out.put(EVENT_TYPES_FILE, catalogue_json())
        manifest = {
            "format": BUNDLE_FORMAT,
            "origin": key_name(),
            "export_id": job.pk,
            "created_at": format_timestamp(job.created_at),
            "exporter": {"type": entry.actor_type, "id": entry.actor_id},
            "scope": job.scope,
            "completeness": plan.kind,
            "export_entry_seq": entry.seq,
            "checkpoint": {"file": "checkpoint.txt", "tree_size": size, "root_hash": checkpoint.root_hash},
            "checkpoints": names,
            "entries": {"count": count, "first_seq": first_seq, "last_seq": last_seq},
            "subjects": [
                {"type": r.subject[0], "id": r.subject[1], "head_seq": r.head, "first_seq": r.first,
                 "last_seq": r.last, "count": r.count}
                for r in plan.runs
            ] if plan.kind == "subjects" else [],
            "event_types": EVENT_TYPES_FILE,
            "excluded": model_exclusions(job.scope["model"], size_in_scope) if job.scope.get("model") else [],
            "compliance": scope_summary(by_type),
        }
        out.put("README.txt", _readme(manifest, plan, verify_command("THIS_BUNDLE.zip")).encode())
        manifest["files"] = dict(sorted(out.files.items()))
        out.put("manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    finally:
        out.close()
        with contextlib.suppress(OSError):
            proofs_tmp.unlink()
    return count


def _readme(manifest: dict[str, Any], p: Plan, command: str) -> str:
    scope = offline_verify.scope_text(manifest["scope"])
    entries = manifest["entries"]
    span = "" if entries["first_seq"] is None else f" (seq {entries['first_seq']} to {entries['last_seq']})"
    completeness = {
        "ledger": "COMPLETE for the range: every entry of the ledger in it is here, and verify.py shows it.",
        "subjects": "COMPLETE for each subject: every entry of each subject in the scope is here, and verify.py "
        "shows it.",
        "none": "NOT claimed: the export was filtered by event type; verify.py shows each entry is authentic.",
    }[p.kind]
    excluded = ""
    for item in manifest.get("excluded") or []:
        listed = ", ".join(f"{s['type']}:{s['id']} ({s['entries']:,})" for s in item["subjects"])
        excluded += (f"\nNOT INCLUDED: {item['entries']:,} {item['what']}: {item['why']}.\n"
                     f"  Subjects (entries about the model): {listed}.\n"
                     f"  To have them: {item['how_to_export']}.\n")
    return f"""Audit ledger export #{manifest['export_id']}
=============================

Ledger:     {manifest['origin']}
Exported:   {manifest['created_at']} by {manifest['exporter']['type']}:{manifest['exporter']['id']}
Scope:      {scope}
Entries:    {entries['count']:,}{span}
Anchored:   checkpoint of tree size {manifest['checkpoint']['tree_size']:,}, root {manifest['checkpoint']['root_hash']}
Complete:   {completeness}
{excluded}
This bundle lets you check, without access to our systems, that the entries in
it are exactly those recorded in the ledger, that none was altered, and that
they are covered by checkpoints signed with the ledger's keys.

How to verify
-------------
You need Python 3.9 or later and the `cryptography` package
(`python -m pip install cryptography`). Then, in the directory of this zip:

    unzip THIS_BUNDLE.zip verify.py        # or extract verify.py any other way
    {command}

The --trusted-key, --witness-key and --quorum values above are the trust
anchors as the ledger's operator configured them when this bundle was made.
DO NOT take them from this file or from keys.txt: anyone who forged a bundle
would write their own keys here. Obtain the ledger's verifier keys (with their
validity, "from=" and "until=" tree sizes) and the witnesses' keys from a
channel other than this bundle (the operator's publication, an earlier export
you kept, a regulator's copy, the witnesses themselves), compare them with the
command above and run it with the keys you obtained.

verify.py trusts nothing in the bundle. Without any trust anchor it checks
that the bundle is consistent with itself, says what it checked and that
nothing anchors it, exits with status 3 and does NOT say VERIFIED. It exits
with status 0 only if everything verifies against the anchors you gave;
otherwise it names what failed (status 1; 2 when the file is not a readable
bundle). `--json` prints the result as JSON.

What is in it
-------------
manifest.json        what was exported, by whom, when, and the SHA-256 of every other file
export-entry.json    the ledger's own record of this export (who, scope), with its inclusion proof
entries.jsonl        one entry per line: {{"body": <entry exactly as hashed>, "entry_hash": <hex>}}
proofs.jsonl         one line per entry: its RFC 9162 inclusion proof against checkpoint.txt
boundaries.jsonl     the entries just outside the range, which show nothing is missing at its ends
checkpoint.txt       the signed checkpoint (C2SP signed note, with witness cosignatures) all proofs lead to
checkpoints/         earlier signed checkpoints and the consistency proofs between them
keys.txt             the verifier keys that signed the checkpoints, with their validity (information only)
event-types.json     the catalogue of event types: payload fields, which are personal, subjects, meaning
verify.py            the verifier (one file; same as audit/offline_verify.py in the ledger's code)

Regulation mapping: manifest.json's "compliance" member counts, for each
requirement of PCI DSS, DORA, the EU AI Act and SOX that the ledger answers,
the entries of its event types in this bundle (docs/compliance.md of the
ledger's code says which events, fields and controls answer each one).

Personal data is not in this bundle: where an entry had personal values, its
body holds a commitment (an HMAC) to the value instead, exactly as hashed;
event-types.json says which payload fields are personal.

The format is documented in docs/export-format.md of the ledger's code.
"""


def _verified(checkpoint: Checkpoint, verifiers: list[Verifier]) -> list[Verifier]:
    try:
        return open_note(checkpoint.note, verifiers).verified_by
    except NoteError as exc:
        raise ExportError(f"checkpoint #{checkpoint.pk} does not verify with the configured keys ({exc}): "
                          "run verify_ledger", code="ledger_not_intact") from None
