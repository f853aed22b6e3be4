"""The policy floor (``POLICY_FLOOR``): its parsing, what it measures, and refusing to start without a valid one."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import env
from governance.policy import parse_policy
from governance.policy_floor import DEFAULT_FLOOR, Floor, floor_for, floor_problems, parse_floor
from tests.governance.helpers import DEFAULT_POLICIES

ROOT = Path(__file__).resolve().parents[2]


def test_the_default_floor_is_production_as_installed() -> None:
    floors = parse_floor(DEFAULT_FLOOR)
    assert floors == {"production": Floor(min_approvals=2, min_soak_hours=24, required_gates=("data_classification",))}
    # The installed production policy meets it exactly (so the floor blocks only weakening).
    assert floor_problems(floors["production"], parse_policy(DEFAULT_POLICIES["production"])) == []


def test_the_settings_default_is_the_default_floor(settings: Any) -> None:
    assert settings.POLICY_FLOOR == parse_floor(DEFAULT_FLOOR)


def test_no_floor_means_no_problems() -> None:
    assert floor_problems(None, parse_policy({})) == []


def test_every_shortfall_is_named() -> None:
    floor = Floor(min_approvals=3, min_soak_hours=12, required_gates=("model_card", "data_classification"))
    policy = parse_policy({"approvals": [{"group": "a", "count": 1}, {"group": "b", "count": 1}],
                           "gates": [{"type": "soak", "hours": 6}, {"type": "data_classification"}]})
    problems = floor_problems(floor, policy)
    assert problems == ["it requires 2 approval(s), the floor is 3", "its soak gate is 6h, the floor is 12h",
                        "it must keep the gate(s) model_card"]


def test_approvals_count_across_groups_and_the_longest_soak_counts() -> None:
    floor = Floor(min_approvals=2, min_soak_hours=24)
    policy = parse_policy({"approvals": [{"group": "a", "count": 1}, {"group": "b", "count": 1}],
                           "gates": [{"type": "soak", "hours": 1}, {"type": "soak", "hours": 24}]})
    assert floor_problems(floor, policy) == []


@pytest.mark.parametrize(("doc", "message"), [
    ([], "JSON object"),
    ({"production": 2}, "must be an object"),
    ({"production": {"min_approvals": "2"}}, "'min_approvals' must be an integer"),
    ({"production": {"min_approvals": -1}}, "'min_approvals' must be an integer"),
    ({"production": {"min_approvals": True}}, "'min_approvals' must be an integer"),
    ({"production": {"min_soak_hours": -1}}, "'min_soak_hours' must be a non-negative"),
    ({"production": {"min_soak_hours": float("nan")}}, "'min_soak_hours' must be a non-negative"),
    ({"production": {"required_gates": ["vibes"]}}, "'required_gates' must be a list of gate types"),
    ({"production": {"min_approval": 2}}, "unknown key"),
])
def test_a_malformed_floor_is_refused_with_the_problem_named(doc: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_floor(doc)


def test_a_raw_override_is_parsed_not_ignored(settings: Any) -> None:
    settings.POLICY_FLOOR = {"staging": {"min_approvals": 1}}
    assert floor_for("staging") == Floor(min_approvals=1)
    settings.POLICY_FLOOR = {"staging": {"min_approvals": "one"}}
    with pytest.raises(ValueError):
        floor_for("staging")


def test_env_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("X_JSON", raising=False)
    assert env.env_json("X_JSON", {"a": 1}) == {"a": 1}
    monkeypatch.setenv("X_JSON", " ")
    assert env.env_json("X_JSON", {"a": 1}) == {"a": 1}
    monkeypatch.setenv("X_JSON", '{"b": 2}')
    assert env.env_json("X_JSON", {}) == {"b": 2}
    monkeypatch.setenv("X_JSON", "{b: 2}")
    with pytest.raises(ImproperlyConfigured, match="X_JSON is not valid JSON"):
        env.env_json("X_JSON", {})


def _check(tmp_path: Path, floor: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "POLICY_FLOOR": floor}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("floor", ['{"production": {"min_approvals": "two"}}', "{production: 2}"])
def test_the_process_refuses_to_start_with_a_malformed_floor(tmp_path: Path, floor: str) -> None:
    result = _check(tmp_path, floor)
    assert result.returncode != 0
    assert "POLICY_FLOOR" in result.stderr


def test_the_process_starts_with_a_valid_floor(tmp_path: Path) -> None:
    result = _check(tmp_path, '{"production": {"min_approvals": 3}, "staging": {"min_approvals": 1}}')
    assert result.returncode == 0, result.stderr
