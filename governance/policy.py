"""The promotion policy language: parsing, and evaluation of automated gates.

A policy is a JSON document, stored per environment (and optionally per model)::

    {
      "approvals": [{"group": "model-risk", "count": 1}, {"group": "infosec", "count": 1}],
      "gates": [
        {"type": "metric", "metric": "auc", "op": ">=", "value": 0.90},
        {"type": "soak", "hours": 24},
        {"type": "data_classification"},
        {"type": "model_card", "min_length": 20},
        {"type": "artifact_digest"},
        {"type": "trusted_creator"},
        {"type": "attestation", "predicate_type": "https://slsa.dev/provenance/v1", "signers": ["ci-release"],
         "builder_ids": ["https://github.com/actions/runner/github-hosted"]}
      ],
      "trusted_signers": {"ci-release": {"public_key": "-----BEGIN PUBLIC KEY-----\n…"}},
      "approval_expiry_days": 7,
      "request_expiry_days": 14,
      "revert_out_of_band": true,
      "break_glass_review_hours": 24,
      "rollback_unjustified_break_glass": true,
      "require_trusted_creator": true
    }

``require_trusted_creator: true`` is shorthand for a ``trusted_creator`` gate: the version
must have a registrant this product knows (an identity link or the API token that
reported it), not just MLflow's client-set creator name.

``trusted_signers`` names the keys and Sigstore identities this environment's attestation gates may
accept (docs/attestations.md); an ``attestation`` gate names which of them it accepts.

Unknown keys, unknown gate types and malformed values are refused with a
message naming the problem, so a policy never silently means less than it says.
"""
from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from access.classification import LEVELS, allows
from audit.canonical import canonical_json
from governance.attestations import (
    SLSA_PROVENANCE_V1,
    TEST_RESULT_V01,
    AttestationError,
    Document,
    GateSpec,
    Signer,
    check_gate,
    parse_trusted_signers,
)


class PolicyError(ValueError):
    pass


OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
GATE_TYPES = ("metric", "soak", "data_classification", "model_card", "artifact_digest", "trusted_creator",
              "attestation")
#: What the evidence says when a version has no trusted registrant (MLflow's creator name is not one).
NO_TRUSTED_CREATOR = "no trusted identity for the creator"


@dataclass(frozen=True)
class ApprovalRule:
    group: str
    count: int


@dataclass(frozen=True)
class Gate:
    type: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        if self.type == "metric":
            return f"metric {self.params['metric']} {self.params['op']} {self.params['value']}"
        if self.type == "soak":
            return f"soak {self.params['hours']}h in previous environment"
        if self.type == "model_card":
            return "model card present"
        if self.type == "artifact_digest":
            return "artifact digest computed from the artifacts"
        if self.type == "trusted_creator":
            return "creator is a known account"
        if self.type == "attestation":
            return f"attestation {self.params['predicate_type']} signed by {' or '.join(self.params['signers'])}"
        return "training data classification allowed"


@dataclass(frozen=True)
class Policy:
    approvals: tuple[ApprovalRule, ...]
    gates: tuple[Gate, ...]
    approval_expiry_days: int = 7
    request_expiry_days: int = 14
    revert_out_of_band: bool = False
    break_glass_review_hours: int = 24
    # A break-glass review concluding "unjustified" rolls the release back (default: on when the
    # policy requires approvals, i.e. the environment is guarded at all).
    rollback_unjustified_break_glass: bool = False
    #: Signer name → public key or Sigstore identity the attestation gates may accept.
    trusted_signers: Mapping[str, Signer] = field(default_factory=dict)

    @property
    def approval_groups(self) -> tuple[str, ...]:
        return tuple(rule.group for rule in self.approvals)


DEFAULT_RULES: dict[str, Any] = {"approvals": [{"group": "approver", "count": 1}], "gates": []}
_TOP_KEYS = {
    "approvals", "gates", "approval_expiry_days", "request_expiry_days", "revert_out_of_band",
    "break_glass_review_hours", "rollback_unjustified_break_glass", "require_trusted_creator", "trusted_signers",
}


# Upper bounds keep date arithmetic in range (and catch a misplaced digit).
_MAXIMUM = {"approval_expiry_days": 3650, "request_expiry_days": 3650, "break_glass_review_hours": 87600}


def _positive_int(doc: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"{where}'{key}' must be a positive integer")
    maximum = _MAXIMUM.get(key, 1_000_000)
    if value > maximum:
        raise PolicyError(f"{where}'{key}' must be at most {maximum}")
    return value


def parse_policy(doc: Any) -> Policy:
    if not isinstance(doc, Mapping):
        raise PolicyError("a policy must be a JSON object")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise PolicyError(f"unknown policy key(s): {', '.join(sorted(unknown))}")
    approvals_doc = doc.get("approvals", [])
    if not isinstance(approvals_doc, list):
        raise PolicyError("'approvals' must be a list of {group, count}")
    approvals = []
    seen_groups: set[str] = set()
    for i, rule in enumerate(approvals_doc):
        where = f"approvals[{i}]: "
        if not isinstance(rule, Mapping) or set(rule) - {"group", "count"}:
            raise PolicyError(f"{where}must be an object with 'group' and 'count'")
        group = rule.get("group")
        if not isinstance(group, str) or not group:
            raise PolicyError(f"{where}'group' must be a group name")
        if group in seen_groups:
            raise PolicyError(f"{where}group {group!r} appears twice; give one rule a higher count")
        seen_groups.add(group)
        approvals.append(ApprovalRule(group=group, count=_positive_int(rule, "count", 1, where)))
    gates_doc = doc.get("gates", [])
    if not isinstance(gates_doc, list):
        raise PolicyError("'gates' must be a list")
    try:
        trusted_signers = parse_trusted_signers(doc.get("trusted_signers", {}))
    except AttestationError as exc:
        raise PolicyError(str(exc)) from None
    gates = [_parse_gate(g, i, trusted_signers) for i, g in enumerate(gates_doc)]
    revert = doc.get("revert_out_of_band", False)
    if not isinstance(revert, bool):
        raise PolicyError("'revert_out_of_band' must be true or false")
    rollback_unjustified = doc.get("rollback_unjustified_break_glass", bool(approvals))
    if not isinstance(rollback_unjustified, bool):
        raise PolicyError("'rollback_unjustified_break_glass' must be true or false")
    trusted = doc.get("require_trusted_creator", False)
    if not isinstance(trusted, bool):
        raise PolicyError("'require_trusted_creator' must be true or false")
    if trusted and not any(g.type == "trusted_creator" for g in gates):
        gates.append(Gate(type="trusted_creator"))
    return Policy(
        approvals=tuple(approvals),
        gates=tuple(gates),
        approval_expiry_days=_positive_int(doc, "approval_expiry_days", 7, ""),
        request_expiry_days=_positive_int(doc, "request_expiry_days", 14, ""),
        revert_out_of_band=revert,
        break_glass_review_hours=_positive_int(doc, "break_glass_review_hours", 24, ""),
        rollback_unjustified_break_glass=rollback_unjustified,
        trusted_signers=trusted_signers,
    )


def _parse_gate(doc: Any, i: int, trusted_signers: Mapping[str, Signer] | None = None) -> Gate:
    where = f"gates[{i}]: "
    if not isinstance(doc, Mapping) or "type" not in doc:
        raise PolicyError(f"{where}must be an object with a 'type'")
    kind = doc["type"]
    params = {k: v for k, v in doc.items() if k != "type"}
    allowed: set[str]
    if kind == "metric":
        allowed = {"metric", "op", "value"}
        if not isinstance(params.get("metric"), str) or not params["metric"]:
            raise PolicyError(f"{where}'metric' must name an MLflow metric")
        if params.get("op") not in OPERATORS:
            raise PolicyError(f"{where}'op' must be one of {', '.join(OPERATORS)}")
        value = params.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise PolicyError(f"{where}'value' must be a finite number")
    elif kind == "soak":
        allowed = {"hours"}
        hours = params.get("hours")
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours) or hours <= 0:
            raise PolicyError(f"{where}'hours' must be a positive number")
    elif kind == "model_card":
        allowed = {"min_length"}
        if "min_length" in params:
            _positive_int(params, "min_length", 1, where)
    elif kind == "attestation":
        allowed = {"predicate_type", "signers", "builder_ids", "allow_warned"}
        _check_attestation_gate(params, where, trusted_signers or {})
    elif kind in ("data_classification", "artifact_digest", "trusted_creator"):
        allowed = set()
    else:
        raise PolicyError(f"{where}unknown gate type {kind!r}; types are {', '.join(GATE_TYPES)}")
    extra = set(params) - allowed
    if extra:
        raise PolicyError(f"{where}unknown key(s) for a {kind} gate: {', '.join(sorted(extra))}")
    return Gate(type=kind, params=params)


def _check_attestation_gate(params: Mapping[str, Any], where: str, trusted: Mapping[str, Signer]) -> None:
    predicate_type = params.get("predicate_type")
    if not isinstance(predicate_type, str) or "://" not in predicate_type:
        raise PolicyError(f"{where}'predicate_type' must be the predicate's URI (e.g. {SLSA_PROVENANCE_V1})")
    signers = params.get("signers")
    if not isinstance(signers, list) or not signers or not all(isinstance(s, str) for s in signers):
        raise PolicyError(f"{where}'signers' must list the names of trusted signers the gate accepts")
    unknown = [s for s in signers if s not in trusted]
    if unknown:
        raise PolicyError(f"{where}signer(s) {', '.join(unknown)} not in 'trusted_signers'")
    builders = params.get("builder_ids")
    if builders is not None:
        if predicate_type != SLSA_PROVENANCE_V1:
            raise PolicyError(f"{where}'builder_ids' applies to {SLSA_PROVENANCE_V1} only")
        if not isinstance(builders, list) or not builders or not all(isinstance(b, str) and b for b in builders):
            raise PolicyError(f"{where}'builder_ids' must list the allowed SLSA builder ids")
    if "allow_warned" in params:
        if predicate_type != TEST_RESULT_V01:
            raise PolicyError(f"{where}'allow_warned' applies to {TEST_RESULT_V01} only")
        if not isinstance(params["allow_warned"], bool):
            raise PolicyError(f"{where}'allow_warned' must be true or false")


@dataclass(frozen=True)
class GateInput:
    """What gates look at, gathered by the caller (keeps this module free of queries)."""

    metrics: Mapping[str, float]
    description: str
    data_classification: str
    environment_max_classification: str
    previous_environment: str | None
    in_previous_environment_since: datetime | None
    now: datetime
    #: MLflow dataset inputs of the version's run that the catalog does not know (classification unknown).
    uncatalogued: tuple[str, ...] = ()
    #: The digest computed here from the artifact bytes ("" when they could not be read).
    artifact_digest: str = ""
    #: Why no digest could be computed (shown by the artifact_digest gate); "" when unknown or computed.
    artifact_digest_error: str = ""
    #: ``user:<id>`` of the account the product knows registered the version, and how; None: nobody known.
    registered_by: str | None = None
    registered_via: str = ""
    #: The version's uploaded attestations (parsed, unverified) and what verifies them.
    attestations: tuple[Document, ...] = ()
    trusted_signers: Mapping[str, Signer] = field(default_factory=dict)
    #: sigstore's ``TrustedRoot`` from ``SIGSTORE_TRUSTED_ROOT`` (None: bundles cannot be verified).
    sigstore_trusted_root: Any = None


@dataclass(frozen=True)
class GateResult:
    gate: str
    type: str
    passed: bool
    observed: Any
    detail: str
    #: Attestation gates: every uploaded document's outcome (shown as evidence; not in the evidence digest,
    #: so an unrelated upload does not make approvals stale; the passing envelope is ``observed``).
    attestations: tuple[Mapping[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        doc = {"gate": self.gate, "type": self.type, "passed": self.passed, "observed": self.observed,
               "detail": self.detail}
        if self.type == "attestation":
            doc["attestations"] = [dict(a) for a in self.attestations]
        return doc


def evaluate_gate(gate: Gate, data: GateInput) -> GateResult:
    p = gate.params
    if gate.type == "metric":
        value = data.metrics.get(p["metric"])
        if value is None:
            return GateResult(gate.name, gate.type, False, None, f"the run has no metric {p['metric']!r}")
        if not math.isfinite(value):
            return GateResult(gate.name, gate.type, False, None, f"{p['metric']} is not a finite number")
        passed = OPERATORS[p["op"]](float(value), float(p["value"]))
        detail = f"{p['metric']} = {value} (needs {p['op']} {p['value']})"
        return GateResult(gate.name, gate.type, passed, value, detail)
    if gate.type == "soak":
        if data.previous_environment is None:
            return GateResult(gate.name, gate.type, True, None, "first environment: nothing to soak in")
        since = data.in_previous_environment_since
        if since is None:
            return GateResult(gate.name, gate.type, False, None, f"not deployed in {data.previous_environment}")
        hours = (data.now - since) / timedelta(hours=1)
        passed = hours >= float(p["hours"])
        return GateResult(
            gate.name, gate.type, passed, round(hours, 2),
            f"{hours:.1f}h in {data.previous_environment} (needs {p['hours']}h)",
        )
    if gate.type == "model_card":
        length = len(data.description.strip())
        needed = int(p.get("min_length", 1))
        return GateResult(gate.name, gate.type, length >= needed, length, f"description has {length} characters")
    if gate.type == "artifact_digest":
        if data.artifact_digest:
            return GateResult(gate.name, gate.type, True, data.artifact_digest, "computed from the artifact bytes")
        why = data.artifact_digest_error or "remote store, missing, or over the size limit"
        return GateResult(gate.name, gate.type, False, None,
                          f"the version's artifacts could not be read from the MLflow artifact store ({why}), "
                          "so no digest was computed; MLflow's 'artifact_digest' tag is never used instead")
    if gate.type == "attestation":
        spec = GateSpec(predicate_type=p["predicate_type"], signers=tuple(p["signers"]),
                        builder_ids=tuple(p.get("builder_ids", ())), allow_warned=bool(p.get("allow_warned", False)))
        outcome = check_gate(spec, data.attestations, data.artifact_digest, data.trusted_signers,
                             data.sigstore_trusted_root)
        return GateResult(gate.name, gate.type, outcome.passed, outcome.observed, outcome.detail,
                          tuple(c.as_dict() for c in outcome.checks))
    if gate.type == "trusted_creator":
        if data.registered_by:
            return GateResult(gate.name, gate.type, True, data.registered_by,
                              f"registered by {data.registered_by} ({data.registered_via.replace('_', ' ')})")
        return GateResult(gate.name, gate.type, False, None,
                          f"{NO_TRUSTED_CREATOR}: MLflow's creator name is set by the client; link the MLflow "
                          "identity to an account (InfoSec) or have the pipeline's API token report the version")
    level = data.data_classification
    if data.uncatalogued:
        names = ", ".join(data.uncatalogued)
        return GateResult(gate.name, gate.type, False, "unknown",
                          f"trained on datasets the catalog does not know ({names}): the classification is unknown "
                          "until a data steward registers and classifies them")
    if level not in LEVELS:
        return GateResult(gate.name, gate.type, False, None, "the training data's classification is unknown")
    passed = allows(data.environment_max_classification, level)
    return GateResult(
        gate.name, gate.type, passed, level,
        f"trained on {level} data; the environment allows up to {data.environment_max_classification}",
    )


def evidence_digest(artifact_digest: str, results: list[GateResult]) -> str:
    """What approvals are bound to: the artifact and every gate's outcome and observation."""
    # A soak gate's observation grows by the minute; only its outcome counts.
    doc = {
        "artifact_digest": artifact_digest,
        "gates": [[r.gate, r.passed, None if r.type == "soak" else r.observed] for r in results],
    }
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()
