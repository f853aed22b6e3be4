"""Closing an account: InfoSec only, never one's own, through the service from the admin and a command.

The attacks: an auditor, a model owner or a superuser without a role closes someone's
account (locking them out, starting the erasure clock of their data); InfoSec closes their
own account (or their bot's) to start their own retention clock. Each is refused and
nothing is written.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from access.errors import AccessError, InvalidState, NotPermitted
from access.services.accounts import account_closed_at, user_account_close, user_account_close_by_system
from access.services.service_accounts import service_account_create
from audit import ledger
from audit.models import Entry
from tests.access.helpers import writes_nothing
from tests.factories import SuperuserFactory
from tests.personas import People, fresh

pytestmark = pytest.mark.django_db


def _closed(user: User) -> bool:
    return not fresh(user).is_active


# --- the service --------------------------------------------------------------------------------------------


def test_infosec_closes_an_account_and_it_is_recorded(people: People) -> None:
    user_account_close(actor=people.infosec, account=people.outsider, reason="HR-12 left the company")

    assert _closed(people.outsider) and account_closed_at(fresh(people.outsider)) is not None
    ledger.integrate()
    entry = Entry.objects.get(event_type="auth.account_closed")
    assert (entry.actor_type, entry.actor_id) == ("user", str(people.infosec.pk))
    assert entry.payload == {"account": f"user:{people.outsider.pk}", "reason": "HR-12 left the company"}
    assert people.outsider.username not in entry.payload_json


@pytest.mark.parametrize("persona", ["auditor", "owner", "steward", "outsider", "superuser"])
def test_only_infosec_closes_accounts(people: People, persona: str) -> None:
    actor = SuperuserFactory() if persona == "superuser" else getattr(people, persona)
    with writes_nothing(), pytest.raises(NotPermitted, match="only InfoSec may close accounts"):
        user_account_close(actor=actor, account=people.requester, reason="lock them out")
    assert not _closed(people.requester)


def test_infosec_cannot_close_their_own_account(people: People) -> None:
    with writes_nothing(), pytest.raises(NotPermitted, match="nobody closes their own account"):
        user_account_close(actor=people.infosec, account=people.infosec, reason="start my clock")
    assert not _closed(people.infosec)


def test_infosec_cannot_close_through_or_on_their_service_account(people: People) -> None:
    bot = service_account_create(actor=people.infosec, name="ines-bot", description="").user
    with writes_nothing(), pytest.raises(NotPermitted, match="nobody closes their own account"):
        user_account_close(actor=people.infosec, account=bot, reason="x")
    # a second InfoSec is told to disable the service account instead
    with writes_nothing(), pytest.raises(InvalidState, match="disable the service account"):
        user_account_close(actor=people.infosec2, account=bot, reason="x")


def test_a_second_infosec_closes_an_infosec_account(people: People) -> None:
    user_account_close(actor=people.infosec2, account=people.infosec, reason="SEC-4 left")
    assert _closed(people.infosec)
    # and a closed InfoSec closes nothing any more
    with writes_nothing(), pytest.raises(NotPermitted, match="only InfoSec"):
        user_account_close(actor=people.infosec, account=people.outsider, reason="revenge")


def test_closing_twice_is_refused(people: People) -> None:
    user_account_close(actor=people.infosec, account=people.outsider, reason="left")
    with writes_nothing(), pytest.raises(InvalidState, match="already closed"):
        user_account_close(actor=people.infosec, account=people.outsider, reason="left")


@pytest.mark.parametrize("reason", ["", "  ", "x" * 501, "a\x00b"])
def test_a_reason_is_required(people: People, reason: str) -> None:
    with writes_nothing(), pytest.raises(AccessError, match="reason"):
        user_account_close(actor=people.infosec, account=people.outsider, reason=reason)


def test_the_system_path_records_the_component(people: People) -> None:
    user_account_close_by_system(component="hr-feed", account=people.outsider, reason="HR-1")
    ledger.integrate()
    entry = Entry.objects.get(event_type="auth.account_closed")
    assert (entry.actor_type, entry.actor_id) == ("system", "hr-feed")


# --- the admin action ---------------------------------------------------------------------------------------


def _close_action(client: Client, target: User, **form: str):  # type: ignore[no-untyped-def]
    return client.post("/admin/auth/user/", {"action": "close_account", ACTION_CHECKBOX_NAME: [str(target.pk)],
                                             **form}, follow=True)


def test_infosec_closes_an_account_in_the_admin_after_giving_a_reason(client: Client, people: People) -> None:
    client.force_login(people.infosec)
    with writes_nothing():
        page = _close_action(client, people.outsider)
    assert 'name="reason"' in page.content.decode() and not _closed(people.outsider)

    done = _close_action(client, people.outsider, confirm="yes", reason="HR-7 contract ended")

    assert "Close account: 1 done" in done.content.decode()
    assert _closed(people.outsider)
    ledger.integrate()
    assert Entry.objects.get(event_type="auth.account_closed").actor_id == str(people.infosec.pk)


def test_the_admin_action_refuses_ones_own_account(client: Client, people: People) -> None:
    client.force_login(people.infosec)
    with writes_nothing():
        response = _close_action(client, people.infosec, confirm="yes", reason="start my clock")
    assert "nobody closes their own account" in response.content.decode()
    assert not _closed(people.infosec)


@pytest.mark.parametrize("persona", ["auditor", "superuser"])
def test_no_one_else_gets_the_admin_action(client: Client, people: People, persona: str) -> None:
    actor = SuperuserFactory(roles=["auditor"]) if persona == "superuser" else people.auditor
    client.force_login(actor)
    with writes_nothing():
        _close_action(client, people.outsider, confirm="yes", reason="x")
    assert not _closed(people.outsider)


# --- the command ---------------------------------------------------------------------------------------------


def test_the_command_closes_an_account_as_infosec(people: People, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("close_account", "--user-id", str(people.outsider.pk), "--reason", "HR-9",
                 "--actor", people.infosec.username)
    assert capsys.readouterr().out.strip() == f"closed the account user:{people.outsider.pk}"
    assert _closed(people.outsider)
    ledger.integrate()
    assert Entry.objects.get(event_type="auth.account_closed").actor_id == str(people.infosec.pk)


def test_the_command_without_an_actor_is_the_system(people: People) -> None:
    call_command("close_account", "--user-id", str(people.outsider.pk), "--reason", "HR-9")
    ledger.integrate()
    entry = Entry.objects.get(event_type="auth.account_closed")
    assert (entry.actor_type, entry.actor_id) == ("system", "close_account")


@pytest.mark.parametrize("case, message", [
    ("unknown", "no account with id"),
    ("unknown-actor", "--actor: no user named"),
    ("auditor", "refused: only InfoSec"),
    ("self", "refused: nobody closes their own account"),
    ("blank", "refused: a reason is required"),
])
def test_the_command_refuses_with_a_clear_message(people: People, case: str, message: str) -> None:
    target = people.infosec if case == "self" else people.outsider
    args = ["--user-id", "999999" if case == "unknown" else str(target.pk),
            "--reason", "  " if case == "blank" else "HR-9"]
    actor = {"unknown-actor": "nobody-here", "auditor": people.auditor.username}.get(case, people.infosec.username)
    with writes_nothing(), pytest.raises(CommandError, match=message) as raised:
        call_command("close_account", *args, "--actor", actor)
    assert raised.value.returncode == 1
    assert not _closed(target)


def test_the_command_exit_codes() -> None:
    # argparse: a missing required option is usage (2); the refusal above is 1
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    result = subprocess.run([sys.executable, str(manage), "close_account", "--user-id", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--reason" in result.stderr
