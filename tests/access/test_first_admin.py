"""``manage.py create_first_admin``: the first InfoSec account of an install, recorded, and only once.

The attacks: a second "first" administrator made next to an existing InfoSec member or superuser
(refused, exit 1, nothing written), a password on the command line (there is no such option), a
weak password (refused, nothing written), personal data in the hashed ledger body (none).
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from access.roles import INFOSEC
from access.services.roles import FirstAdminRefused, first_admin_create
from audit.models import Entry
from tests.access.helpers import ledger_entries, writes_nothing
from tests.factories import SuperuserFactory
from tests.personas import People

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 42"


def _password_file(tmp_path: Path, password: str = PASSWORD) -> str:
    path = tmp_path / "password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return str(path)


def test_creates_an_infosec_account_recorded_without_personal_data(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("create_first_admin", "--username", "alice.sec", "--email", "alice@example.org",
                 "--full-name", "Alice Secure", "--password-file", _password_file(tmp_path), stdout=out)
    user = User.objects.get(username="alice.sec")
    assert list(user.groups.values_list("name", flat=True)) == [INFOSEC]
    assert user.check_password(PASSWORD) and not user.is_superuser
    assert f"user:{user.pk}" in out.getvalue() and "alice" not in out.getvalue()
    registered = ledger_entries("auth.user_registered")
    role = ledger_entries("auth.role_added")
    assert [e.subject_id for e in registered] == [str(user.pk)] and [e.subject_id for e in role] == [str(user.pk)]
    for entry in (*registered, *role):
        assert entry.actor_type == "system" and entry.actor_id == "create_first_admin"
        for personal in ("alice", "Alice", "example.org", PASSWORD):
            assert personal not in entry.payload_json
    assert '"role":"infosec"' in role[0].payload_json.replace(" ", "")


@pytest.mark.parametrize("existing", ["infosec", "superuser", "inactive infosec"])
def test_refused_once_an_administrator_exists(existing: str, people: People, tmp_path: Path) -> None:
    if existing == "superuser":
        User.objects.filter(groups__name=INFOSEC).delete()
        SuperuserFactory()
    elif existing == "inactive infosec":
        User.objects.filter(groups__name=INFOSEC).exclude(pk=people.infosec.pk).delete()
        User.objects.filter(pk=people.infosec.pk).update(is_active=False)
    entries = Entry.objects.count()
    with writes_nothing(), pytest.raises(CommandError, match="refused: an InfoSec member or a superuser already"):
        call_command("create_first_admin", "--username", "mallory", "--password-file", _password_file(tmp_path))
    assert not User.objects.filter(username="mallory").exists()
    assert Entry.objects.count() == entries


def test_refused_by_the_service_too(people: People) -> None:
    with writes_nothing(), pytest.raises(FirstAdminRefused):
        first_admin_create(username="mallory", password=PASSWORD)


def test_exit_status_is_one_on_refusal(people: People, tmp_path: Path) -> None:
    from django.core.management import ManagementUtility

    utility = ManagementUtility(["manage.py", "create_first_admin", "--username", "mallory",
                                 "--password-file", _password_file(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        utility.execute()
    assert exit_info.value.code == 1


def test_weak_password_writes_nothing(tmp_path: Path) -> None:
    with writes_nothing(), pytest.raises(CommandError, match="password is not acceptable"):
        call_command("create_first_admin", "--username", "alice", "--password-file", _password_file(tmp_path, "123"))


def test_the_password_is_never_an_argument(tmp_path: Path) -> None:
    # not even as an abbreviation of --password-file, whose error would then echo it
    with pytest.raises(CommandError, match="unrecognized arguments") as refused:
        call_command("create_first_admin", "--username", "alice", "--password", PASSWORD)
    assert not User.objects.filter(username="alice").exists()
    with pytest.raises(CommandError, match="cannot read the file") as refused:
        call_command("create_first_admin", "--username", "alice", "--password-file", PASSWORD)
    assert PASSWORD not in str(refused.value)


def test_no_terminal_and_no_file_is_refused() -> None:
    with writes_nothing(), pytest.raises(CommandError, match="no terminal"):
        call_command("create_first_admin", "--username", "alice")
