"""Role changes are authorised by the service, so every caller (admin, commands, scripts) inherits the rules.

The attacks: InfoSec gives themselves break-glass (directly or through a service account
they own), an auditor or a superuser without a role hands out InfoSec, a bot is made an
InfoSec officer by another InfoSec, a change without a reason. Each is refused and
nothing is written: no membership, no ledger entry.
"""
from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from access.errors import NotPermitted, ServiceError
from access.roles import AUDITOR, BREAK_GLASS, INFOSEC, MODEL_OWNER
from access.services.roles import user_role_add, user_role_add_by_system, user_role_remove, user_role_remove_by_system
from access.services.service_accounts import service_account_create
from audit import ledger
from audit.models import Entry
from tests.access.helpers import writes_nothing
from tests.factories import SuperuserFactory
from tests.personas import People, fresh

pytestmark = pytest.mark.django_db


def _roles(user: User) -> set[str]:
    return set(fresh(user).groups.values_list("name", flat=True))


def test_infosec_cannot_give_themselves_break_glass(people: People) -> None:
    officer = people.infosec
    with writes_nothing(), pytest.raises(NotPermitted, match="nobody changes their own roles"):
        user_role_add(actor=officer, target=officer, role=BREAK_GLASS, reason="INC-9 I need it")
    assert BREAK_GLASS not in _roles(officer)


def test_infosec_cannot_drop_their_own_role_either(people: People) -> None:
    with writes_nothing(), pytest.raises(NotPermitted, match="nobody changes their own roles"):
        user_role_remove(actor=people.infosec, target=people.infosec, role=INFOSEC, reason="leaving")
    assert INFOSEC in _roles(people.infosec)


def test_infosec_cannot_act_through_or_on_their_service_account(people: People) -> None:
    officer = people.infosec
    bot = service_account_create(actor=officer, name="ines-bot", description="").user
    # the bot is theirs: no role for it from them, whatever the role
    with writes_nothing(), pytest.raises(NotPermitted, match="nobody changes their own roles"):
        user_role_add(actor=officer, target=bot, role=MODEL_OWNER, reason="pipeline")
    assert _roles(bot) == set()


def test_a_service_account_never_gets_a_sensitive_role(people: People) -> None:
    # another InfoSec may not make rita's bot an InfoSec officer or a break-glass holder
    bot = service_account_create(actor=people.requester, name="rita-bot", description="").user
    for role in (INFOSEC, BREAK_GLASS):
        with writes_nothing(), pytest.raises(NotPermitted, match="never given to a service account"):
            user_role_add(actor=people.infosec2, target=bot, role=role, reason="SEC-3")
        with writes_nothing(), pytest.raises(NotPermitted, match="never given to a service account"):
            user_role_add_by_system(component="provisioning", target=bot, role=role)
    assert _roles(bot) == set()


@pytest.mark.parametrize("persona", ["auditor", "outsider", "requester", "steward", "superuser"])
def test_only_infosec_changes_roles(people: People, persona: str) -> None:
    actor = SuperuserFactory() if persona == "superuser" else getattr(people, persona)
    with writes_nothing(), pytest.raises(NotPermitted, match="only InfoSec may change roles"):
        user_role_add(actor=actor, target=people.outsider, role=INFOSEC, reason="let me in")
    with writes_nothing(), pytest.raises(NotPermitted, match="only InfoSec may change roles"):
        user_role_remove(actor=actor, target=people.infosec, role=INFOSEC, reason="go away")
    assert _roles(people.outsider) == set() and INFOSEC in _roles(people.infosec)


def test_an_inactive_infosec_changes_nothing(people: People) -> None:
    User.objects.filter(pk=people.infosec.pk).update(is_active=False)
    with writes_nothing(), pytest.raises(NotPermitted, match="only InfoSec"):
        user_role_add(actor=people.infosec, target=people.outsider, role=AUDITOR, reason="SEC-1")


def test_a_role_taken_a_moment_ago_counts_at_once(people: People) -> None:
    officer = people.infosec
    assert INFOSEC in _roles(officer)
    from access.roles import role_names
    role_names(officer)  # cached on this object: the service must not trust the cache
    user_role_remove(actor=people.infosec2, target=officer, role=INFOSEC, reason="SEC-5 moved team")
    with writes_nothing(), pytest.raises(NotPermitted, match="only InfoSec"):
        user_role_add(actor=officer, target=people.outsider, role=AUDITOR, reason="SEC-1")


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 2001, "bad\x00reason"])
def test_a_person_must_give_a_reason(people: People, reason: object) -> None:
    with writes_nothing(), pytest.raises(ServiceError, match="reason"):
        user_role_add(actor=people.infosec, target=people.outsider, role=AUDITOR, reason=reason)  # type: ignore[arg-type]


def test_a_closed_account_is_given_no_role(people: People) -> None:
    User.objects.filter(pk=people.outsider.pk).update(is_active=False)
    with writes_nothing(), pytest.raises(ServiceError, match="closed or inactive"):
        user_role_add(actor=people.infosec, target=people.outsider, role=AUDITOR, reason="SEC-1")


def test_a_second_infosec_gives_break_glass(people: People) -> None:
    user_role_add(actor=people.infosec2, target=people.infosec, role=BREAK_GLASS, reason="INC-9 on call")
    assert BREAK_GLASS in _roles(people.infosec)
    ledger.integrate()
    entry = Entry.objects.get(event_type="auth.role_added")
    assert (entry.actor_type, entry.actor_id, entry.subject_id) == ("user", str(people.infosec2.pk),
                                                                    str(people.infosec.pk))
    assert entry.payload == {"role": BREAK_GLASS, "reason": "INC-9 on call"}


def test_the_system_path_is_recorded_as_the_system(people: People) -> None:
    assert user_role_add_by_system(component="provisioning", target=people.outsider, role=AUDITOR) is True
    assert user_role_remove_by_system(component="provisioning", target=people.outsider, role=AUDITOR,
                                      reason="offboarded") is True
    ledger.integrate()
    rows = list(Entry.objects.filter(subject_id=str(people.outsider.pk)).order_by("seq")
                .values_list("actor_type", "actor_id", "event_type"))
    assert rows == [("system", "provisioning", "auth.role_added"), ("system", "provisioning", "auth.role_removed")]
    with writes_nothing(), pytest.raises(ServiceError, match="component"):
        user_role_add_by_system(component=" ", target=people.outsider, role=AUDITOR)
