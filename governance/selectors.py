"""Reads of the governance domain."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from access.classification import LEVELS, RESTRICTED, allows
from access.models import APPROVE_PROMOTION, Grant
from access.principals import account_ids
from access.roles import AUDITOR, INFOSEC, role_names
from access.selectors import active_grants
from access.services.checks import check
from audit.receipts import proven
from governance.models import (
    AdmissionDecision,
    BreakGlassReview,
    ComplianceViolation,
    DeploymentReceipt,
    Environment,
    FreezeWindow,
    IdentityLink,
    LiveDeployment,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
    RegisteredModel,
)
from governance.policy import DEFAULT_RULES, Policy, parse_policy
from governance.policy_floor import effective_policy


def policy_for(*, environment: Environment, model_id: int | None) -> tuple[Policy, PromotionPolicy | None]:
    """The policy a decision about ``model_id`` in ``environment`` follows, and the stored row it comes from.

    The row: the model's own policy for the environment, else the environment's default (None: the
    built-in one). The policy is that row's raised to the environment's floor (``POLICY_FLOOR``,
    see ``policy_floor.raise_to_floor``): a row below it (stored before the floor was raised, or
    written behind the product's back) never decides with less than the floor."""
    rows = {
        p.model_id: p
        for p in PromotionPolicy.objects.filter(environment=environment).filter(
            Q(model__isnull=True) | Q(model_id=model_id)
        )
    }
    row = rows.get(model_id) or rows.get(None)
    rules = row.rules if row else DEFAULT_RULES
    return effective_policy(environment.name, parse_policy(rules), rules), row


def policies_for(
    pairs: set[tuple[int, int]], *, environment_names: Mapping[int, str] | None = None
) -> dict[tuple[int, int], Policy]:
    """``policy_for`` of many (environment id, model id) pairs, resolved and floored the same way, in one
    query (two when the caller does not pass the environments' names)."""
    if not pairs:
        return {}
    env_ids = {env for env, _ in pairs}
    if environment_names is None:
        environment_names = dict(Environment.objects.filter(pk__in=env_ids).values_list("pk", "name"))
    rows = {
        (p.environment_id, p.model_id): p
        for p in PromotionPolicy.objects.filter(environment_id__in=env_ids).filter(
            Q(model__isnull=True) | Q(model_id__in={model for _, model in pairs})
        )
    }
    parsed: dict[tuple[int, int | None], Policy] = {}
    out: dict[tuple[int, int], Policy] = {}
    for env, model in pairs:
        row = rows.get((env, model)) or rows.get((env, None))
        key = (env, row.pk if row else None)
        if key not in parsed:
            rules = row.rules if row else DEFAULT_RULES
            parsed[key] = effective_policy(environment_names[env], parse_policy(rules), rules)
        out[(env, model)] = parsed[key]
    return out


def active_freeze(*, environment: Environment, at: datetime) -> FreezeWindow | None:
    return FreezeWindow.objects.filter(environment=environment, starts_at__lte=at, ends_at__gt=at).first()


def previous_environment(environment: Environment) -> Environment | None:
    return Environment.objects.filter(order__lt=environment.order).order_by("-order").first()


def previous_environment_with_live(
    environment: Environment, *, model_id: int
) -> tuple[Environment | None, int | None, datetime | None]:
    """``previous_environment(environment)`` and, there, the version live for ``model_id`` and since when
    (``live_version``'s ``version_id`` and ``since``; None, None: nothing live), in one query."""
    live = LiveDeployment.objects.filter(environment=OuterRef("pk"), model_id=model_id)
    previous = (
        Environment.objects.filter(order__lt=environment.order).order_by("-order")
        .annotate(live_version_id=Subquery(live.values("version_id")[:1]),
                  live_since=Subquery(live.values("since")[:1]))
        .first()
    )
    if previous is None:
        return None, None, None
    return previous, previous.live_version_id, previous.live_since


def live_version(*, model_id: int, environment: Environment) -> LiveDeployment | None:
    return LiveDeployment.objects.select_related("version").filter(model_id=model_id, environment=environment).first()


def deployed_since(*, version: ModelVersion, environment: Environment) -> datetime | None:
    """When ``version`` was last deployed to ``environment`` and not rolled back, if ever."""
    return (
        PromotionRequest.objects.filter(version=version, environment=environment, state=PromotionRequest.State.DEPLOYED)
        .order_by("-deployed_at")
        .values_list("deployed_at", flat=True)
        .first()
    )


def requests_awaiting(user: User) -> list[PromotionRequest]:
    """Pending requests this user may approve: in one of the policy's approval groups, not requested
    nor registered (``ModelVersion.registered_by``) by them as a person (their service accounts count
    as them), and holding ``approve_promotion`` where the model or environment restricts approvals
    to its holders. The same rules as ``services.promotion_approve``."""
    mine = role_names(user)
    if not mine:
        return []  # approval groups are roles: nobody without one approves anything
    accounts = account_ids(user)
    candidates = list(
        PromotionRequest.objects.filter(state=PromotionRequest.State.PENDING)
        .exclude(requested_by_id__in=accounts)
        .exclude(version__registered_by_id__in=accounts)
        .select_related("version__model", "environment", "requested_by")
    )
    # A few queries in all (the requests, every policy they need, the restricting grants), however many.
    policies = policies_for({(r.environment_id, r.version.model_id) for r in candidates},
                            environment_names={r.environment_id: r.environment.name for r in candidates})
    candidates = [r for r in candidates
                  if mine & set(policies[(r.environment_id, r.version.model_id)].approval_groups)]
    restricting = _approve_promotion_grants({r.version.model_id for r in candidates},
                                            {r.environment_id for r in candidates})
    if not restricting:
        return candidates
    groups = _group_ids(user)
    return [r for r in candidates
            if not _missing(user, groups, restricting, r.version.model_id, r.environment_id)]


# --- approve_promotion: an optional, per-model and per-environment restriction of approvals -------------
# Without any active approve_promotion grant on a model (or an environment) the policy's groups alone
# decide who approves; once one exists, only its holders (directly or through a group) may approve,
# reject or request changes there, and they must still be in one of the policy's groups.

_Holders = dict[tuple[str, int], list[tuple[int | None, int | None]]]


def _approve_promotion_grants(model_ids: set[int], environment_ids: set[int]) -> _Holders:
    """The active approve_promotion grants on these models and environments: ``{(type, id): [(user, group)]}``."""
    if not model_ids and not environment_ids:
        return {}
    found: _Holders = {}
    rows = active_grants().filter(permission=APPROVE_PROMOTION).filter(
        Q(resource_type="registered_model", resource_id__in=model_ids)
        | Q(resource_type="environment", resource_id__in=environment_ids)
    ).values_list("resource_type", "resource_id", "user_id", "group_id")
    for resource_type, resource_id, user_id, group_id in rows:
        found.setdefault((resource_type, resource_id), []).append((user_id, group_id))
    return found


def _group_ids(user: User) -> set[int]:
    return set(User.groups.through.objects.filter(user_id=user.pk).values_list("group_id", flat=True))


def _missing(user: User, groups: set[int], holders: _Holders, model_id: int, environment_id: int) -> list[str]:
    missing = []
    for key, label in ((("registered_model", model_id), "the model"), (("environment", environment_id),
                                                                          "the environment")):
        grants = holders.get(key)
        if grants and not any(u == user.pk or (g is not None and g in groups) for u, g in grants):
            missing.append(label)
    return missing


def missing_approve_promotion(user: User, model_id: int, environment_id: int) -> list[str]:
    """Which of the model and the environment restrict approvals to approve_promotion holders that
    ``user`` is not one of (empty: the restriction does not stand in the way)."""
    holders = _approve_promotion_grants({model_id}, {environment_id})
    if not holders:
        return []
    return _missing(user, _group_ids(user), holders, model_id, environment_id)


class AdmissionStatus:
    """Why an admission answer is what it is (``Admission.status``); stable strings clients may branch on."""

    APPROVED = "approved"  # live, or rolling out, under an approved promotion (or a reviewed break-glass)
    BREAK_GLASS_REVIEW_OPEN = "break_glass_review_open"  # admitted; the post-hoc review is due at review_due_at
    BREAK_GLASS_REVIEW_OVERDUE = "break_glass_review_overdue"  # refused: the review's deadline passed
    ABOVE_CEILING = "classification_above_ceiling"  # refused: training data now above the environment's ceiling
    NOT_APPROVED = "not_approved"  # refused: no approved promotion puts this version here


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str
    promotion_id: int | None = None
    mode: str | None = None  # "live", "canary" or "shadow"; None when refused
    status: str = AdmissionStatus.NOT_APPROVED
    review_due_at: datetime | None = None  # the break-glass review's deadline, when there is one not yet approved
    live_version: int | None = None  # not_approved: the version live there instead, if any


def _above_ceiling(level: str, ceiling: str, environment_name: str) -> str | None:
    """Why training data at ``level`` may not run under the environment's ``ceiling``, or None when it may.

    An empty or unknown level (uncatalogued training data) is admissible only where the
    ceiling is ``restricted``, the most sensitive level; an unknown ceiling admits nothing.
    """
    if ceiling not in LEVELS:
        return f"{environment_name}'s ceiling {ceiling or '(none)'} is not a classification level"
    if level not in LEVELS:
        if ceiling == RESTRICTED:
            return None
        return f"trained on data of unknown classification, above {environment_name}'s ceiling {ceiling}"
    if allows(ceiling, level):
        return None
    return f"trained on {level} data, above {environment_name}'s ceiling {ceiling}"


def _utc(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _admit(
    environment_name: str, promotion_id: int, mode: str, what: str, approved: str, facts: tuple[Any, ...],
    now: datetime,
) -> Admission:
    """Re-check, at check time, what may have changed since the promotion was approved.

    ``facts`` are the version's classification, the environment's ceiling, whether the
    promotion is break-glass, and its review's state and deadline (None without a review).
    """
    level, ceiling, is_break_glass, review_state, due_at = facts
    above = _above_ceiling(level or "", ceiling or "", environment_name)
    if above is not None:
        return Admission(False, above, promotion_id, None, AdmissionStatus.ABOVE_CEILING)
    if not is_break_glass or review_state == BreakGlassReview.State.APPROVED:
        return Admission(True, approved, promotion_id, mode, AdmissionStatus.APPROVED)
    if due_at is None:  # a break-glass promotion without its review: nothing vouches for it
        return Admission(False, f"{what} by break-glass, which has no review on record", promotion_id, None,
                         AdmissionStatus.BREAK_GLASS_REVIEW_OVERDUE)
    if review_state == BreakGlassReview.State.OVERDUE or due_at <= now:
        return Admission(False, f"{what} by break-glass, whose review was due {_utc(due_at)} and is overdue",
                         promotion_id, None, AdmissionStatus.BREAK_GLASS_REVIEW_OVERDUE, due_at)
    return Admission(True, f"{what} by break-glass; its review is due {_utc(due_at)}", promotion_id, mode,
                     AdmissionStatus.BREAK_GLASS_REVIEW_OPEN, due_at)


def admission_check(*, model_name: str, version: int, environment_name: str) -> Admission:
    """May ``model_name`` version ``version`` run in ``environment_name``? At most two indexed queries.

    Admitted: the live version, or the candidate of a canary/shadow rollout in progress,
    as long as, at check time, its training data's classification is within the
    environment's ceiling and it is not a break-glass promotion whose review is overdue
    (open and past its deadline counts, whether or not the beat task flagged it yet). A
    break-glass promotion under an open review is admitted with status
    ``break_glass_review_open`` and the deadline, never as ``approved``.
    """
    now = timezone.now()
    live = (
        LiveDeployment.objects.filter(model__name=model_name, environment__name=environment_name)
        .values_list(
            "version__version", "promotion_id", "version__data_classification",
            "environment__max_data_classification", "promotion__is_break_glass",
            "promotion__break_glass_review__state", "promotion__break_glass_review__due_at",
        )
        .first()
    )
    if live is not None and live[0] == version:
        return _admit(environment_name, live[1], "live", "live", "live under an approved promotion", live[2:], now)
    rollout = (
        PromotionRequest.objects.filter(
            version__model__name=model_name,
            version__version=version,
            environment__name=environment_name,
            state=PromotionRequest.State.DEPLOYING,
        )
        .exclude(strategy=PromotionRequest.Strategy.FULL)
        .values_list(
            "id", "strategy", "version__data_classification", "environment__max_data_classification",
            "is_break_glass", "break_glass_review__state", "break_glass_review__due_at",
        )
        .first()
    )
    if rollout is not None:
        return _admit(environment_name, rollout[0], rollout[1], f"in {rollout[1]} rollout",
                      f"{rollout[1]} rollout of an approved promotion", rollout[2:], now)
    if live is None:
        return Admission(False, f"no version of {model_name} is approved for {environment_name}")
    return Admission(False, f"version {live[0]} is the approved version of {model_name} in {environment_name}",
                     live_version=live[0])


# --- visibility ----------------------------------------------------------------------------------

# Roles whose work is oversight of every model: they see all of them.
SEE_ALL_ROLES = ("infosec", "auditor", "approver", "model-risk")


def _sees_all(user: User) -> bool:
    return bool(role_names(user) & frozenset(SEE_ALL_ROLES))


def _live_model_grant(user: User, model_ref: str) -> Exists:
    """A live grant (any permission) on the model held by the user or one of their groups.

    ``model_ref`` names the outer query's model id (``"pk"`` or ``"version__model_id"``). The
    ``Grant`` table is the source of truth (guardian only mirrors it) and knows about expiry.
    """
    groups = User.groups.through.objects.filter(user_id=user.pk).values("group_id")
    return Exists(
        Grant.objects.filter(
            resource_type="registered_model",
            resource_id=OuterRef(model_ref),
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).filter(Q(user_id=user.pk) | Q(group_id__in=groups))
    )


def _visible_model_filter(user: User, prefix: str) -> Q:
    """Rows of models ``user`` owns or holds a live grant on. Callers first ask ``_sees_all``:
    an oversight role gets the unfiltered queryset, free of subqueries (an empty ``Q()`` here
    would not do: ``Q() | other`` is ``other``)."""
    model_ref = f"{prefix}pk"
    return Q(**{f"{prefix}owner_id": user.pk}) | Q(_live_model_grant(user, model_ref))


def models_visible_to(user: User | AnonymousUser) -> QuerySet[RegisteredModel]:
    """Registered models ``user`` may see: all for oversight roles (infosec, auditor, approver,
    model-risk); otherwise those they own or hold a live grant on, directly, through a group, or
    as a service account's user. One query, with no per-row checks (the roles are read once per
    user object, see ``access.roles.role_names``)."""
    if not user.is_authenticated or not user.is_active:
        return RegisteredModel.objects.none()
    if _sees_all(user):
        return RegisteredModel.objects.all()
    return RegisteredModel.objects.filter(_visible_model_filter(user, ""))


def model_versions_visible_to(user: User | AnonymousUser) -> QuerySet[ModelVersion]:
    """Versions of the models ``user`` may see (see ``models_visible_to``)."""
    if not user.is_authenticated or not user.is_active:
        return ModelVersion.objects.none()
    if _sees_all(user):
        return ModelVersion.objects.all()
    return ModelVersion.objects.filter(_visible_model_filter(user, "model__"))


def promotion_requests_visible_to(user: User | AnonymousUser) -> QuerySet[PromotionRequest]:
    """Promotion requests ``user`` may see: those of models they may see, and their own requests."""
    if not user.is_authenticated or not user.is_active:
        return PromotionRequest.objects.none()
    if _sees_all(user):
        return PromotionRequest.objects.all()
    return PromotionRequest.objects.filter(
        _visible_model_filter(user, "version__model__") | Q(requested_by_id=user.pk)
    )


def break_glass_reviews_visible_to(user: User | AnonymousUser) -> QuerySet[BreakGlassReview]:
    """Break-glass reviews of the promotion requests ``user`` may see."""
    if not user.is_authenticated or not user.is_active:
        return BreakGlassReview.objects.none()
    if _sees_all(user):
        return BreakGlassReview.objects.all()
    return BreakGlassReview.objects.filter(
        _visible_model_filter(user, "request__version__model__") | Q(request__requested_by_id=user.pk)
    )


def admission_decisions_visible_to(user: User | AnonymousUser) -> QuerySet[AdmissionDecision]:
    """Kubernetes admission decisions: every one for the oversight roles; for anybody else those naming a model
    they may see (a decision naming no model, or one nobody registered, only for the oversight roles)."""
    if not user.is_authenticated or not user.is_active:
        return AdmissionDecision.objects.none()
    if _sees_all(user):
        return AdmissionDecision.objects.select_related("environment")
    return AdmissionDecision.objects.select_related("environment").filter(
        model__in=models_visible_to(user).values("name"))


# Roles that may read the compliance violations.
VIOLATION_READERS = ("infosec", "auditor")


def may_see_violations(user: User | AnonymousUser) -> bool:
    return bool(role_names(user) & frozenset(VIOLATION_READERS))


def violations_visible_to(user: User | AnonymousUser) -> QuerySet[ComplianceViolation]:
    """Every violation for InfoSec and auditors, none for anybody else."""
    if not may_see_violations(user):
        return ComplianceViolation.objects.none()
    return ComplianceViolation.objects.all()


def policies_visible_to(user: User | AnonymousUser) -> QuerySet[PromotionPolicy]:
    """Environment default policies, and the model-specific ones of models ``user`` may see."""
    if not user.is_authenticated or not user.is_active:
        return PromotionPolicy.objects.none()
    if _sees_all(user):
        return PromotionPolicy.objects.all()
    return PromotionPolicy.objects.filter(Q(model__isnull=True) | _visible_model_filter(user, "model__"))


def may_report_progress(user: User, request: PromotionRequest) -> bool:
    """Who may report a rollout's progress: the requester, the model's owner, InfoSec, or a holder
    (say, the deploying runtime's service account) of a live ``deploy_to`` grant on the model or
    the environment."""
    if user.pk in (request.requested_by_id, request.version.model.owner_id):
        return True
    if "infosec" in role_names(user):
        return True
    return bool(check(user, "deploy_to", request.version.model, record_denial=False)
                or check(user, "deploy_to", request.environment, record_denial=False))


# --- MLflow identity links (InfoSec manages them; auditors read) ------------------------------------------


_LINK_READERS = frozenset({INFOSEC, AUDITOR})


def may_see_identity_links(user: User | AnonymousUser) -> bool:
    """InfoSec and auditors: a link names an MLflow identity, which is personal data."""
    return bool(user.is_authenticated and user.is_active and role_names(user) & _LINK_READERS)


def identity_links_visible_to(user: User | AnonymousUser) -> QuerySet[IdentityLink]:
    """Every identity link for InfoSec and auditors, none for anybody else (with the accounts they name)."""
    if not may_see_identity_links(user):
        return IdentityLink.objects.none()
    return IdentityLink.objects.select_related("account", "created_by")


# --- deployment receipts (docs/receipts.md) -----------------------------------------------------------------


RECEIPT_FORMAT = "deployment-receipt/v1"


def receipt_of(
    user: User | AnonymousUser, promotion_id: int
) -> tuple[PromotionRequest | None, DeploymentReceipt | None]:
    """(the promotion if ``user`` may see it, its ``DeploymentReceipt`` or None): one query.

    Visibility is the promotion detail's (``promotion_requests_visible_to``): unknown and invisible
    are both (None, None).
    """
    promotion = (promotion_requests_visible_to(user).select_related("receipt", "version__model", "environment")
                 .filter(pk=promotion_id).first())
    if promotion is None:
        return None, None
    return promotion, getattr(promotion, "receipt", None)


def receipt_document(receipt: DeploymentReceipt) -> dict[str, Any]:
    """The receipt as served (``GET /api/v1/promotions/{id}/receipt``, the console's download): the signed
    note, the approval entry as hashed, the newest checkpoint and the entry's inclusion proof in it.

    Raises ``audit.receipts.ProofPending`` while no checkpoint covers the approval entry. Read only.
    """
    return {"format": RECEIPT_FORMAT, "note": receipt.note, **proven(seq=receipt.approval_seq)}
