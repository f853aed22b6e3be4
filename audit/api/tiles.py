"""``/tlog/``: the ledger's Merkle tree as C2SP tlog-tiles (c2sp.org/tlog-tiles), for monitors and verify.py.

* ``/tlog/checkpoint``: the latest signed checkpoint with its witness cosignatures (``text/plain``), as
  ``/api/v1/ledger/checkpoint``; never cached beyond a few seconds.
* ``/tlog/tile/<L>/<N>[.p/<W>]``: hash tiles (``audit.tiles``): only hashes, the same information as the
  inclusion and consistency proofs of ``/api/v1/ledger/…``.
* ``/tlog/tile/entries/<N>[.p/<W>]``: entry bundles: the entries' canonical bodies, i.e. ledger content.

Who may read (docs/ledger-format.md §8, docs/security.md): with ``LEDGER_TILES_PUBLIC`` off (the default) the
checkpoint is for every signed-in person and every token with ``ledger:read`` (as the API's), hash tiles for
InfoSec, auditors and ``ledger:read`` tokens (as the proofs), each tile read recorded as the proofs are
(``ledger.accessed``, one per principal and window); on, both are public and not recorded (they reveal hashes
and the tree size only). Entry bundles always need ``ledger:read`` (InfoSec, auditors, tokens) and are
recorded (``ledger.accessed``, view ``tlog-entries``, one per principal and window, naming the first bundle).

Caching: a full tile or bundle never changes (``max-age`` a year, ``immutable``); a partial one is short-lived;
errors (a tile beyond the tree is a 404 now and a tile later) are ``no-store``. Whatever needs a credential is
``private``: a shared cache must not hand what one reader was allowed to see to the next, unrecorded.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404, HttpResponse
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import selectors
from audit.api.ledger import LEDGER_PERMISSIONS, PUBLISHED, CanReadLedger, FirstRenderer, PlainTextRenderer, SignedIn
from audit.api.reads import LedgerReadMixin
from audit.console.reads import LedgerRead
from audit.services.ledger_access import PRINCIPAL
from audit.services.witnessing import published_note
from audit.tiles import EntryTooLarge, Tile, entry_bundle, hash_tile, parse_tile_path
from web.api.auth import HasScope

IMMUTABLE = "max-age=31536000, immutable"
PARTIAL = "max-age=60"  # the bytes never change either, but clients are told to prefer the full tile once it exists
CHECKPOINT_PUBLIC = "public, max-age=5"
NO_STORE = "no-store"
OCTETS = "application/octet-stream"


def tiles_public() -> bool:
    """Read per request, so a test (or a settings reload) sees the setting as it is now."""
    return bool(settings.LEDGER_TILES_PUBLIC)


class _All(BasePermission):
    """Every one of ``checks``, the first refusal's message reported; nothing at all when the tiles are public."""

    checks: tuple[type[BasePermission], ...] = ()

    def has_permission(self, request: Request, view: Any) -> bool:
        if tiles_public():
            return True
        for check in self.checks:
            permission = check()
            if not permission.has_permission(request, view):
                self.message = getattr(permission, "message", "you may not read this")
                return False
        return True


class CheckpointReadable(_All):
    checks = (HasScope, SignedIn)


class HashTilesReadable(_All):
    checks = (HasScope, CanReadLedger)


class BundleUnavailable(exceptions.APIException):
    status_code = 409
    default_code = "entry_too_large"


class _TlogView(APIView):
    """Bytes on success (an ``HttpResponse``); a problem document (JSON) on error, never cached."""

    required_scope = "ledger:read"
    renderer_classes = [JSONRenderer]  # errors only: a success is the tile's own bytes
    content_negotiation_class = FirstRenderer  # whatever Accept says (tile clients send */* or nothing)
    schema = None  # C2SP resources, specified in docs/ledger-format.md §8 rather than in the OpenAPI document

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if not 200 <= response.status_code < 300:
            # A 404 for a tile beyond the tree must not outlive the tree's growth in any cache.
            response["Cache-Control"] = NO_STORE
        return response

    @staticmethod
    def _tile(raw: str) -> Tile:
        tile = parse_tile_path(raw)
        if tile is None:
            raise Http404("not a tile path (c2sp.org/tlog-tiles: tile/<L>/<N>[.p/<W>], N as x001/x234/067)")
        return tile

    @staticmethod
    def _bytes(data: bytes, tile: Tile, *, public: bool) -> HttpResponse:
        response = HttpResponse(data, content_type=OCTETS)
        response["Cache-Control"] = f"{'public' if public else 'private'}, {PARTIAL if tile.partial else IMMUTABLE}"
        return response


class CheckpointApi(_TlogView):
    """The latest signed checkpoint (signed note with its cosignature lines)."""

    ledger_read_exempt = PUBLISHED
    permission_classes = [CheckpointReadable]
    renderer_classes = [PlainTextRenderer]

    def get(self, request: Request) -> Response | HttpResponse:
        checkpoint = selectors.latest_checkpoint()
        if checkpoint is None:
            raise Http404("no checkpoint has been signed yet")
        response = HttpResponse(published_note(checkpoint), content_type="text/plain; charset=utf-8")
        response["Cache-Control"] = CHECKPOINT_PUBLIC if tiles_public() else NO_STORE
        return response


class HashTileApi(LedgerReadMixin, _TlogView):
    """A hash tile: 32-byte hashes of level ``8L`` of the tree, ``W`` of them (256 when full)."""

    # Tiles are proofs in another encoding: recorded as the proof endpoints are (one per principal and window).
    ledger_read = LedgerRead("tlog-tile", subject=("ledger", "proofs"), path_keys=("tile",), covers=PRINCIPAL)
    permission_classes = [HashTilesReadable]

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if tiles_public():  # published: nothing to record, whoever asks
            return _TlogView.finalize_response(self, request, response, *args, **kwargs)
        return super().finalize_response(request, response, *args, **kwargs)

    def get(self, request: Request, tile: str) -> HttpResponse:
        parsed = self._tile(tile)
        if parsed.level is None:  # (tile/entries/… is routed to EntryBundleApi)
            raise Http404("not a hash tile path")
        data = hash_tile(parsed)
        if data is None:
            raise Http404(f"tile {parsed.path} is beyond the tree")
        return self._bytes(data, parsed, public=tiles_public())


class EntryBundleApi(LedgerReadMixin, _TlogView):
    """An entry bundle: ``W`` entries (256 when full), each ``uint16 big-endian length || canonical body``."""

    ledger_read = LedgerRead("tlog-entries", path_keys=("tile",), covers=PRINCIPAL)
    permission_classes = LEDGER_PERMISSIONS

    def get(self, request: Request, tile: str) -> HttpResponse:
        parsed = self._tile(f"entries/{tile}")
        try:
            data = entry_bundle(parsed)
        except EntryTooLarge as exc:
            raise BundleUnavailable(str(exc)) from None
        if data is None:
            raise Http404(f"entry bundle {parsed.path} is beyond the ledger")
        return self._bytes(data, parsed, public=False)
