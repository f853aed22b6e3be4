"""factory-boy factories for test data: people, registered models and their versions.

Giving a factory-made user a role (``roles=[...]``) adds the group directly: that
is fixture setup, not a role change under test, so it writes no ledger entry.
Tests of role changes go through ``access.services``.
"""
from __future__ import annotations

import secrets
from typing import Any

import factory
from django.contrib.auth.models import Group, User

from governance.models import ModelVersion, RegisteredModel

MODEL_CARD = "Gradient-boosted fraud scorer for card-not-present payments; trained on 2025 transactions."


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.django.Password("correct horse battery staple")
    is_active = True

    @factory.post_generation
    def roles(self, create: bool, extracted: list[str] | None, **kwargs: Any) -> None:
        if create and extracted:
            self.groups.add(*Group.objects.filter(name__in=extracted))


class SuperuserFactory(UserFactory):
    is_superuser = True
    is_staff = True


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"model-{n}")
    description = "A registered model mirrored from MLflow."
    owner = None


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    model = factory.SubFactory(RegisteredModelFactory)
    version = factory.Sequence(lambda n: n + 1)
    run_id = factory.LazyFunction(lambda: secrets.token_hex(16))
    source = factory.LazyAttribute(lambda o: f"mlflow-artifacts:/1/{o.run_id}/artifacts/model")
    artifact_digest = factory.LazyFunction(lambda: "sha256:" + secrets.token_hex(32))
    creator = "ds-creator"
    description = MODEL_CARD
    metrics = factory.LazyFunction(lambda: {"auc": 0.93, "precision": 0.81})
    data_classification = "internal"
    mlflow_status = "READY"
