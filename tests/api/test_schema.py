"""The OpenAPI document: valid OpenAPI 3, and complete enough for a client generator and for schemathesis.

Every operation must say what it answers on success (a schema), what it takes (a request
body schema for POST/PUT/PATCH), carry at least one example and a tag; drf-spectacular must
generate it without a single warning (a warning means a guessed, usually wrong, schema).
"""
from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

METHODS = ("get", "put", "post", "delete", "patch")
WITH_BODY = ("put", "post", "patch")



@pytest.fixture(scope="module")
def schema(django_db_setup: None, django_db_blocker: Any) -> dict[str, Any]:
    from rest_framework.test import APIClient

    with django_db_blocker.unblock():
        response = APIClient().get("/api/v1/schema/?format=json")
    assert response.status_code == 200, response.content[:500]
    body: dict[str, Any] = response.json()
    return body


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in sorted(schema["paths"].items())
        for method, op in item.items()
        if method in METHODS
    ]


def _has_example(op: dict[str, Any]) -> bool:
    media: list[dict[str, Any]] = list(op.get("requestBody", {}).get("content", {}).values())
    for response in op.get("responses", {}).values():
        media.extend(response.get("content", {}).values())
    if any("example" in m or m.get("examples") for m in media):
        return True
    return any("example" in p or p.get("examples") for p in op.get("parameters", []))


def test_the_schema_is_a_valid_openapi_3_document(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)  # raises OpenAPIValidationError with the JSON path of the first problem


def test_the_validator_catches_a_broken_document(schema):
    # The check above must be able to fail: a response without its required description is invalid.
    broken = {**schema, "paths": {"/x": {"get": {"responses": {"200": {}}}}}}
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    with pytest.raises(OpenAPIValidationError, match="responses"):
        validate(broken)


def test_the_api_is_described_beyond_whoami(schema):
    assert "/api/v1/whoami" in schema["paths"]
    assert schema["info"]["title"] and schema["info"]["version"]


def test_every_operation_is_fully_described(schema):
    problems: list[str] = []
    for path, method, op in operations(schema):
        label = f"{method.upper()} {path}"
        if not op.get("tags"):
            problems.append(f"{label}: no tag")
        if not (op.get("summary") or op.get("description")):
            problems.append(f"{label}: no summary")
        responses = op.get("responses", {})
        successes = sorted(code for code in responses if code.startswith("2"))
        if not successes:
            problems.append(f"{label}: no 2xx response")
        for code in successes:
            if code == "204":
                continue
            content = responses[code].get("content", {})
            if not content or not all(m.get("schema") for m in content.values()):
                problems.append(f"{label}: {code} has no response schema")
        if method in WITH_BODY:
            content = op.get("requestBody", {}).get("content", {})
            if not content or not all(m.get("schema") for m in content.values()):
                problems.append(f"{label}: no request body schema")
            elif "application/json" not in content:
                problems.append(f"{label}: request body not declared as application/json ({sorted(content)})")
        if not _has_example(op):
            problems.append(f"{label}: no example")
    assert not problems, "\n".join(problems)


def test_every_operation_is_secured_by_token_or_session(schema):
    # A public operation must be a decision, not an accident: only the schema itself is public,
    # and it is not listed in its own document.
    schemes = schema.get("components", {}).get("securitySchemes", {})
    assert schemes, "no securitySchemes: the auth classes have no OpenApiAuthenticationExtension"
    for path, method, op in operations(schema):
        security = op.get("security", schema.get("security"))
        assert security, f"{method.upper()} {path} declares no security"
        assert {} not in security, f"{method.upper()} {path} is open to anonymous callers"


def test_operation_ids_are_unique(schema):
    ids = [op.get("operationId") for _, _, op in operations(schema)]
    assert all(ids)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_spectacular_generates_it_without_warnings_or_errors(tmp_path):
    # Warnings accumulate process-wide (drf-spectacular dedups them); start from none.
    GENERATOR_STATS.reset()
    err = io.StringIO()
    try:
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"),
                     stderr=err, stdout=io.StringIO())
    except Exception as exc:  # SchemaGenerationError, or the validator's error
        pytest.fail(f"{type(exc).__name__}: {exc}\n{err.getvalue()}")
    finally:
        GENERATOR_STATS.reset()
    assert (tmp_path / "schema.yaml").stat().st_size > 0
