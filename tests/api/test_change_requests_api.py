"""Two-person control over protected environments through the API: 202 proposals and ``/api/v1/change-requests``."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from governance.models import Environment, FreezeWindow
from tests.api.helpers import problem_of
from tests.catalog import Resources
from tests.governance.helpers import TIGHTER, ZERO, production_rules, rules_state
from tests.personas import People

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]






@pytest.fixture
def no_floor(settings: Any) -> None:
    settings.POLICY_FLOOR = {}


def propose(as_user, who, rules: Any = TIGHTER) -> dict[str, Any]:
    response = as_user(who).put("/api/v1/policies/production", {"rules": rules, "reason": "INC-12"}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


class TestTheAttack:
    def test_one_infosec_put_of_production_to_zero_only_proposes(self, no_floor, as_user, people: People) -> None:
        before = production_rules()
        response = as_user(people.infosec).put("/api/v1/policies/production", {"rules": ZERO}, format="json")
        assert response.status_code == 202
        body = response.json()
        assert response["Location"] == f"/api/v1/change-requests/{body['id']}"
        assert body["state"] == "pending" and body["kind"] == "policy_set" and body["change"] == {"rules": ZERO}
        assert production_rules() == before

    def test_the_proposer_cannot_approve(self, no_floor, as_user, people: People) -> None:
        body = propose(as_user, people.infosec, ZERO)
        before = rules_state()
        response = as_user(people.infosec).post(f"/api/v1/change-requests/{body['id']}/approve",
                                                {"comment": "lgtm"}, format="json")
        assert response.status_code == 403
        assert problem_of(response)["detail"] == "you proposed this change, so a second InfoSec member must approve it"
        assert rules_state() == before

    def test_a_token_cannot_approve(self, no_floor, as_user, token_for, people: People) -> None:
        body = propose(as_user, people.infosec, ZERO)
        client = token_for(["promotions:read", "promotions:write"])
        before = rules_state()
        assert client.post(f"/api/v1/change-requests/{body['id']}/approve", {"comment": "x"},
                           format="json").status_code == 403
        assert rules_state() == before

    def test_a_second_infosec_member_approves_and_it_applies(self, no_floor, as_user, people: People) -> None:
        body = propose(as_user, people.infosec, ZERO)
        response = as_user(people.infosec2).post(f"/api/v1/change-requests/{body['id']}/approve",
                                                 {"comment": "agreed"}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["state"] == "applied" and response.json()["decided_by"] == people.infosec2.username
        assert production_rules() == ZERO

    def test_the_floor_refuses_the_zero_policy_outright(self, as_user, people: People) -> None:
        before = rules_state()
        response = as_user(people.infosec).put("/api/v1/policies/production", {"rules": ZERO}, format="json")
        assert response.status_code == 400
        problem = problem_of(response)
        assert problem["code"] == "below_floor" and "POLICY_FLOOR" in problem["detail"]
        assert rules_state() == before

    def test_the_floor_holds_for_model_policies_in_any_environment(self, settings, as_user, people: People,
                                                                   res: Resources) -> None:
        settings.POLICY_FLOOR = {"staging": {"min_approvals": 1}}
        before = rules_state()
        response = as_user(people.infosec).put("/api/v1/policies/staging",
                                               {"rules": ZERO, "model": "fraud-detector"}, format="json")
        assert response.status_code == 400 and problem_of(response)["code"] == "below_floor"
        assert rules_state() == before

    def test_a_stale_approval_is_409(self, no_floor, as_user, people: People) -> None:
        first = propose(as_user, people.infosec, ZERO)
        second = propose(as_user, people.infosec, TIGHTER)
        assert as_user(people.infosec2).post(f"/api/v1/change-requests/{first['id']}/approve", {"comment": "ok"},
                                             format="json").status_code == 200
        before = rules_state()
        response = as_user(people.infosec2).post(f"/api/v1/change-requests/{second['id']}/approve",
                                                 {"comment": "ok"}, format="json")
        assert response.status_code == 409 and problem_of(response)["code"] == "stale"
        assert rules_state() == before


class TestOtherProtectedChanges:
    def test_patch_of_production_proposes(self, as_user, people: People) -> None:
        response = as_user(people.infosec).patch("/api/v1/environments/production", {"mlflow_alias": "prod-b"},
                                                 format="json")
        assert response.status_code == 202 and response.json()["kind"] == "environment_update"
        assert Environment.objects.get(name="production").mlflow_alias == "production"

    def test_unprotecting_proposes_and_protecting_is_immediate(self, as_user, people: People) -> None:
        response = as_user(people.infosec).patch("/api/v1/environments/production",
                                                 {"protected": False, "reason": "migration"}, format="json")
        assert response.status_code == 202 and response.json()["change"] == {"protected": False}
        assert Environment.objects.get(name="production").protected
        response = as_user(people.infosec).patch("/api/v1/environments/staging", {"protected": True}, format="json")
        assert response.status_code == 200 and response.json()["protected"] is True

    def test_protection_changes_alone(self, as_user, people: People) -> None:
        before = rules_state()
        response = as_user(people.infosec).patch("/api/v1/environments/production",
                                                 {"protected": False, "description": "x"}, format="json")
        assert response.status_code == 400 and "protected" in [e["field"] for e in problem_of(response)["errors"]]
        assert rules_state() == before

    @pytest.mark.parametrize("who", ["owner", "auditor", "outsider"])
    def test_others_cannot_protect_or_propose(self, as_user, people: People, who: str) -> None:
        before = rules_state()
        client = as_user(getattr(people, who))
        assert client.patch("/api/v1/environments/staging", {"protected": True}, format="json").status_code == 403
        assert client.patch("/api/v1/environments/production", {"protected": False},
                            format="json").status_code == 403
        assert client.put("/api/v1/policies/production", {"rules": TIGHTER}, format="json").status_code == 403
        assert rules_state() == before

    def test_freeze_window_of_production_proposes(self, as_user, people: People) -> None:
        start = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT00:00:00Z")
        end = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT00:00:00Z")
        response = as_user(people.infosec).post("/api/v1/environments/production/freeze-windows",
                                                {"starts_at": start, "ends_at": end, "reason": "peak"}, format="json")
        assert response.status_code == 202 and response.json()["kind"] == "freeze_window_create"
        assert not FreezeWindow.objects.exists()
        approved = as_user(people.infosec2).post(f"/api/v1/change-requests/{response.json()['id']}/approve",
                                                 {"comment": "ok"}, format="json")
        assert approved.status_code == 200 and FreezeWindow.objects.get().reason == "peak"

    def test_an_environment_joining_below_production_proposes(self, as_user, people: People) -> None:
        Environment.objects.filter(name="production").update(order=5)
        body = {"name": "pre-prod", "order": 3, "mlflow_alias": "pre-prod", "max_data_classification": "internal"}
        response = as_user(people.infosec).post("/api/v1/environments", body, format="json")
        assert response.status_code == 202 and response.json()["environment"] == "production"
        assert not Environment.objects.filter(name="pre-prod").exists()


class TestReadingAndDeciding:
    def test_infosec_and_auditors_list_with_bounded_queries(self, no_floor, as_user, people: People,
                                                            django_assert_max_num_queries) -> None:
        for _ in range(15):
            propose(as_user, people.infosec)
        for who in (people.infosec2, people.auditor):
            client = as_user(who)
            with django_assert_max_num_queries(6):
                body = client.get("/api/v1/change-requests", {"state": "pending"}).json()
            assert body["count"] == 15 and body["results"][0]["proposed_by"] == people.infosec.username

    @pytest.mark.parametrize("who", ["owner", "outsider", "steward"])
    def test_others_cannot_read(self, as_user, people: People, who: str) -> None:
        body = propose(as_user, people.infosec)
        client = as_user(getattr(people, who))
        assert client.get("/api/v1/change-requests").status_code == 403
        # Unknown and invisible look the same.
        assert problem_of(client.get(f"/api/v1/change-requests/{body['id']}"))["status"] == 404
        assert client.get("/api/v1/change-requests/999999").status_code == 404

    def test_a_token_without_a_role_cannot_read(self, as_user, token_for, people: People) -> None:
        propose(as_user, people.infosec)
        assert token_for(["promotions:read"]).get("/api/v1/change-requests").status_code == 403

    def test_detail_and_filters(self, as_user, people: People) -> None:
        body = propose(as_user, people.infosec)
        client = as_user(people.auditor)
        assert client.get(f"/api/v1/change-requests/{body['id']}").json()["reason"] == "INC-12"
        assert client.get("/api/v1/change-requests", {"environment": "staging"}).json()["count"] == 0
        assert client.get("/api/v1/change-requests", {"state": "nope"}).status_code == 400

    def test_reject_and_withdraw(self, as_user, people: People) -> None:
        first, second = propose(as_user, people.infosec), propose(as_user, people.infosec)
        before = rules_state()
        assert as_user(people.infosec).post(f"/api/v1/change-requests/{first['id']}/reject", {"comment": "x"},
                                            format="json").status_code == 403
        assert as_user(people.infosec2).post(f"/api/v1/change-requests/{second['id']}/withdraw", {"reason": "x"},
                                             format="json").status_code == 403
        assert rules_state() == before
        rejected = as_user(people.infosec2).post(f"/api/v1/change-requests/{first['id']}/reject",
                                                 {"comment": "no ticket"}, format="json")
        withdrawn = as_user(people.infosec).post(f"/api/v1/change-requests/{second['id']}/withdraw",
                                                 {"reason": "typo"}, format="json")
        assert (rejected.json()["state"], withdrawn.json()["state"]) == ("rejected", "withdrawn")
        again = as_user(people.infosec2).post(f"/api/v1/change-requests/{first['id']}/approve", {"comment": "x"},
                                              format="json")
        assert again.status_code == 409

    @pytest.mark.parametrize("body", [{}, {"comment": ""}, {"comment": "ok", "force": True}, {"comment": 5}])
    def test_bad_decisions_are_400_and_write_nothing(self, as_user, people: People, body: dict[str, Any]) -> None:
        change = propose(as_user, people.infosec)
        before = rules_state()
        response = as_user(people.infosec2).post(f"/api/v1/change-requests/{change['id']}/approve", body,
                                                 format="json")
        assert response.status_code == 400
        problem_of(response)
        assert rules_state() == before
