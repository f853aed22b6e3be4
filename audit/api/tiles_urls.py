"""``/tlog/``: the tree as C2SP tlog-tiles (audit/api/tiles.py), included by ``config.urls``."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path

from audit.api.tiles import CheckpointApi, EntryBundleApi, HashTileApi
from web.api.problems import api_not_found

urlpatterns: list[URLPattern | URLResolver] = [
    path("checkpoint", CheckpointApi.as_view(), name="tlog-checkpoint"),
    # The tile path is parsed (strictly: one canonical path per tile) by audit.tiles.parse_tile_path.
    re_path(r"^tile/entries/(?P<tile>.+)$", EntryBundleApi.as_view(), name="tlog-entries"),
    re_path(r"^tile/(?P<tile>.+)$", HashTileApi.as_view(), name="tlog-tile"),
    # Anything else under /tlog/: a problem document, not the console's HTML 404 page.
    re_path(r"", api_not_found),
]
