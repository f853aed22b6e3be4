"""The people of the test suite: one cast, who each person is and what they may see and do.

Every test that needs a person takes them from here, by name (``def test_x(owner, infosec)``)
or the whole cast at once (``people``: a :class:`People`). Registered for the whole suite by
``pytest_plugins`` in tests/conftest.py; test modules never import fixtures.

=============  ===========  =============================================  ==========================================
attribute      username     roles (groups)                                 who they are, what they may see and do
=============  ===========  =============================================  ==========================================
owner          olga         model-owner                                    owns the catalogue's datasets and
                                                                           fraud-detector (``res``); grants access
                                                                           to what she owns, requests promotions
requester      rita         model-owner; member of the ``fraud-team``      a data scientist: requests access and
                            group (``people.team``)                        promotions, owns service accounts;
                                                                           owns nothing in the catalogue
steward        sam          data-steward                                   classifies datasets; owns nothing
infosec        ines         infosec                                        security: grants anything, approves
                                                                           access requests, reveals personal data,
                                                                           runs reviews, second pair of eyes on
                                                                           rule changes
infosec2       ivan         infosec                                        a second InfoSec person (two-person
                                                                           control: approves what ines proposes)
auditor        audrey       auditor                                        reads everything (ledger, exports,
                                                                           console, admin), changes nothing
outsider       otto         (none)                                         signed in, no role: sees nothing that
                                                                           is not his, may do nothing
approver       adam         approver                                       approves promotions (the staging
                                                                           policy's group)
approver2      anna         approver                                       a second approver
model_risk     mira         model-risk                                     model-risk approvals (production)
model_risk2    max          model-risk                                     a second model-risk approver
creator        ds-creator   approver, model-risk, infosec, model-owner     ``ModelVersion.creator`` of the
                                                                           factories' versions: in every approval
                                                                           group, so separation of duties is what
                                                                           stops him approving his own model
breakglass     bruno        break-glass                                    may deploy without approvals in an
                                                                           emergency (reviewed afterwards)
=============  ===========  =============================================  ==========================================

Outside the cast, for the admin's door only (not in ``people``):

=================  ===========  =================================================================================
fixture            username     who they are
=================  ===========  =================================================================================
superuser          root         ``is_superuser`` and ``is_staff``, no role: "the operator ran createsuperuser";
                                the admin still refuses him (roles, not flags, open it)
superuser_auditor  sally        superuser flags and the auditor role: reads the admin as an auditor
staff              stan         ``is_staff``, no role
=================  ===========  =================================================================================

Every person's password is ``pw`` and e-mail ``<username>@example.test``. Giving a person a
role here is fixture setup, not a role change under test, so it records nothing in the
ledger (tests of role changes go through ``access.services``).
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group, User

from access import roles
from tests.factories import SuperuserFactory, UserFactory

PASSWORD = "pw"
TEAM = "fraud-team"

#: attribute → (username, roles): the table above.
CAST: dict[str, tuple[str, tuple[str, ...]]] = {
    "owner": ("olga", (roles.MODEL_OWNER,)),
    "requester": ("rita", (roles.MODEL_OWNER,)),
    "steward": ("sam", (roles.DATA_STEWARD,)),
    "infosec": ("ines", (roles.INFOSEC,)),
    "infosec2": ("ivan", (roles.INFOSEC,)),
    "auditor": ("audrey", (roles.AUDITOR,)),
    "outsider": ("otto", ()),
    "approver": ("adam", (roles.APPROVER,)),
    "approver2": ("anna", (roles.APPROVER,)),
    "model_risk": ("mira", (roles.MODEL_RISK,)),
    "model_risk2": ("max", (roles.MODEL_RISK,)),
    "creator": ("ds-creator", (roles.APPROVER, roles.MODEL_RISK, roles.INFOSEC, roles.MODEL_OWNER)),
    "breakglass": ("bruno", (roles.BREAK_GLASS,)),
}


@dataclass
class People:
    """The whole cast (see the table in this module's docstring)."""

    owner: User
    requester: User
    steward: User
    infosec: User
    infosec2: User
    auditor: User
    outsider: User
    approver: User
    approver2: User
    model_risk: User
    model_risk2: User
    creator: User
    breakglass: User
    team: Group  # the ordinary group the requester belongs to


def make_user(username: str, *role_names: str) -> User:
    """A person outside the cast (a test's own extra user), with password ``pw`` and these roles."""
    return UserFactory(username=username, password=PASSWORD, roles=list(role_names))  # type: ignore[no-any-return]


def make_person(attribute: str) -> User:
    """The cast member ``attribute`` (``"owner"``, ``"infosec"``...), created now."""
    username, role_names = CAST[attribute]
    user = make_user(username, *role_names)
    if attribute == "requester":
        user.groups.add(team_group())
    return user


def team_group() -> Group:
    return Group.objects.get_or_create(name=TEAM)[0]


def make_people() -> People:
    """The whole cast, created now (for code that runs outside fixtures, such as the browser tests)."""
    return People(**{attribute: make_person(attribute) for attribute in CAST}, team=team_group())


def fresh(user: User) -> User:
    """A new object for the same user: no permission caches from earlier checks."""
    return User.objects.get(pk=user.pk)


# --- fixtures: each person alone, or the whole cast ------------------------------------------------------


@pytest.fixture
def persona_db(request: pytest.FixtureRequest) -> None:
    """Database access for the people: the test's real commits when it asked for ``committing_db``
    (a ``db`` transaction around them would keep on-commit hooks from running), else ``db``."""
    request.getfixturevalue("committing_db" if "committing_db" in request.fixturenames else "db")


@pytest.fixture
def owner(persona_db: None) -> User:
    return make_person("owner")


@pytest.fixture
def team(persona_db: None) -> Group:
    return team_group()


@pytest.fixture
def requester(team: Group) -> User:
    return make_person("requester")


@pytest.fixture
def steward(persona_db: None) -> User:
    return make_person("steward")


@pytest.fixture
def infosec(persona_db: None) -> User:
    return make_person("infosec")


@pytest.fixture
def infosec2(persona_db: None) -> User:
    return make_person("infosec2")


@pytest.fixture
def auditor(persona_db: None) -> User:
    return make_person("auditor")


@pytest.fixture
def outsider(persona_db: None) -> User:
    return make_person("outsider")


@pytest.fixture
def approver(persona_db: None) -> User:
    return make_person("approver")


@pytest.fixture
def approver2(persona_db: None) -> User:
    return make_person("approver2")


@pytest.fixture
def model_risk(persona_db: None) -> User:
    return make_person("model_risk")


@pytest.fixture
def model_risk2(persona_db: None) -> User:
    return make_person("model_risk2")


@pytest.fixture
def creator(persona_db: None) -> User:
    return make_person("creator")


@pytest.fixture
def breakglass(persona_db: None) -> User:
    return make_person("breakglass")


@pytest.fixture
def people(
    owner: User, requester: User, steward: User, infosec: User, infosec2: User, auditor: User, outsider: User,
    approver: User, approver2: User, model_risk: User, model_risk2: User, creator: User, breakglass: User,
    team: Group,
) -> People:
    """The whole cast; ``people.owner`` is the same user as the ``owner`` fixture in the same test."""
    return People(owner=owner, requester=requester, steward=steward, infosec=infosec, infosec2=infosec2,
                  auditor=auditor, outsider=outsider, approver=approver, approver2=approver2,
                  model_risk=model_risk, model_risk2=model_risk2, creator=creator, breakglass=breakglass,
                  team=team)


@pytest.fixture
def superuser(persona_db: None) -> User:
    return SuperuserFactory(username="root", password=PASSWORD)  # type: ignore[no-any-return]


@pytest.fixture
def superuser_auditor(persona_db: None) -> User:
    return SuperuserFactory(username="sally", password=PASSWORD, roles=[roles.AUDITOR])  # type: ignore[no-any-return]


@pytest.fixture
def staff(persona_db: None) -> User:
    return UserFactory(username="stan", password=PASSWORD, is_staff=True)  # type: ignore[no-any-return]
