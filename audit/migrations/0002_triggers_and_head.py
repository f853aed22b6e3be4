"""Append-only triggers on the ledger tables, and the sequencer's head row."""
from __future__ import annotations

from django.db import migrations


def forwards(apps, schema_editor):
    from audit import triggers

    triggers.install(schema_editor.connection)
    apps.get_model("audit", "LedgerHead").objects.create(id=1, tree_size=0, last_hash="0" * 64)


def backwards(apps, schema_editor):
    from audit import triggers

    triggers.uninstall(schema_editor.connection)
    apps.get_model("audit", "LedgerHead").objects.filter(id=1).delete()


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
