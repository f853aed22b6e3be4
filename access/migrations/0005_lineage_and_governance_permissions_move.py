"""Lineage and the guardian permission tables of registered models and environments move to governance.

State only: the tables keep their names (``access_lineage``, ``access_registeredmodeluserobjectpermission``...)
and their rows; governance/0014 takes them over in its state.
"""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('access', '0004_denial_window'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='Lineage'),
                migrations.DeleteModel(name='RegisteredModelUserObjectPermission'),
                migrations.DeleteModel(name='RegisteredModelGroupObjectPermission'),
                migrations.DeleteModel(name='EnvironmentUserObjectPermission'),
                migrations.DeleteModel(name='EnvironmentGroupObjectPermission'),
            ],
            database_operations=[],
        ),
    ]
