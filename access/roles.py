"""Role names (Django groups). Created by migration access/0001_roles."""
from __future__ import annotations

INFOSEC = "infosec"
AUDITOR = "auditor"
MODEL_OWNER = "model-owner"
APPROVER = "approver"
DATA_STEWARD = "data-steward"
BREAK_GLASS = "break-glass"
# The approval group of the default production policy (model-risk validators).
MODEL_RISK = "model-risk"

ROLES = (INFOSEC, AUDITOR, MODEL_OWNER, APPROVER, DATA_STEWARD, BREAK_GLASS, MODEL_RISK)
