"""What the domains above the ledger add to an export, registered at start-up (the ledger imports none of them).

A scope may name a registered model or a dataset: which ledger subjects that means is the
owning domain's knowledge, so each registers a *scope resolver* for its kind of name
(``governance/ledger_exports.py`` for ``model``: the model, its versions, their promotions and
the incidents naming it; ``access/ledger_hooks.py`` for ``dataset``). The audit report of a
model is governance's too: it registers the *model report* (versions, promotions, violations,
grants) that ``audit.export.report`` puts beside the ledger's own entries and proofs.

Without a registration the kind of export is refused as unknown (``unknown_model`` /
``unknown_dataset``), exactly as a name that does not exist.

The console's export form offers pickers rather than free text: each domain also registers the
*scope choices* of its kind, the names a viewer may export under its own visibility rule.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from audit.export.errors import ExportError

# (name, size) -> the sorted (subject_type, subject_id) pairs; raises ExportError for an unknown name.
ScopeResolver = Callable[[str, "int | None"], list[tuple[str, str]]]
# (model name, scope, entries by subject) -> the report's model sections (model, versions, promotions, ...).
ModelReport = Callable[[str, dict[str, Any], dict[tuple[str, str], list[dict[str, Any]]]], dict[str, Any]]

# (viewer) -> the names of that kind the viewer may pick in the console's export form, sorted.
ScopeChoices = Callable[[Any], list[str]]

_resolvers: dict[str, ScopeResolver] = {}
_choices: dict[str, ScopeChoices] = {}
_model_report: list[ModelReport] = []


def scope_resolver_register(kind: str, resolver: ScopeResolver) -> None:
    """``kind`` is the scope's key (``model``, ``dataset``)."""
    _resolvers[kind] = resolver


def subjects_of(kind: str, name: str, *, size: int | None = None) -> list[tuple[str, str]]:
    resolver = _resolvers.get(kind)
    if resolver is None:
        raise ExportError(f"no {kind} named {name!r}", code=f"unknown_{kind}")
    return resolver(name, size)


def scope_choices_register(kind: str, lister: ScopeChoices) -> None:
    """``kind`` as for ``scope_resolver_register``; ``lister`` answers with the owning domain's visibility rule."""
    _choices[kind] = lister


def scope_choices(kind: str, viewer: object) -> list[str]:
    """The names of ``kind`` that ``viewer`` may export by name (none without a registration)."""
    lister = _choices.get(kind)
    return lister(viewer) if lister is not None else []


def model_report_register(builder: ModelReport) -> None:
    _model_report[:] = [builder]


def model_report(name: str, scope: dict[str, Any],
                 by_subject: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    if not _model_report:
        raise ExportError(f"no registered model named {name!r}", code="unknown_model")
    return _model_report[0](name, scope, by_subject)
