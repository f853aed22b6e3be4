from __future__ import annotations

from django.apps import AppConfig


class AuthCommandsConfig(AppConfig):
    name = "access.auth_commands"
    label = "access_auth_commands"
    verbose_name = "Recorded account commands"
