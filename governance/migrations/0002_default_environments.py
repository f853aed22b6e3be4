"""Default environments (dev → staging → production) and their default policies.

Production does not accept models trained on restricted data and needs one
approval from model-risk and one from InfoSec after 24 hours in staging.
"""
from __future__ import annotations

from django.db import migrations

ENVIRONMENTS = [
    ("dev", 0, "dev", "restricted", "Development: experiments and integration"),
    ("staging", 1, "staging", "restricted", "Pre-production: shadow traffic and validation"),
    ("production", 2, "production", "confidential", "Live payment traffic"),
]
POLICIES = {
    "dev": {"approvals": [], "gates": []},
    "staging": {
        "approvals": [{"group": "approver", "count": 1}],
        "gates": [{"type": "model_card"}, {"type": "data_classification"}],
        "approval_expiry_days": 14,
    },
    "production": {
        "approvals": [{"group": "model-risk", "count": 1}, {"group": "infosec", "count": 1}],
        "gates": [{"type": "soak", "hours": 24}, {"type": "data_classification"}, {"type": "model_card"}],
        "approval_expiry_days": 7,
        "revert_out_of_band": True,
        "break_glass_review_hours": 24,
    },
}


def forwards(apps, schema_editor):
    Environment = apps.get_model("governance", "Environment")
    Policy = apps.get_model("governance", "PromotionPolicy")
    Group = apps.get_model("auth", "Group")
    Group.objects.get_or_create(name="model-risk")
    for name, order, alias, ceiling, description in ENVIRONMENTS:
        env, _ = Environment.objects.get_or_create(
            name=name,
            defaults={"order": order, "mlflow_alias": alias, "max_data_classification": ceiling,
                      "description": description},
        )
        Policy.objects.get_or_create(environment=env, model=None, defaults={"rules": POLICIES[name]})


def backwards(apps, schema_editor):
    apps.get_model("governance", "PromotionPolicy").objects.filter(model=None).delete()
    apps.get_model("governance", "Environment").objects.filter(name__in=[e[0] for e in ENVIRONMENTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial"), ("access", "0001_roles")]
    operations = [migrations.RunPython(forwards, backwards)]
