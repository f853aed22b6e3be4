"""Write the latest checkpoint and its hash tiles as static files (c2sp.org/tlog-tiles), for object storage.

    python manage.py tlog_tiles --out DIR

``DIR/checkpoint`` and ``DIR/tile/<L>/<N>[.p/<W>]``, exactly the paths ``/tlog/`` serves, for the tree of the
latest checkpoint. Full tiles already in DIR are kept (they never change); partial tiles are rewritten. Entry
bundles are not written: they are ledger content, read through ``/tlog/tile/entries/…`` (recorded) or an
export (``export_audit``). One query per tile; each file is written to a temporary name and renamed, and the
checkpoint last, so a reader of DIR never sees a checkpoint whose tiles are not there yet.
"""
from __future__ import annotations

import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import selectors
from audit.services.witnessing import published_note
from audit.tiles import hash_tile, tiles_for_size


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class Command(BaseCommand):
    help = "Write the latest checkpoint and its hash tiles (C2SP tlog-tiles) under --out DIR."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="the directory to write (created if missing)")

    def handle(self, *args: object, **options: object) -> None:
        out = Path(str(options["out"]))
        checkpoint = selectors.latest_checkpoint()
        if checkpoint is None:
            raise CommandError("no checkpoint has been signed yet: nothing to write")
        written = kept = 0
        for tile in tiles_for_size(checkpoint.tree_size):
            target = out / tile.path
            if not tile.partial and target.is_file():
                kept += 1
                continue
            data = hash_tile(tile)
            if data is None:  # the nodes of a checkpointed tree are always stored: the database lost some
                raise CommandError(f"tile {tile.path} of the checkpointed tree is not stored (verify_ledger)")
            _write(target, data)
            written += 1
        _write(out / "checkpoint", published_note(checkpoint).encode("utf-8"))
        self.stdout.write(f"tree size {checkpoint.tree_size}: {written} tile(s) written, {kept} full tile(s) "
                          f"already there, checkpoint written to {out / 'checkpoint'}")
