"""Property-based conformance of the whole API to its own OpenAPI document (schemathesis).

The schema is loaded from the WSGI app, realistic data is seeded first (tests/api/seed.py),
and every operation gets a small, deterministic number of generated requests: half with
path parameters naming real objects, half generated, plus a few schema-violating ones.
Each response must not be a 5xx, must have a status code and content type the schema
declares for the operation, and a body that matches the declared schema.

Two callers: a service account token carrying every scope, and an InfoSec person's
session (with CSRF) for the operations only people may call. The run is bounded by example
counts, not by the clock (a few hundred cases; hypothesis' per-example deadline is off), so a
loaded machine makes it slower, never red; it collects every failure before reporting, so one
run names every non-conforming operation.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.seed import Seeded, seed

pytestmark = pytest.mark.usefixtures("celery_eager")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
POSITIVE_EXAMPLES = 3  # per operation, caller and kind of path parameters (real / generated)
NEGATIVE_EXAMPLES = 2
# The counts above are the whole budget (~25 s per caller on an idle machine): no wall-clock limit.
CSRF = "h4schemathesiscsrftoken000000000"  # 32 characters: Django's unmasked secret format

# The segment before a path parameter says which seeded object the parameter names.
OBJECT_BY_SEGMENT: dict[str, str] = {
    "promotions": "promotion_id",  # {id}, {pk} or {promotion_id}: the segment decides
    "break-glass-reviews": "review_id",
    "violations": "violation_id",
    "datasets": "dataset_id",
    "grants": "grant_id",
    "requests": "request_id",
    "access-requests": "request_id",
    "reviews": "review_id",
    "tokens": "token_id",
    "service-accounts": "service_account",
    "models": "model",
    "versions": "version",
    "entries": "seq",
    "environments": "environment",
    "policies": "environment",
    "exports": "export_id",
    "events": "event_id",
}


@dataclass
class Run:
    cases: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)  # operation label → distinct failures
    exercised: set[str] = field(default_factory=set)  # operations that were sent at least one request
    succeeded: set[str] = field(default_factory=set)  # operations that answered 2xx at least once

    def fail(self, label: str, message: str) -> None:
        seen = self.failures.setdefault(label, [])
        first_line = message.strip().splitlines()[0] if message.strip() else message
        if all(first_line not in m for m in seen) and len(seen) < 3:
            seen.append(message.strip()[:1500])


def real_path_parameters(path: str, names: list[str], seeded: Seeded) -> dict[str, Any]:
    segments = path.strip("/").split("/")
    values: dict[str, Any] = {}
    for name in names:
        token = "{" + name + "}"
        where = segments.index(token) if token in segments else -1
        segment = segments[where - 1] if where > 0 else ""
        key = OBJECT_BY_SEGMENT.get(segment, name)
        if f"{segment}.{name}" in seeded.path_values:
            values[name] = seeded.path_values[f"{segment}.{name}"]
        elif key in seeded.path_values:
            values[name] = seeded.path_values[key]
        elif name in seeded.path_values:
            values[name] = seeded.path_values[name]
    return values


def run_operation(operation: Any, run: Run, *, headers: dict[str, str], cookies: dict[str, str],
                  seeded: Seeded) -> None:
    label = operation.label
    names = [p.name for p in operation.path_parameters]
    real = real_path_parameters(operation.path, names, seeded) if names else {}

    def exercise(case: Any) -> None:
        run.cases += 1
        run.exercised.add(label)
        if cookies:  # a session run: never the bearer token schemathesis generates from the security scheme
            for name in [h for h in (case.headers or {}) if h.lower() == "authorization"]:
                del case.headers[name]
        try:
            response = case.call(headers=headers, cookies=cookies)
        except Exception as exc:  # the app raised through the test client: a 500 in production
            run.fail(label, f"{type(exc).__name__}: {exc}")
            return
        run.by_status[response.status_code] = run.by_status.get(response.status_code, 0) + 1
        if 200 <= response.status_code < 300:
            run.succeeded.add(label)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a FailureGroup of its checks
            found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
            for failure in found:
                text = str(failure).strip()
                run.fail(label, f"{case.method} {case.formatted_path} → {response.status_code}: "
                                f"{type(failure).__name__}: {text[:1200]}")

    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    if real and len(real) == len(names):
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=real))
    common = {"deadline": None, "derandomize": True, "database": None, "phases": [Phase.explicit, Phase.generate],
              "suppress_health_check": list(HealthCheck)}
    def drive(strategy: Any, count: int) -> None:
        def test(case: Any) -> None:  # a fresh function each time: hypothesis settings attach to it
            exercise(case)

        given(case=strategy)(hsettings(max_examples=count, **common)(test))()

    try:
        drive(st.one_of(*strategies), POSITIVE_EXAMPLES * len(strategies))
    except Unsatisfiable as exc:  # the schema admits no valid request: a schema defect, not a skip
        run.fail(label, f"no valid request can be generated from the schema: {str(exc)[:1500]}")
        return
    negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE,
                                     **({"path_parameters": real} if len(real) == len(names) else {}))
    try:
        drive(negative, NEGATIVE_EXAMPLES)
    except Unsatisfiable:  # an operation with nothing to negate (no parameters, no body)
        pass


def session_cookies(user: User) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value, "csrftoken": CSRF}


@pytest.fixture
def seeded(committing_db: None, fake_registry: Any, settings: Any) -> Seeded:
    settings.API_THROTTLE_RATE = "100000/min"  # the run itself must not be throttled
    return seed(versions=6, pending=6, approvers=1, events=10)


def _report(run: Run, who: str, seconds: float) -> str:
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(run.by_status.items()))
    print(f"\nschemathesis ({who}): {run.cases} cases in {seconds:.1f}s; status codes {statuses}")
    return "\n\n".join(f"{label}:\n  " + "\n  ".join(msgs) for label, msgs in sorted(run.failures.items()))


def _run_all(seeded: Seeded, who: str, headers: dict[str, str], cookies: dict[str, str],
             select: Callable[[Any], bool] = lambda op: True) -> Run:
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", WSGIHandler())
    run = Run()
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 1, "the schema lists no operation besides whoami"
    selected = [operation for operation in operations if select(operation)]
    for operation in selected:
        run_operation(operation, run, headers=headers, cookies=cookies, seeded=seeded)
    elapsed = time.monotonic() - started  # reported, never asserted: the budget is the example counts
    problems = _report(run, who, elapsed)
    assert not run.failures, f"{len(run.failures)} operation(s) do not conform:\n\n{problems}"
    not_exercised = {operation.label for operation in selected} - run.exercised
    assert not not_exercised, f"not exercised: {sorted(not_exercised)}"
    return run


def test_every_operation_conforms_for_a_token_with_every_scope(seeded):
    run = _run_all(seeded, "token", {"Authorization": f"Bearer {seeded.token}"}, {})
    # The seeded objects were reached: reads by id answered 200, not only 404s.
    for prefix in ("GET /api/v1/promotions/{", "GET /api/v1/models/{", "GET /api/v1/ledger/entries/{",
                   "GET /api/v1/grants/{", "GET /api/v1/datasets/{"):
        assert any(label.startswith(prefix) for label in run.succeeded), (prefix, sorted(run.succeeded))


def test_every_unsafe_operation_conforms_for_an_infosec_session(seeded):
    # People-only operations (approvals, reviews) answer tokens with 403; a person reaches them.
    run = _run_all(seeded, "infosec session", {"X-CSRFToken": CSRF}, session_cookies(seeded.people["infosec"]),
                   select=lambda op: op.method.upper() in ("POST", "PUT", "PATCH", "DELETE"))
    assert run.cases > 0
