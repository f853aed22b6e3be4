"""The policy floor: the weakest promotion policy the product accepts for an environment.

Configured by operators (``POLICY_FLOOR``, see docs/promotions.md), never through the product:
a policy below its environment's floor is refused however many people agree to it, so even
two colluding InfoSec members cannot set production to zero approvals. The floor counts the
approvals a policy requires (all groups together), the hours of its soak gate and which gate
types it must keep. It applies to an environment's default policy and to every model policy
there, since a model policy replaces the default.

This module reads no database and imports no Django model (only the lazy ``django.conf.settings``):
settings parse the floor with it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings

from governance.policy import GATE_TYPES, ApprovalRule, Gate, Policy


@dataclass(frozen=True)
class Floor:
    min_approvals: int = 0
    min_soak_hours: float = 0
    required_gates: tuple[str, ...] = ()


#: Matches the production policy the product is installed with (migration 0002): two approvals,
#: 24 hours' soak in staging, and the data-classification gate.
DEFAULT_FLOOR: dict[str, Any] = {
    "production": {"min_approvals": 2, "min_soak_hours": 24, "required_gates": ["data_classification"]},
}
_KEYS = {"min_approvals", "min_soak_hours", "required_gates"}


def parse_floor(doc: Any) -> dict[str, Floor]:
    """``{environment name: Floor}`` from the JSON setting; ValueError naming the problem otherwise."""
    if not isinstance(doc, Mapping):
        raise ValueError("the policy floor must be a JSON object of environment name → floor")
    floors: dict[str, Floor] = {}
    for name, spec in doc.items():
        where = f"floor of {name!r}: "
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where}must be an object")
        unknown = set(spec) - _KEYS
        if unknown:
            raise ValueError(f"{where}unknown key(s) {', '.join(sorted(unknown))}; keys are {', '.join(sorted(_KEYS))}")
        approvals = spec.get("min_approvals", 0)
        if isinstance(approvals, bool) or not isinstance(approvals, int) or not 0 <= approvals <= 1000:
            raise ValueError(f"{where}'min_approvals' must be an integer from 0 to 1000")
        soak = spec.get("min_soak_hours", 0)
        if isinstance(soak, bool) or not isinstance(soak, int | float) or not math.isfinite(soak) or soak < 0:
            raise ValueError(f"{where}'min_soak_hours' must be a non-negative number")
        gates = spec.get("required_gates", [])
        if not isinstance(gates, list) or any(g not in GATE_TYPES for g in gates):
            raise ValueError(f"{where}'required_gates' must be a list of gate types ({', '.join(GATE_TYPES)})")
        floors[str(name)] = Floor(min_approvals=approvals, min_soak_hours=soak, required_gates=tuple(gates))
    return floors


def floor_problems(floor: Floor | None, policy: Policy) -> list[str]:
    """What ``policy`` lacks to meet ``floor``, in words (empty: it meets it)."""
    if floor is None:
        return []
    problems = []
    approvals = sum(rule.count for rule in policy.approvals)
    if approvals < floor.min_approvals:
        problems.append(f"it requires {approvals} approval(s), the floor is {floor.min_approvals}")
    if floor.min_soak_hours > 0:
        soaks = [float(g.params["hours"]) for g in policy.gates if g.type == "soak"]
        longest = max(soaks, default=0.0)
        if longest < floor.min_soak_hours:
            problems.append(f"its soak gate is {longest:g}h, the floor is {floor.min_soak_hours:g}h")
    present = {g.type for g in policy.gates}
    missing = [g for g in floor.required_gates if g not in present]
    if missing:
        problems.append(f"it must keep the gate(s) {', '.join(missing)}")
    return problems


def floor_for(environment_name: str) -> Floor | None:
    """The configured floor of an environment (``settings.POLICY_FLOOR``), None when it has none."""
    floor = settings.POLICY_FLOOR.get(environment_name)
    if floor is None or isinstance(floor, Floor):
        return floor
    # A raw document (say, a test's override): parsed, so a malformed one still fails loudly.
    return parse_floor({environment_name: floor})[environment_name]


# --- the floor at decision time ---------------------------------------------------------------------------
# A stored policy can be below its floor: stored before the floor was set or raised, or written to
# the database behind the product's back. Every decision reads the *effective* policy instead: the
# stricter of the two (``raise_to_floor``); what cannot be raised mechanically is left for
# ``floor_problems`` to name, and a promotion is never approved while it names anything.

#: Who gives the approvals a floor adds to a policy that names no approval group: InfoSec, as
#: for break-glass reviews of such an environment.
FLOOR_APPROVAL_GROUP = "infosec"
#: Required gate types the floor can add by itself (they take no parameters); a required metric
#: gate needs a metric and a threshold only the policy's authors can give.
_ADDABLE_GATES = frozenset({"data_classification", "model_card", "artifact_digest", "trusted_creator"})


def raise_to_floor(floor: Floor | None, policy: Policy, rules: Mapping[str, Any] | None = None) -> Policy:
    """The stricter of ``policy`` and ``floor``: approvals raised to the floor's minimum (the shortfall
    shared round-robin among the policy's groups, or asked of ``FLOOR_APPROVAL_GROUP`` when it names
    none), a soak gate of the floor's hours instead of shorter ones, and the floor's required gates
    added. ``rules``: the stored document, so that a ``rollback_unjustified_break_glass`` left to its
    default follows the raised approvals as it would have in a policy written that way. Returns
    ``policy`` itself when it already meets the floor. Pure: no database, no settings."""
    if floor is None or not floor_problems(floor, policy):
        return policy
    approvals = list(policy.approvals)
    shortfall = floor.min_approvals - sum(rule.count for rule in approvals)
    if shortfall > 0:
        if not approvals:
            approvals = [ApprovalRule(group=FLOOR_APPROVAL_GROUP, count=shortfall)]
        else:
            for i in range(shortfall):
                rule = approvals[i % len(approvals)]
                approvals[i % len(approvals)] = ApprovalRule(group=rule.group, count=rule.count + 1)
    gates = list(policy.gates)
    soaks = [float(g.params["hours"]) for g in gates if g.type == "soak"]
    if floor.min_soak_hours > 0 and max(soaks, default=0.0) < floor.min_soak_hours:
        gates = [g for g in gates if g.type != "soak"]
        gates.append(Gate(type="soak", params={"hours": floor.min_soak_hours}))
    present = {g.type for g in gates}
    gates.extend(Gate(type=kind) for kind in floor.required_gates if kind not in present and kind in _ADDABLE_GATES)
    rollback = policy.rollback_unjustified_break_glass
    if rules is None or "rollback_unjustified_break_glass" not in rules:
        rollback = rollback or bool(approvals)
    return replace(policy, approvals=tuple(approvals), gates=tuple(gates), rollback_unjustified_break_glass=rollback)


def effective_policy(environment_name: str, policy: Policy, rules: Mapping[str, Any] | None = None) -> Policy:
    """``raise_to_floor`` with the environment's configured floor."""
    return raise_to_floor(floor_for(environment_name), policy, rules)


def below_floor(environment_name: str, stored: Policy) -> list[str]:
    """What the *stored* policy lacks to meet the floor (what the effective policy raised), in words."""
    return floor_problems(floor_for(environment_name), stored)
