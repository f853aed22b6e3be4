"""The event catalogue (docs/event-types.md, event-types.json in bundles) is generated from the registry and
kept current."""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.event_catalogue import DOC_PATH, FORMAT, catalogue, catalogue_json, markdown
from audit.event_types import EventType, Field, Registry, registry


def test_the_generated_doc_is_current() -> None:
    """Regenerate docs/event-types.md and compare: fails when a type was added or changed without
    ``python manage.py event_catalogue``."""
    assert DOC_PATH.read_text(encoding="utf-8") == markdown(), "run: python manage.py event_catalogue"


def test_check_mode_refuses_a_stale_doc(tmp_path: Path) -> None:
    stale = tmp_path / "event-types.md"
    stale.write_text(markdown().replace("auth.role_added", "auth.role_addedX"), encoding="utf-8")
    with pytest.raises(CommandError, match="stale"):
        call_command("event_catalogue", "--check", "--out", str(stale), stdout=StringIO())
    call_command("event_catalogue", "--out", str(stale), stdout=StringIO())
    call_command("event_catalogue", "--check", "--out", str(stale), stdout=StringIO())
    assert stale.read_text(encoding="utf-8") == markdown()


def test_every_type_has_a_subject_a_meaning_and_its_personal_fields() -> None:
    cat = catalogue()
    assert cat["format"] == FORMAT
    names = [t["name"] for t in cat["event_types"]]
    assert names == registry.names()
    by_name = {t["name"]: t for t in cat["event_types"]}
    for t in cat["event_types"]:
        assert t["subject_types"] and t["description"], t["name"]
    personal = {f["name"] for f in by_name["auth.user_registered"]["fields"] if f["personal"]}
    assert personal == {"username", "email", "full_name"}
    assert [f["name"] for f in by_name["model.version_registered"]["fields"] if f["personal"]] == ["creator"]
    assert by_name["ledger.exported"]["subject_types"] == ["export"]
    assert by_name["incident.opened"]["subject_types"] == ["model_version", "environment", "runtime_source"]
    assert json.loads(catalogue_json()) == cat
    assert "| `auth.user_registered` | `user` |" in markdown()
    assert "**`username` (string) personal**" in markdown()


def test_a_registry_type_without_a_subject_is_refused() -> None:
    reg = Registry()
    with pytest.raises(ValueError, match="no subject type"):
        reg.register(EventType("demo.done", "Something was done.", {"x": Field()}))
    with pytest.raises(ValueError, match="no subject type"):
        reg.register(EventType("demo.undone", "Something was undone.", subject=" | "))
    assert "demo.done" not in reg
    reg.register(EventType("demo.done", "Something was done.", {"x": Field()}, subject="thing"))
    reg.register(EventType("demo.undone", "Something was undone.", subject="a | b"))
    assert reg.get("demo.undone").subject_types == ("a", "b")
