"""What every console page shares: the viewer's roles for the navigation, and page helpers."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from access import roles
from access.roles import role_names


def viewer_roles(user: Any) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    return role_names(user)


def console(request: HttpRequest) -> dict[str, Any]:
    """Context processor: ``viewer`` flags for templates (one query per request, cached on the user)."""
    user = getattr(request, "user", None)
    names = viewer_roles(user)
    return {
        "viewer": {
            "roles": sorted(names),
            "is_infosec": roles.INFOSEC in names,
            "is_auditor": roles.AUDITOR in names,
            "is_approver": bool({roles.APPROVER, roles.MODEL_RISK} & names),
            "is_owner": roles.MODEL_OWNER in names,
            "is_steward": roles.DATA_STEWARD in names,
            "is_break_glass": roles.BREAK_GLASS in names,
        }
    }
