"""The request id of the HTTP request (or task) that wrote an entry.

Nullable, and a member of the hashed body only when set: existing entries keep
their bytes and hashes. On SQLite an ALTER of an ``audit_*`` table may rebuild
it, which drops the append-only triggers, hence the uninstall/install around it
(see docs/ledger.md, "Changing the ledger tables").
"""
from __future__ import annotations

from django.db import migrations, models


def _uninstall(apps, schema_editor):
    from audit import triggers

    triggers.uninstall(schema_editor.connection)


def _install(apps, schema_editor):
    from audit import triggers

    triggers.install(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0004_exportjob"),
    ]

    operations = [
        migrations.RunPython(_uninstall, _install),
        migrations.AddField(
            model_name="entry",
            name="request_id",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="pendingentry",
            name="request_id",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.RunPython(_install, _uninstall),
    ]
