"""The models API (/api/v1/models…) and the visibility selectors behind it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from access.models import Grant
from governance import selectors
from governance.models import PromotionRequest
from tests.access.helpers import grant
from tests.api.helpers import problem_of
from tests.catalog import Resources
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.personas import People
from tests.promotions import Gov

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]


def names(qs) -> set[str]:  # type: ignore[no-untyped-def]
    return set(qs.values_list("name", flat=True))


# --- visibility selectors --------------------------------------------------------------------


class TestModelsVisibleTo:
    def test_oversight_roles_see_every_model(self, people: People, res: Resources, other_model, approver) -> None:
        for user in (people.infosec, people.auditor, approver):
            assert names(selectors.models_visible_to(user)) == {"fraud-detector", "credit-limit"}

    def test_owner_sees_own_model_only(self, people: People, res: Resources, other_model) -> None:
        assert names(selectors.models_visible_to(people.owner)) == {"fraud-detector"}

    def test_outsider_and_anonymous_see_nothing(self, people: People, res: Resources, other_model) -> None:
        assert names(selectors.models_visible_to(people.outsider)) == set()
        assert names(selectors.models_visible_to(AnonymousUser())) == set()

    def test_model_owner_role_alone_does_not_see_others_models(self, people: People, res: Resources) -> None:
        assert names(selectors.models_visible_to(people.requester)) == set()

    def test_direct_grant_makes_visible(self, people: People, res: Resources) -> None:
        grant(people.owner, people.outsider, res.model, "view_metadata")
        assert names(selectors.models_visible_to(people.outsider)) == {"fraud-detector"}

    def test_group_grant_makes_visible(self, people: People, res: Resources) -> None:
        grant(people.infosec, people.team, res.model, "deploy_to")
        assert names(selectors.models_visible_to(people.requester)) == {"fraud-detector"}

    def test_service_account_grant_makes_visible(self, people: People, res: Resources, service_account) -> None:
        assert names(selectors.models_visible_to(service_account.user)) == set()
        grant(people.owner, service_account.user, res.model, "view_metadata")
        assert names(selectors.models_visible_to(service_account.user)) == {"fraud-detector"}

    def test_expired_or_revoked_grant_does_not(self, people: People, res: Resources) -> None:
        from access.services.grants import grant_revoke

        g = grant(people.owner, people.outsider, res.model, "view_metadata")
        Grant.objects.filter(pk=g.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        assert names(selectors.models_visible_to(people.outsider)) == set()
        g2 = grant(people.owner, people.outsider, res.model, "deploy_to")
        assert names(selectors.models_visible_to(people.outsider)) == {"fraud-detector"}
        grant_revoke(actor=people.owner, grant=g2, reason="no longer needed")
        assert names(selectors.models_visible_to(people.outsider)) == set()

    def test_grant_on_another_resource_type_with_same_id_does_not(self, people: People, res: Resources) -> None:
        # given a grant on a dataset whose id equals the model's id
        grant(people.owner, people.outsider, res.internal, "view_metadata")
        Grant.objects.filter(resource_type="dataset").update(resource_id=res.model.pk)
        assert names(selectors.models_visible_to(people.outsider)) == set()

    def test_inactive_user_sees_nothing(self, people: People, res: Resources) -> None:
        people.owner.is_active = False
        assert names(selectors.models_visible_to(people.owner)) == set()

    def test_one_query_whatever_the_number_of_models(
        self, people: People, res: Resources, django_assert_num_queries
    ) -> None:
        for i in range(15):
            model = RegisteredModelFactory(name=f"m-{i}", owner=people.owner if i % 2 else None)
            if i % 3 == 0:
                grant(people.infosec, people.team, model, "view_metadata")
        # the user's roles (read once per user object), then the models
        with django_assert_num_queries(2):
            visible = list(selectors.models_visible_to(people.requester))
        assert {m.name for m in visible} == {"m-0", "m-3", "m-6", "m-9", "m-12"}
        with django_assert_num_queries(1):
            assert len(list(selectors.models_visible_to(people.requester))) == 5

    def test_versions_follow_their_model(self, people: People, res: Resources, other_model) -> None:
        refs = {(v.model.name, v.version) for v in selectors.model_versions_visible_to(people.owner)}
        assert refs == {("fraud-detector", 1), ("fraud-detector", 2)}
        assert not selectors.model_versions_visible_to(people.outsider).exists()
        assert selectors.model_versions_visible_to(people.auditor).count() == 3


class TestPromotionRequestsVisibleTo:
    def test_visible_with_model_or_as_requester(self, people: People, gov: Gov, other_model) -> None:
        other_version = other_model.versions.get()
        theirs = PromotionRequest.objects.create(
            version=other_version, environment=gov.dev, requested_by=people.requester, reason="try"
        )
        ours = PromotionRequest.objects.get(version=gov.v2, environment=gov.dev)
        assert set(selectors.promotion_requests_visible_to(people.owner)) == {ours}
        assert set(selectors.promotion_requests_visible_to(people.requester)) == {theirs}
        assert set(selectors.promotion_requests_visible_to(people.auditor)) == {ours, theirs}
        assert not selectors.promotion_requests_visible_to(people.outsider).exists()

    def test_one_query(self, people: People, gov: Gov, django_assert_num_queries) -> None:
        for i in range(5):
            v = ModelVersionFactory(model=gov.model, version=10 + i)
            PromotionRequest.objects.create(version=v, environment=gov.dev, requested_by=people.owner, reason="r")
        # the owner's roles (read once per user object), then the requests
        with django_assert_num_queries(2):
            rows = list(selectors.promotion_requests_visible_to(people.owner).select_related(
                "version__model", "environment", "requested_by"))
        assert len(rows) == 6
        with django_assert_num_queries(1):
            assert len(list(selectors.promotion_requests_visible_to(people.owner))) == 6


# --- the endpoints ---------------------------------------------------------------------------


class TestModelList:
    def test_owner_sees_own_models(self, as_user, people: People, gov: Gov, other_model) -> None:
        body = as_user(people.owner).get("/api/v1/models").json()
        assert [m["name"] for m in body["results"]] == ["fraud-detector"]
        (model,) = body["results"]
        assert model["owner"] == "olga" and model["latest_version"] == 2
        assert model["live"][0]["environment"] == "dev" and model["live"][0]["version"] == 2

    def test_oversight_sees_all_and_filters(self, as_user, people: People, gov: Gov, other_model) -> None:
        client = as_user(people.auditor)
        assert client.get("/api/v1/models").json()["count"] == 2
        assert [m["name"] for m in client.get("/api/v1/models", {"name": "CREDIT"}).json()["results"]] == [
            "credit-limit"]
        assert [m["name"] for m in client.get("/api/v1/models", {"owner": "olga"}).json()["results"]] == [
            "fraud-detector"]

    def test_outsider_sees_none(self, as_user, people: People, gov: Gov) -> None:
        assert as_user(people.outsider).get("/api/v1/models").json()["count"] == 0

    def test_unknown_filter_is_400(self, as_user, people: People, gov: Gov) -> None:
        response = as_user(people.owner).get("/api/v1/models", {"colour": "red"})
        assert response.status_code == 400
        assert problem_of(response)["errors"][0]["field"] == "colour"

    def test_bounded_queries(self, as_user, people: People, gov: Gov, django_assert_max_num_queries) -> None:
        for i in range(25):
            model = RegisteredModelFactory(name=f"m-{i:02}", owner=people.owner)
            ModelVersionFactory(model=model, version=1)
        client = as_user(people.owner)
        with django_assert_max_num_queries(6):
            body = client.get("/api/v1/models", {"page_size": 100}).json()
        assert body["count"] == 26

    def test_token_scope(self, token_for, people: People, gov: Gov) -> None:
        client = token_for(["models:read"])
        grant(people.owner, client.service_account.user, gov.model, "view_metadata")
        assert client.get("/api/v1/models").json()["count"] == 1
        assert token_for(["promotions:read"]).get("/api/v1/models").status_code == 403


class TestModelDetail:
    def test_detail_with_environments(self, as_user, people: People, gov: Gov) -> None:
        body = as_user(people.owner).get("/api/v1/models/fraud-detector").json()
        assert body["versions"] == 2 and body["latest_version"] == 2
        assert [(e["environment"], e["alias"], e["live_version"]) for e in body["environments"]] == [
            ("dev", "dev", 2), ("staging", "staging", None), ("production", "production", None)]

    def test_invisible_and_unknown_are_404(self, as_user, people: People, gov: Gov, other_model) -> None:
        client = as_user(people.owner)
        for path in ("/api/v1/models/credit-limit", "/api/v1/models/nope", "/api/v1/models/credit-limit/versions",
                     "/api/v1/models/credit-limit/versions/1", "/api/v1/models/fraud-detector/versions/9"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert problem_of(response)["code"] == "not_found"
        assert as_user(people.outsider).get("/api/v1/models/fraud-detector").status_code == 404

    def test_versions(self, as_user, people: People, gov: Gov, django_assert_max_num_queries) -> None:
        for i in range(10):
            ModelVersionFactory(model=gov.model, version=10 + i)
        client = as_user(people.owner)
        with django_assert_max_num_queries(6):
            body = client.get("/api/v1/models/fraud-detector/versions").json()
        assert body["count"] == 12
        assert [v["version"] for v in body["results"]][:3] == [19, 18, 17]

    def test_version_detail_with_lineage(self, as_user, people: People, gov: Gov, res: Resources) -> None:
        from audit.ledger import Actor
        from governance.services.lineage import lineage_link

        lineage_link(actor=Actor.user(people.owner), version=gov.v1, dataset=res.confidential, role="training")
        body = as_user(people.auditor).get("/api/v1/models/fraud-detector/versions/1").json()
        assert body["run_id"] == "0123456789abcdef0123456789abcdef"
        assert body["artifact_digest"] == "sha256:" + "ab" * 32
        assert body["metrics"] == {"auc": 0.94}
        assert body["data_classification"] == "confidential"
        assert body["lineage"]["level"] == "confidential"
        assert body["lineage"]["datasets"] == [{"dataset": "customers", "role": "training", "source": "declared",
                                                "level": "confidential"}]
        assert body["live_in"] == []
        assert as_user(people.owner).get("/api/v1/models/fraud-detector/versions/2").json()["live_in"] == ["dev"]
