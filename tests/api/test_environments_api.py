"""The environments, policies, freeze windows and violations API."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from governance.models import ComplianceViolation, Environment, FreezeWindow, PromotionPolicy
from tests.api.helpers import problem_of, writes_no_ledger
from tests.catalog import Resources
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]

NEW_ENV = {"name": "pre-prod", "order": 7, "mlflow_alias": "pre-prod", "max_data_classification": "confidential",
           "description": "mirrored traffic"}
STRICT = {"approvals": [{"group": "approver", "count": 2}],
          "gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": 0.9}]}


class TestEnvironmentsRead:
    def test_list_in_order(self, as_user, people: People, django_assert_max_num_queries) -> None:
        client = as_user(people.outsider)
        # 6: the session, its user, the user's roles (read at every session request, so that a role change
        # rotates the session id: web.idle_session), the environments, their policies and their Kubernetes
        # namespaces (one prefetch, whatever the number of environments).
        with django_assert_max_num_queries(6):
            body = client.get("/api/v1/environments").json()
        assert [e["name"] for e in body["results"]] == ["dev", "staging", "production"]

    def test_detail_with_policy_and_freezes(self, as_user, people: People) -> None:
        production = Environment.objects.get(name="production")
        FreezeWindow.objects.create(environment=production, starts_at=timezone.now(),
                                    ends_at=timezone.now() + timedelta(days=1), reason="peak")
        body = as_user(people.owner).get("/api/v1/environments/production").json()
        assert body["max_data_classification"] == "confidential"
        assert body["policy"]["approvals"] == [{"group": "model-risk", "count": 1}, {"group": "infosec", "count": 1}]
        assert [f["reason"] for f in body["freezes"]] == ["peak"]

    def test_unknown_is_404(self, as_user, people: People) -> None:
        assert problem_of(as_user(people.owner).get("/api/v1/environments/moon"))["status"] == 404

    def test_token_scope(self, token_for) -> None:
        assert token_for(["promotions:read"]).get("/api/v1/environments").status_code == 200
        assert token_for(["models:read"]).get("/api/v1/environments").status_code == 403

    def test_anonymous_is_refused(self, as_user) -> None:
        assert as_user(None).get("/api/v1/environments").status_code in (401, 403)


class TestEnvironmentsWrite:
    def test_infosec_creates(self, as_user, people: People) -> None:
        response = as_user(people.infosec).post("/api/v1/environments", NEW_ENV, format="json")
        assert response.status_code == 201, response.content
        assert Environment.objects.get(name="pre-prod").order == 7

    @pytest.mark.parametrize("who", ["owner", "auditor", "outsider"])
    def test_others_are_refused(self, as_user, people: People, who: str) -> None:
        with writes_no_ledger():
            response = as_user(getattr(people, who)).post("/api/v1/environments", NEW_ENV, format="json")
        assert response.status_code == 403
        assert not Environment.objects.filter(name="pre-prod").exists()

    def test_tokens_are_refused(self, token_for) -> None:
        client = token_for(["promotions:write", "promotions:read"])
        with writes_no_ledger():
            response = client.post("/api/v1/environments", NEW_ENV, format="json")
        assert response.status_code == 403

    @pytest.mark.parametrize(("body", "field"), [
        ({**NEW_ENV, "colour": "red"}, "colour"),
        ({**NEW_ENV, "order": "7"}, "order"),
        ({**NEW_ENV, "order": -1}, "order"),
        ({**NEW_ENV, "max_data_classification": "secret"}, "max_data_classification"),
        ({**NEW_ENV, "name": "pre prod"}, "name"),
        ({**NEW_ENV, "mlflow_alias": "a b"}, "mlflow_alias"),
        ({k: v for k, v in NEW_ENV.items() if k != "order"}, "order"),
    ])
    def test_bad_input(self, as_user, people: People, body: dict[str, Any], field: str) -> None:
        with writes_no_ledger():
            response = as_user(people.infosec).post("/api/v1/environments", body, format="json")
        assert response.status_code == 400
        assert field in [e["field"] for e in problem_of(response)["errors"]]

    def test_clash_is_400(self, as_user, people: People) -> None:
        with writes_no_ledger():
            response = as_user(people.infosec).post("/api/v1/environments", {**NEW_ENV, "order": 2}, format="json")
        assert response.status_code == 400
        assert problem_of(response)["code"] == "duplicate"

    def test_patch(self, as_user, people: People) -> None:
        response = as_user(people.infosec).patch("/api/v1/environments/staging",
                                                 {"max_data_classification": "confidential"}, format="json")
        assert response.status_code == 200
        assert Environment.objects.get(name="staging").max_data_classification == "confidential"

    @pytest.mark.parametrize("body", [{}, {"order": 9}, {"max_data_classification": "top"}, {"description": 5}])
    def test_patch_bad_input(self, as_user, people: People, body: dict[str, Any]) -> None:
        with writes_no_ledger():
            response = as_user(people.infosec).patch("/api/v1/environments/staging", body, format="json")
        assert response.status_code == 400

    def test_patch_refused(self, as_user, token_for, people: People) -> None:
        client = token_for(["promotions:read", "promotions:write"])
        with writes_no_ledger():
            assert as_user(people.owner).patch("/api/v1/environments/staging", {"description": "x"},
                                               format="json").status_code == 403
            assert client.patch("/api/v1/environments/staging", {"description": "x"},
                                format="json").status_code == 403
            assert as_user(people.infosec).patch("/api/v1/environments/moon", {"description": "x"},
                                                 format="json").status_code == 404


class TestFreezeWindows:
    def body(self, **over: Any) -> dict[str, Any]:
        start = (timezone.now() + timedelta(days=20)).strftime("%Y-%m-%dT00:00:00Z")
        end = (timezone.now() + timedelta(days=33)).strftime("%Y-%m-%dT00:00:00Z")
        return {"starts_at": start, "ends_at": end, "reason": "peak", **over}

    def test_infosec_declares(self, as_user, people: People) -> None:
        response = as_user(people.infosec).post("/api/v1/environments/staging/freeze-windows", self.body(),
                                                format="json")
        assert response.status_code == 201, response.content
        assert FreezeWindow.objects.get().reason == "peak"

    @pytest.mark.parametrize(("over", "status"), [
        ({"ends_at": "2026-12-01T00:00:00Z"}, 400),  # before the start
        ({"starts_at": "2020-01-01T00:00:00Z", "ends_at": "2020-01-02T00:00:00Z"}, 400),  # over already
        ({"reason": "x" * 301}, 400),
        ({"starts_at": "tomorrow"}, 400),
        ({"reason": ""}, 400),
        ({"why": "x"}, 400),
    ])
    def test_bad_input(self, as_user, people: People, over: dict[str, Any], status: int) -> None:
        with writes_no_ledger():
            response = as_user(people.infosec).post("/api/v1/environments/production/freeze-windows",
                                                    self.body(**over), format="json")
        assert response.status_code == status
        assert not FreezeWindow.objects.exists()

    def test_refused(self, as_user, people: People) -> None:
        with writes_no_ledger():
            assert as_user(people.owner).post("/api/v1/environments/production/freeze-windows", self.body(),
                                              format="json").status_code == 403
            assert as_user(people.infosec).post("/api/v1/environments/moon/freeze-windows", self.body(),
                                                format="json").status_code == 404


class TestPolicies:
    def test_list_hides_policies_of_invisible_models(self, as_user, people: People, res: Resources,
                                                     other_model) -> None:
        PromotionPolicy.objects.create(environment=res.production, model=other_model, rules=STRICT)
        mine = as_user(people.owner).get("/api/v1/policies").json()
        assert {(p["environment"], p["model"]) for p in mine["results"]} == {
            ("dev", None), ("staging", None), ("production", None)}
        theirs = as_user(people.auditor).get("/api/v1/policies", {"environment": "production"}).json()
        assert {p["model"] for p in theirs["results"]} == {None, "credit-limit"}

    def test_infosec_sets_a_model_policy(self, as_user, people: People, res: Resources) -> None:
        response = as_user(people.infosec).put("/api/v1/policies/staging", {"model": "fraud-detector",
                                                                            "rules": STRICT}, format="json")
        assert response.status_code == 200, response.content
        assert PromotionPolicy.objects.get(environment__name="staging", model=res.model).rules == STRICT

    def test_infosec_replaces_the_default(self, as_user, people: People) -> None:
        response = as_user(people.infosec).put("/api/v1/policies/dev", {"rules": STRICT}, format="json")
        assert response.status_code == 200
        assert response.json()["model"] is None

    @pytest.mark.parametrize(("body", "status"), [
        ({"rules": {"approvals": "all"}}, 400),
        ({"rules": {**STRICT, "colour": "red"}}, 400),
        ({"rules": STRICT, "model": "no-such-model"}, 400),
        ({"rules": "strict"}, 400),
        ({}, 400),
        ({"rules": STRICT, "extra": True}, 400),
    ])
    def test_bad_input(self, as_user, people: People, res: Resources, body: dict[str, Any], status: int) -> None:
        with writes_no_ledger():
            response = as_user(people.infosec).put("/api/v1/policies/staging", body, format="json")
        assert response.status_code == status
        problem_of(response)

    def test_refused(self, as_user, token_for, people: People, res: Resources) -> None:
        client = token_for(["promotions:read", "promotions:write"])
        with writes_no_ledger():
            assert as_user(people.owner).put("/api/v1/policies/staging", {"rules": STRICT},
                                             format="json").status_code == 403
            assert client.put("/api/v1/policies/staging", {"rules": STRICT}, format="json").status_code == 403
            assert as_user(people.infosec).put("/api/v1/policies/moon", {"rules": STRICT},
                                               format="json").status_code == 404


class TestViolations:
    def test_infosec_and_auditor_read(self, as_user, people: People, violation: ComplianceViolation,
                                      django_assert_max_num_queries) -> None:
        for i in range(20):
            ComplianceViolation.objects.create(kind="integrity", subject_type="ledger", subject_id=str(i),
                                               summary="x")
        for who in (people.infosec, people.auditor):
            client = as_user(who)
            with django_assert_max_num_queries(6):
                body = client.get("/api/v1/violations").json()
            assert body["count"] == 21
        filtered = as_user(people.auditor).get("/api/v1/violations", {"kind": "out_of_band_alias"}).json()
        assert [v["id"] for v in filtered["results"]] == [violation.pk]
        assert as_user(people.auditor).get("/api/v1/violations", {"acknowledged": "true"}).json()["count"] == 0

    @pytest.mark.parametrize("who", ["owner", "outsider", "steward"])
    def test_others_refused(self, as_user, people: People, violation, who: str) -> None:
        assert as_user(getattr(people, who)).get("/api/v1/violations").status_code == 403

    def test_approver_refused(self, as_user, approver, violation) -> None:
        assert as_user(approver).get("/api/v1/violations").status_code == 403

    def test_bad_filter(self, as_user, people: People, violation) -> None:
        assert as_user(people.infosec).get("/api/v1/violations", {"kind": "bad"}).status_code == 400

    def test_infosec_acknowledges(self, as_user, people: People, violation: ComplianceViolation) -> None:
        url = f"/api/v1/violations/{violation.pk}/acknowledge"
        response = as_user(people.infosec).post(url, {"comment": "reverted by sync"}, format="json")
        assert response.status_code == 200
        assert response.json()["acknowledged_by"] == "ines"
        with writes_no_ledger():
            assert as_user(people.infosec).post(url, {"comment": "again"}, format="json").status_code == 409

    def test_acknowledge_refused(self, as_user, token_for, people: People, violation) -> None:
        url = f"/api/v1/violations/{violation.pk}/acknowledge"
        client = token_for(["promotions:read", "promotions:write"])
        with writes_no_ledger():
            assert as_user(people.auditor).post(url, {"comment": "ok"}, format="json").status_code == 403
            assert as_user(people.owner).post(url, {"comment": "ok"}, format="json").status_code == 404
            assert client.post(url, {"comment": "ok"}, format="json").status_code == 403
            for body in ({}, {"comment": ""}, {"comment": "ok", "x": 1}, {"comment": ["ok"]}):
                assert as_user(people.infosec).post(url, body, format="json").status_code == 400
        violation.refresh_from_db()
        assert violation.acknowledged_at is None

