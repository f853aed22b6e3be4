"""Print the checkpoint verifier keys with the tree sizes each may sign, as trusted-key lines.

The output is itself a valid ``--trusted-keys-file`` for ``verify.py`` and
``verify_ledger``: one ``<vkey> [from=N] [until=M]`` line per key, each preceded
by a ``#`` comment for people (current or retired, and the first and last
checkpoint in its range with their dates). Validity comes from configuration
only (``audit.signing.key_lifetimes``); the checkpoints shown come from the
database and are information, never a source of trust.
"""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.canonical import format_timestamp
from audit.models import Checkpoint, Entry
from audit.note import NoteError, Verifier, open_note
from audit.signing import KeyLifetime, current_verifier_key, key_lifetimes, key_name


def _checkpoint(cp: Checkpoint | None, verifier: Verifier) -> dict[str, Any] | None:
    if cp is None:
        return None
    try:
        signed = bool(open_note(cp.note, [verifier]).verified_by)
    except NoteError:
        signed = False
    return {"id": cp.pk, "tree_size": cp.tree_size, "created_at": format_timestamp(cp.created_at),
            "signed_by_this_key": signed}


def _range(lifetime: KeyLifetime) -> tuple[Checkpoint | None, Checkpoint | None]:
    """The first and the last stored checkpoint whose size lies in the key's validity."""
    qs = Checkpoint.objects.filter(tree_size__gte=lifetime.valid_from)
    if lifetime.valid_until is not None:
        qs = qs.filter(tree_size__lte=lifetime.valid_until)
    return qs.order_by("tree_size", "id").first(), qs.order_by("-tree_size", "-id").first()


def _handover_warnings(lifetimes: list[KeyLifetime]) -> list[str]:
    """Handovers the ledger records that configuration does not reflect (e.g. a trusted-keys file lost in a
    redeployment): information for the operator; configuration stays the only source of trust."""
    bounds = {k.verifier_key: k for k in lifetimes}
    out = []
    for payload in Entry.objects.filter(event_type="ledger.signing_key_handover").order_by("seq").values_list(
        "payload_json", flat=True
    ):
        handover = json.loads(payload)
        size, old, new = handover.get("tree_size"), handover.get("old_verifier_key"), handover.get("new_verifier_key")
        old_ok = old in bounds and bounds[old].valid_until == size
        new_ok = new in bounds and bounds[new].valid_from == size
        if not (old_ok and new_ok):
            out.append(f"the ledger records a key handover at tree size {size} ({old} until={size}, {new} "
                       f"from={size}) that the key configuration does not reflect: restore the trusted-keys file "
                       "(or LEDGER_TRUSTED_KEYS) before trusting this list")
    return out


def _describe(entry: dict[str, Any]) -> str:
    vkey = entry["verifier_key"]
    state = "current signing key" if entry["current"] else "retired" if entry["valid_until"] is not None else "trusted"
    until = "" if entry["valid_until"] is None else f" to {entry['valid_until']}"
    text = f"# {vkey.rsplit('+', 1)[0]}: {state}; valid for tree sizes {entry['valid_from']}{until or ' on'}"

    def show(cp: dict[str, Any]) -> str:
        mark = "" if cp["signed_by_this_key"] else ", NOT signed by this key"
        return f"#{cp['id']} (size {cp['tree_size']}, {cp['created_at']}{mark})"

    first, last = entry["first_checkpoint"], entry["last_checkpoint"]
    if first is None:
        return text + "; no checkpoint in that range yet"
    if first["id"] == last["id"]:
        return f"{text}; checkpoint {show(first)}"
    return f"{text}; checkpoints {show(first)} to {show(last)}"


class Command(BaseCommand):
    help = (
        "Print the checkpoint verifier keys with the tree sizes each may sign, one trusted-key line per key "
        "('<vkey> [from=N] [until=M]', with a '#' comment for people before it): save the output and pass it to "
        "verify.py or verify_ledger with --trusted-keys-file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the keys, validity and checkpoints as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            lifetimes = key_lifetimes()
            current = current_verifier_key()
        except ValueError as exc:  # NoteError: a malformed or contradicting trusted-key line
            raise CommandError(f"the key configuration is malformed: {exc}") from None
        keys: list[dict[str, Any]] = []
        for lifetime in lifetimes:
            verifier = Verifier.parse(lifetime.verifier_key)
            first, last = _range(lifetime)
            keys.append({
                "verifier_key": lifetime.verifier_key,
                "valid_from": lifetime.valid_from,
                "valid_until": lifetime.valid_until,
                "line": lifetime.line(),
                "current": lifetime.verifier_key == current,
                "first_checkpoint": _checkpoint(first, verifier),
                "last_checkpoint": _checkpoint(last, verifier),
            })
        warnings = _handover_warnings(lifetimes)
        if options["json"]:
            self.stdout.write(json.dumps({"origin": key_name(), "current": current, "keys": keys,
                                          "warnings": warnings}, indent=2))
            return
        self.stdout.write(f"# Checkpoint verifier keys of {key_name()} and the tree sizes each may sign.")
        self.stdout.write("# Save this output and pass it to verify.py / verify_ledger with --trusted-keys-file.")
        for warning in warnings:
            self.stderr.write(f"WARNING: {warning}")
            self.stdout.write(f"# WARNING: {warning}")
        for entry in keys:
            self.stdout.write(_describe(entry))
            self.stdout.write(entry["line"])
