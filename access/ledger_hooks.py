"""The access domain's answers to the ledger (connected from ``AccessConfig.ready()``).

The ledger imports nothing of ours: it asks who may do what through ``audit.policy`` and
announces refused reveals and refused reads through ``audit.signals``. This module registers the
role rules (InfoSec and auditors read and export the ledger; InfoSec sees every export, reveals
personal data and manages legal holds), the multi-factor rule for reveals and exports
(``access.authn``) and the account closure that starts retention's clock, and counts refused
reveals and refused reads of the ledger as ``access.check_denied``. It also tells exports what a
``dataset`` scope means and which datasets a viewer may pick in the export form
(``audit.export.sections``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.dispatch import receiver

from access.authn import require_recent_mfa
from access.errors import StepUpRequired
from access.models import Dataset, ExternalIdentity
from access.roles import AUDITOR, INFOSEC, has_role
from access.selectors import datasets_visible_to
from access.services.accounts import account_closed_at
from access.services.checks import denial_record
from audit import policy, signals
from audit.export import sections
from audit.export.errors import ExportError
from audit.ledger import Actor, Subject, account_pk
from audit.pii import REVEAL_PERMISSION, REVEAL_WINDOW_RESOURCE

_ROLES = {
    policy.Action.READ_LEDGER: (INFOSEC, AUDITOR),
    policy.Action.EXPORT: (INFOSEC, AUDITOR),
    policy.Action.SEE_EVERY_EXPORT: (INFOSEC,),
    policy.Action.REVEAL_PERSONAL_DATA: (INFOSEC,),
    policy.Action.MANAGE_LEGAL_HOLDS: (INFOSEC,),
}


class RolePolicy:
    """By role only: ``is_superuser`` and ``is_staff`` grant nothing here (the operator who ran
    createsuperuser is no side door into the ledger, its exports or its personal data)."""

    def may(self, user: object, action: policy.Action) -> bool:
        if getattr(user, "pk", None) is None:  # anonymous, or an account never saved
            return False
        return has_role(user, *_ROLES[action])

    def account_closed_at(self, user: Any) -> datetime | None:
        return account_closed_at(user)

    def step_up_refusal(self, user: object, action: str) -> str | None:
        """The multi-factor rule of ``access.authn.require_recent_mfa``, as the ledger asks it."""
        try:
            require_recent_mfa(actor=user, action=action)
        except StepUpRequired as exc:
            return str(exc)
        return None


policy.policy_register(RolePolicy())


@receiver(signals.reveal_refused, dispatch_uid="access.reveal_refused")
def _reveal_refused(sender: object, *, user: Any, seq: int, **kwargs: object) -> None:
    pk = getattr(user, "pk", None)
    denial_record(
        principal=f"user:{pk}" if pk is not None else "anonymous",
        actor=Actor.user(user) if pk is not None else Actor.system("anonymous"),
        resource_type="ledger", resource_id=0, window_resource=REVEAL_WINDOW_RESOURCE,
        entry_subject=Subject("ledger_entry", str(seq)), entry_resource=f"ledger_entry:{seq}",
        permission=REVEAL_PERMISSION, level=None,
    )


# Refused reads of the ledger are counted per person over the whole ledger, like refused reveals: walking the
# explorer, or polling the API with a token that lacks the role, is one access.check_denied per interval.
LEDGER_READ_PERMISSION = "read_ledger"
LEDGER_READ_WINDOW_RESOURCE = "ledger:entries"


@receiver(signals.ledger_read_refused, dispatch_uid="access.ledger_read_refused")
def _ledger_read_refused(sender: object, *, user: Any, view: str, service: str | None = None,
                         **kwargs: object) -> None:
    """An invalid access attempt on the audit log (PCI DSS v4 10.2.1.4), by a person or a token's account."""
    denial_record(
        principal=f"user:{user.pk}", actor=Actor.service(service) if service else Actor.user(user),
        resource_type="ledger", resource_id=0, window_resource=LEDGER_READ_WINDOW_RESOURCE,
        entry_subject=Subject("ledger", "entries"), entry_resource=f"ledger:{view}",
        permission=LEDGER_READ_PERMISSION, level=None,
    )


def dataset_subjects(name: str, size: int | None = None) -> list[tuple[str, str]]:
    """A ``dataset`` export scope: the dataset's own subject, once the dataset is known."""
    if not Dataset.objects.filter(name=name).exists():
        raise ExportError(f"no dataset named {name!r}", code="unknown_dataset")
    return [("dataset", name)]


def dataset_choices(viewer: Any) -> list[str]:
    """The datasets ``viewer`` may see (``selectors.datasets_visible_to``), for the export form."""
    return list(datasets_visible_to(viewer).order_by("name").values_list("name", flat=True))


sections.scope_resolver_register("dataset", dataset_subjects)
sections.scope_choices_register("dataset", dataset_choices)


@receiver(signals.subject_erased, dispatch_uid="access.sso.erase_links_with_the_person")
def _erase_provider_links(sender: object, *, data_subject: str, **kwargs: object) -> None:
    """A person's erasure takes their links to identity providers too (the provider's ``sub`` identifies them
    there). In the erasing transaction; the erased account can then never be signed in to again through SSO."""
    pk = account_pk(data_subject)
    if pk is not None:
        ExternalIdentity.objects.filter(user_id=pk).delete()
