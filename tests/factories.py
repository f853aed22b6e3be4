"""factory-boy factories for test data.

Giving a factory-made user a role (``roles=[...]``) adds the group directly: that
is fixture setup, not a role change under test, so it writes no ledger entry.
Tests of role changes go through ``access.services``.
"""
from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth.models import Group, User


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
