"""Witness cosignatures (append-only evidence), per-witness submission state and quorum stalls."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0006_ops_models'),
    ]

    operations = [
        migrations.CreateModel(
            name='WitnessQuorumStall',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('tree_size', models.BigIntegerField()),
                ('started_at', models.DateTimeField()),
                ('resolved_at', models.DateTimeField(blank=True, null=True)),
                ('is_open', models.BooleanField(default=True, null=True, unique=True)),
            ],
        ),
        migrations.CreateModel(
            name='WitnessState',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=200)),
                ('verifier_key', models.CharField(max_length=400, unique=True)),
                ('size', models.BigIntegerField(default=0)),
                ('cosigned_size', models.BigIntegerField(default=0)),
                ('cosigned_at', models.DateTimeField(blank=True, null=True)),
                ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True, default='')),
                ('last_error_at', models.DateTimeField(blank=True, null=True)),
                ('failures', models.IntegerField(default=0)),
                ('refusals', models.BigIntegerField(default=0)),
                ('refused_size', models.BigIntegerField(blank=True, null=True)),
            ],
        ),
        migrations.CreateModel(
            name='WitnessCosignature',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('witness', models.CharField(max_length=200)),
                ('key_id', models.CharField(max_length=8)),
                ('timestamp', models.BigIntegerField()),
                ('line', models.TextField()),
                ('received_at', models.DateTimeField()),
                ('checkpoint', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='cosignatures', to='audit.checkpoint')),
            ],
            options={
                'ordering': ['id'],
                'constraints': [models.UniqueConstraint(fields=('checkpoint', 'witness', 'key_id'), name='audit_cosignature_once')],
            },
        ),
    ]


def _append_only(apps, schema_editor):
    from audit import triggers

    triggers.install_tables(schema_editor.connection, triggers.LATER_APPEND_ONLY_TABLES)


def _not_append_only(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        for table in ("audit_witnesscosignature",):
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


Migration.operations.append(migrations.RunPython(_append_only, _not_append_only))
