"""Every view of the ledger's apps says whether its reads are recorded (``ledger.accessed``), so a new view
cannot be forgotten: the URL conf is walked and a view of ``audit.*`` with neither marker fails the suite
(audit/console/reads.py explains the markers)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver

from audit.console.reads import LedgerRead
from audit.services.ledger_access import COVERS


def _patterns(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            yield from _patterns(p, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern), p


def _owner(callback: Any) -> Any:
    """What carries a URL's marker: an APIView's class, a model admin (the admin's views are its bound methods,
    wrapped by the admin site), else the view function itself."""
    bound = getattr(getattr(callback, "__wrapped__", None), "__self__", None)
    if isinstance(bound, admin.ModelAdmin):
        return type(bound)
    return getattr(callback, "view_class", None) or getattr(callback, "cls", None) or callback


def _marks(callback: Any) -> tuple[Any, Any, str]:
    """(ledger_read, ledger_read_exempt, module) of a URL's view."""
    owner = _owner(callback)
    return getattr(owner, "ledger_read", None), getattr(owner, "ledger_read_exempt", None), owner.__module__


def _audit_views() -> list[tuple[str, str | None, Any, Any]]:
    found = []
    for route, pattern in _patterns(get_resolver()):
        read, exempt, module = _marks(pattern.callback)
        if module.startswith("audit."):
            found.append((route, pattern.name, read, exempt))
    return found


def test_every_view_of_the_ledger_apps_is_marked() -> None:
    views = _audit_views()
    # the walk really reaches the console's, the API's and the admin's audit views
    assert len(views) >= 19 + 7 * 4, views
    unmarked = [route for route, _name, read, exempt in views if read is None and not exempt]
    assert not unmarked, f"views of audit.* without @ledger_read or @not_a_ledger_read: {unmarked}"
    both = [route for route, _name, read, exempt in views if read is not None and exempt]
    assert not both, f"views marked both recorded and exempt: {both}"


def test_a_recorded_view_names_itself_by_its_url_name() -> None:
    recorded = {name: read for route, name, read, _exempt in _audit_views()
                if read is not None and not route.startswith("admin/")}  # the admin's: the next test
    assert set(recorded) == {
        "console-ledger", "console-entry", "export-download", "api-ledger-entries", "api-ledger-entry",
        "api-ledger-inclusion-proof", "api-ledger-consistency-proof", "api-export-download",
        "tlog-tile", "tlog-entries",
    }
    for name, read in recorded.items():
        assert isinstance(read, LedgerRead) and read.view == name and read.covers in COVERS


def test_the_walk_would_catch_an_unmarked_view() -> None:
    # the check above cannot pass vacuously: a bare view of audit.* shows up unmarked
    def bare(request: Any) -> None:
        return None

    bare.__module__ = "audit.console.ledger"
    read, exempt, module = _marks(bare)
    assert read is None and exempt is None and module.startswith("audit.")


def test_every_admin_of_the_ledger_app_is_marked() -> None:
    admins = {model._meta.model_name: model_admin for model, model_admin in admin.site._registry.items()
              if model._meta.app_label == "audit"}
    assert {"entry", "pendingentry", "checkpoint"} <= set(admins)
    unmarked = [name for name, a in admins.items()
                if getattr(a, "ledger_read", None) is None and not getattr(a, "ledger_read_exempt", None)]
    assert not unmarked, f"audit model admins without ledger_read or ledger_read_exempt: {unmarked}"
    for name in ("entry", "pendingentry"):  # their pages show the ledger's content
        assert isinstance(admins[name].ledger_read, LedgerRead)
        assert isinstance(admins[name].ledger_read_detail, LedgerRead)
