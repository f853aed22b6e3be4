"""The policy language: parse_policy, evaluate_gate and evidence_digest (pure functions, no database)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from governance.policy import (
    DEFAULT_RULES,
    ApprovalRule,
    Gate,
    GateInput,
    GateResult,
    Policy,
    PolicyError,
    evaluate_gate,
    evidence_digest,
    parse_policy,
)
from tests.governance.helpers import DEFAULT_POLICIES

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

FULL = {
    "approvals": [{"group": "model-risk", "count": 1}, {"group": "infosec", "count": 2}],
    "gates": [
        {"type": "metric", "metric": "auc", "op": ">=", "value": 0.90},
        {"type": "metric", "metric": "latency_ms", "op": "<", "value": 50},
        {"type": "soak", "hours": 24},
        {"type": "data_classification"},
        {"type": "model_card", "min_length": 20},
        {"type": "model_card"},
    ],
    "approval_expiry_days": 3,
    "request_expiry_days": 30,
    "revert_out_of_band": True,
    "break_glass_review_hours": 8,
}


def data(**overrides: Any) -> GateInput:
    values: dict[str, Any] = {
        "metrics": {"auc": 0.93},
        "description": "A model card long enough to read.",
        "data_classification": "internal",
        "environment_max_classification": "confidential",
        "previous_environment": "staging",
        "in_previous_environment_since": NOW - timedelta(hours=30),
        "now": NOW,
    }
    values.update(overrides)
    return GateInput(**values)


def gate(doc: dict[str, Any]) -> Gate:
    return parse_policy({"gates": [doc]}).gates[0]


# --- parsing ------------------------------------------------------------------------------------


def test_full_document_parses_to_what_it_says() -> None:
    policy = parse_policy(FULL)

    assert policy.approvals == (ApprovalRule("model-risk", 1), ApprovalRule("infosec", 2))
    assert policy.approval_groups == ("model-risk", "infosec")
    assert [g.type for g in policy.gates] == ["metric", "metric", "soak", "data_classification", "model_card",
                                              "model_card"]
    assert policy.gates[0].params == {"metric": "auc", "op": ">=", "value": 0.90}
    assert policy.gates[0].name == "metric auc >= 0.9"
    assert policy.gates[2].name == "soak 24h in previous environment"
    assert policy.gates[3].name == "training data classification allowed"
    assert policy.gates[4].name == "model card present"
    assert (policy.approval_expiry_days, policy.request_expiry_days) == (3, 30)
    assert policy.revert_out_of_band is True
    assert policy.break_glass_review_hours == 8


def test_empty_document_means_no_approvals_no_gates_and_the_defaults() -> None:
    assert parse_policy({}) == Policy(
        approvals=(), gates=(), approval_expiry_days=7, request_expiry_days=14, revert_out_of_band=False,
        break_glass_review_hours=24,
    )


def test_built_in_and_migration_defaults_parse() -> None:
    assert parse_policy(DEFAULT_RULES).approvals == (ApprovalRule("approver", 1),)
    assert parse_policy(DEFAULT_POLICIES["dev"]).approvals == ()
    staging = parse_policy(DEFAULT_POLICIES["staging"])
    assert staging.approvals == (ApprovalRule("approver", 1),)
    assert [g.type for g in staging.gates] == ["model_card", "data_classification"]
    assert staging.approval_expiry_days == 14
    production = parse_policy(DEFAULT_POLICIES["production"])
    assert production.approval_groups == ("model-risk", "infosec")
    assert [g.type for g in production.gates] == ["soak", "data_classification", "model_card"]
    assert production.revert_out_of_band is True


def test_soak_hours_and_metric_values_may_be_fractional_or_negative_thresholds() -> None:
    assert gate({"type": "soak", "hours": 0.5}).params["hours"] == 0.5
    assert gate({"type": "metric", "metric": "log_loss_delta", "op": "<=", "value": -0.01}).params["value"] == -0.01
    for op in (">=", ">", "<=", "<", "=="):
        assert gate({"type": "metric", "metric": "auc", "op": op, "value": 1}).params["op"] == op


MALFORMED = [
    # (document, a fragment of the message)
    pytest.param([], "a policy must be a JSON object", id="not-an-object"),
    pytest.param(None, "a policy must be a JSON object", id="null"),
    pytest.param({"approvals": [], "gate": []}, "unknown policy key(s): gate", id="unknown-key"),
    pytest.param({"aprovals": [], "expiry": 1}, "unknown policy key(s): aprovals, expiry", id="unknown-keys-listed"),
    pytest.param({"approvals": {"group": "infosec", "count": 1}}, "'approvals' must be a list", id="approvals-object"),
    pytest.param({"approvals": "infosec"}, "'approvals' must be a list", id="approvals-string"),
    pytest.param({"approvals": ["infosec"]}, "approvals[0]: must be an object with 'group' and 'count'",
                 id="approval-not-object"),
    pytest.param({"approvals": [{"group": "infosec", "count": 1, "role": "x"}]},
                 "approvals[0]: must be an object with 'group' and 'count'", id="approval-extra-key"),
    pytest.param({"approvals": [{"count": 1}]}, "approvals[0]: 'group' must be a group name", id="approval-no-group"),
    pytest.param({"approvals": [{"group": "", "count": 1}]}, "'group' must be a group name", id="approval-empty-group"),
    pytest.param({"approvals": [{"group": "infosec", "count": 1}, {"group": "infosec", "count": 1}]},
                 "approvals[1]: group 'infosec' appears twice", id="duplicate-group"),
    pytest.param({"approvals": [{"group": "infosec", "count": 0}]}, "approvals[0]: 'count' must be a positive integer",
                 id="count-zero"),
    pytest.param({"approvals": [{"group": "infosec", "count": -1}]}, "'count' must be a positive integer",
                 id="count-negative"),
    pytest.param({"approvals": [{"group": "infosec", "count": True}]}, "'count' must be a positive integer",
                 id="count-bool"),
    pytest.param({"approvals": [{"group": "infosec", "count": 1.0}]}, "'count' must be a positive integer",
                 id="count-float"),
    pytest.param({"approvals": [{"group": "infosec", "count": "1"}]}, "'count' must be a positive integer",
                 id="count-string"),
    pytest.param({"approval_expiry_days": True}, "'approval_expiry_days' must be a positive integer",
                 id="expiry-bool"),
    pytest.param({"approval_expiry_days": 0}, "'approval_expiry_days' must be a positive integer", id="expiry-zero"),
    pytest.param({"request_expiry_days": "14"}, "'request_expiry_days' must be a positive integer",
                 id="request-expiry-string"),
    pytest.param({"break_glass_review_hours": False}, "'break_glass_review_hours' must be a positive integer",
                 id="review-hours-bool"),
    pytest.param({"break_glass_review_hours": 1.5}, "'break_glass_review_hours' must be a positive integer",
                 id="review-hours-float"),
    pytest.param({"revert_out_of_band": "yes"}, "'revert_out_of_band' must be true or false", id="revert-string"),
    pytest.param({"revert_out_of_band": 1}, "'revert_out_of_band' must be true or false", id="revert-int"),
    pytest.param({"gates": {"type": "soak"}}, "'gates' must be a list", id="gates-object"),
    pytest.param({"gates": ["soak"]}, "gates[0]: must be an object with a 'type'", id="gate-not-object"),
    pytest.param({"gates": [{"hours": 24}]}, "gates[0]: must be an object with a 'type'", id="gate-no-type"),
    pytest.param({"gates": [{"type": "bias_audit"}]}, "gates[0]: unknown gate type 'bias_audit'",
                 id="unknown-gate-type"),
    pytest.param({"gates": [{"type": "metric", "op": ">=", "value": 1}]}, "gates[0]: 'metric' must name an MLflow",
                 id="metric-missing"),
    pytest.param({"gates": [{"type": "metric", "metric": "", "op": ">=", "value": 1}]}, "'metric' must name",
                 id="metric-empty"),
    pytest.param({"gates": [{"type": "metric", "metric": "auc", "op": "=>", "value": 1}]},
                 "gates[0]: 'op' must be one of >=, >, <=, <, ==", id="bad-op"),
    pytest.param({"gates": [{"type": "metric", "metric": "auc", "op": "!=", "value": 1}]}, "'op' must be one of",
                 id="unsupported-op"),
    pytest.param({"gates": [{"type": "metric", "metric": "auc", "value": 1}]}, "'op' must be one of", id="op-missing"),
    pytest.param({"gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": "0.9"}]},
                 "gates[0]: 'value' must be a finite number", id="value-string"),
    pytest.param({"gates": [{"type": "metric", "metric": "auc", "op": ">="}]}, "'value' must be a finite number",
                 id="value-missing"),
    pytest.param({"gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": float("nan")}]},
                 "'value' must be a finite number", id="value-nan"),
    pytest.param({"gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": float("inf")}]},
                 "'value' must be a finite number", id="value-inf"),
    pytest.param({"gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": True}]},
                 "'value' must be a finite number", id="value-bool"),
    pytest.param({"gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": 0.9, "window": "7d"}]},
                 "gates[0]: unknown key(s) for a metric gate: window", id="metric-extra-key"),
    pytest.param({"gates": [{"type": "soak"}]}, "gates[0]: 'hours' must be a positive number", id="soak-no-hours"),
    pytest.param({"gates": [{"type": "soak", "hours": 0}]}, "'hours' must be a positive number", id="soak-zero"),
    pytest.param({"gates": [{"type": "soak", "hours": -1}]}, "'hours' must be a positive number", id="soak-negative"),
    pytest.param({"gates": [{"type": "soak", "hours": True}]}, "'hours' must be a positive number", id="soak-bool"),
    pytest.param({"gates": [{"type": "soak", "hours": "24"}]}, "'hours' must be a positive number", id="soak-string"),
    pytest.param({"gates": [{"type": "soak", "hours": 24, "environment": "staging"}]},
                 "unknown key(s) for a soak gate: environment", id="soak-extra-key"),
    pytest.param({"gates": [{"type": "model_card", "min_length": 0}]}, "gates[0]: 'min_length' must be a positive",
                 id="card-min-zero"),
    pytest.param({"gates": [{"type": "model_card", "min_length": True}]}, "'min_length' must be a positive",
                 id="card-min-bool"),
    pytest.param({"gates": [{"type": "model_card", "sections": ["intended use"]}]},
                 "unknown key(s) for a model_card gate: sections", id="card-extra-key"),
    pytest.param({"gates": [{"type": "data_classification", "max": "internal"}]},
                 "unknown key(s) for a data_classification gate: max", id="classification-extra-key"),
    pytest.param({"gates": [{"type": "model_card"}, {"type": "metric", "metric": "auc", "op": ">>", "value": 1}]},
                 "gates[1]: 'op' must be one of", id="names-the-failing-gate"),
]


@pytest.mark.parametrize(("doc", "message"), MALFORMED)
def test_malformed_documents_are_refused_with_a_message_naming_the_problem(doc: Any, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    assert message in str(info.value)


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)


@pytest.mark.parametrize("hours", [float("nan"), float("inf")])
def test_soak_hours_must_be_finite(hours: float) -> None:
    with pytest.raises(PolicyError, match="'hours' must be a positive number"):
        parse_policy({"gates": [{"type": "soak", "hours": hours}]})


@pytest.mark.parametrize("key", ["approval_expiry_days", "request_expiry_days", "break_glass_review_hours"])
def test_durations_too_large_to_compute_with_are_refused(key: str) -> None:
    with pytest.raises(PolicyError, match=key):
        parse_policy({key: 10**9})


# --- gates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "observed", "passed"),
    [
        (">=", 0.90, 0.90, True),  # exactly at the threshold
        (">=", 0.90, 0.8999, False),
        (">", 0.90, 0.90, False),
        (">", 0.90, 0.9001, True),
        ("<=", 50, 50, True),
        ("<", 50, 50, False),
        ("<", 50, 49.9, True),
        ("==", 1, 1.0, True),
        ("==", 1, 0.999, False),
    ],
)
def test_metric_gate_compares_the_run_metric(op: str, value: float, observed: float, passed: bool) -> None:
    g = gate({"type": "metric", "metric": "auc", "op": op, "value": value})

    result = evaluate_gate(g, data(metrics={"auc": observed}))

    assert result.passed is passed
    assert result.type == "metric"
    assert result.observed == observed
    assert result.gate == f"metric auc {op} {value}"
    assert result.detail == f"auc = {observed} (needs {op} {value})"


def test_metric_gate_fails_when_the_run_has_no_such_metric() -> None:
    result = evaluate_gate(gate({"type": "metric", "metric": "recall", "op": ">=", "value": 0.5}), data())

    assert (result.passed, result.observed) == (False, None)
    assert result.detail == "the run has no metric 'recall'"


def test_nan_metric_fails_its_gate_and_still_has_a_digest() -> None:
    g = gate({"type": "metric", "metric": "auc", "op": ">=", "value": 0.9})

    result = evaluate_gate(g, data(metrics={"auc": float("nan")}))

    assert result.passed is False
    assert len(evidence_digest("sha256:aa", [result])) == 64


def test_soak_gate_counts_hours_in_the_previous_environment() -> None:
    g = gate({"type": "soak", "hours": 24})

    exactly = evaluate_gate(g, data(in_previous_environment_since=NOW - timedelta(hours=24)))
    short = evaluate_gate(g, data(in_previous_environment_since=NOW - timedelta(hours=23, minutes=59)))
    long = evaluate_gate(g, data(in_previous_environment_since=NOW - timedelta(hours=30)))

    assert (exactly.passed, exactly.observed) == (True, 24.0)
    assert exactly.detail == "24.0h in staging (needs 24h)"
    assert (short.passed, short.observed) == (False, 23.98)
    assert (long.passed, long.observed) == (True, 30.0)


def test_soak_gate_fails_when_never_deployed_in_the_previous_environment() -> None:
    result = evaluate_gate(gate({"type": "soak", "hours": 24}), data(in_previous_environment_since=None))

    assert (result.passed, result.observed) == (False, None)
    assert result.detail == "not deployed in staging"


def test_soak_gate_passes_in_the_first_environment() -> None:
    result = evaluate_gate(
        gate({"type": "soak", "hours": 24}), data(previous_environment=None, in_previous_environment_since=None)
    )

    assert result.passed is True
    assert result.detail == "first environment: nothing to soak in"


@pytest.mark.parametrize(
    ("description", "min_length", "passed", "observed"),
    [
        ("", None, False, 0),
        ("   \n ", None, False, 0),  # whitespace is not a model card
        ("x", None, True, 1),
        ("  exactly twenty chars  ", 20, True, 20),  # exactly min_length after stripping
        ("nineteen characters", 20, False, 19),
    ],
)
def test_model_card_gate_measures_the_stripped_description(
    description: str, min_length: int | None, passed: bool, observed: int
) -> None:
    doc: dict[str, Any] = {"type": "model_card"}
    if min_length is not None:
        doc["min_length"] = min_length

    result = evaluate_gate(gate(doc), data(description=description))

    assert (result.passed, result.observed) == (passed, observed)
    assert result.detail == f"description has {observed} characters"


@pytest.mark.parametrize(
    ("level", "ceiling", "passed"),
    [
        ("public", "confidential", True),
        ("confidential", "confidential", True),  # at the ceiling
        ("restricted", "confidential", False),
        ("restricted", "restricted", True),
        ("internal", "public", False),
    ],
)
def test_data_classification_gate_compares_with_the_environment_ceiling(level: str, ceiling: str, passed: bool) -> None:
    result = evaluate_gate(
        gate({"type": "data_classification"}), data(data_classification=level, environment_max_classification=ceiling)
    )

    assert (result.passed, result.observed) == (passed, level)
    assert result.detail == f"trained on {level} data; the environment allows up to {ceiling}"


@pytest.mark.parametrize("level", ["", "secret", "RESTRICTED"])
def test_data_classification_gate_fails_when_the_level_is_unknown(level: str) -> None:
    result = evaluate_gate(gate({"type": "data_classification"}), data(data_classification=level))

    assert (result.passed, result.observed) == (False, None)
    assert result.detail == "the training data's classification is unknown"


def test_gate_result_as_dict() -> None:
    result = GateResult("model card present", "model_card", True, 42, "description has 42 characters")
    assert result.as_dict() == {"gate": "model card present", "type": "model_card", "passed": True, "observed": 42,
                                "detail": "description has 42 characters"}


# --- evidence digest -------------------------------------------------------------------------------


def results_at(**overrides: Any) -> list[GateResult]:
    policy = parse_policy(FULL)
    return [evaluate_gate(g, data(**overrides)) for g in policy.gates]


def test_evidence_digest_is_a_stable_sha256() -> None:
    first = evidence_digest("sha256:aa", results_at())
    assert first == evidence_digest("sha256:aa", results_at())
    assert len(first) == 64 and int(first, 16) >= 0


def test_evidence_digest_changes_with_the_artifact_digest() -> None:
    assert evidence_digest("sha256:aa", results_at()) != evidence_digest("sha256:bb", results_at())


def test_evidence_digest_changes_with_a_gate_outcome_or_observation() -> None:
    base = evidence_digest("sha256:aa", results_at())

    assert evidence_digest("sha256:aa", results_at(metrics={"auc": 0.95})) != base  # observed, still passing
    assert evidence_digest("sha256:aa", results_at(metrics={"auc": 0.5})) != base  # outcome
    assert evidence_digest("sha256:aa", results_at(data_classification="confidential")) != base
    assert evidence_digest("sha256:aa", results_at(description="A different model card text.")) != base
    # the soak outcome counts, even though its hours do not
    assert evidence_digest("sha256:aa", results_at(in_previous_environment_since=NOW - timedelta(hours=2))) != base


def test_evidence_digest_ignores_soak_hours_elapsed() -> None:
    early = results_at(now=NOW)
    later = results_at(now=NOW + timedelta(hours=17, minutes=3))
    soak = next(r for r in early if r.type == "soak"), next(r for r in later if r.type == "soak")
    assert soak[0].observed != soak[1].observed and soak[0].passed == soak[1].passed

    assert evidence_digest("sha256:aa", early) == evidence_digest("sha256:aa", later)


def test_evidence_digest_depends_on_gate_order_and_set() -> None:
    results = results_at()
    assert evidence_digest("sha256:aa", results) != evidence_digest("sha256:aa", list(reversed(results)))
    assert evidence_digest("sha256:aa", results) != evidence_digest("sha256:aa", results[:-1])
    assert evidence_digest("sha256:aa", []) != evidence_digest("sha256:aa", results)
