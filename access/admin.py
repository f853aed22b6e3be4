"""User admin where roles change only through the audited role services."""
from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from access.roles import ROLES
from access.services import user_role_add, user_role_remove
from audit.ledger import Actor


def _role_action(role: str, add: bool) -> Any:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[User]) -> None:  # type: ignore[type-arg]
        service = user_role_add if add else user_role_remove
        changed = sum(
            service(actor=Actor.user(request.user), user=user, role=role, reason="admin action")
            for user in queryset
        )
        verb = "Gave" if add else "Removed"
        modeladmin.message_user(request, f"{verb} role {role}: {changed} user(s)", messages.SUCCESS)

    action.__name__ = f"{'add' if add else 'remove'}_role_{role.replace('-', '_')}"
    return admin.action(description=f"{'Give' if add else 'Remove'} role: {role}")(action)


admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(UserAdmin):  # type: ignore[type-arg]
    """Groups are read-only here: a role change must leave a ledger entry."""

    readonly_fields = ("groups", "user_permissions", "is_superuser", "last_login", "date_joined")
    actions = [_role_action(role, add) for role in ROLES for add in (True, False)]
    list_display = ("username", "email", "is_active", "roles")

    @admin.display(description="roles")
    def roles(self, obj: User) -> str:
        return ", ".join(g.name for g in obj.groups.all())

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related("groups")
