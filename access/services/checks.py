"""The access check: may this principal do this on that resource, and which grant says so?

``check`` is on the hot path of serving platforms and pipelines. It is one
indexed query for the principal's own grants and, only when that finds none,
one for its groups' grants (``grant_check_user`` / ``grant_check_group``
partial indexes over active grants). An expired grant stops counting at its
``expires_at`` to the microsecond, before the expiry task removes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Model
from django.utils import timezone

from access.errors import AccessError
from access.lock_objects import closed_denial_window_lock, denial_window_lock
from access.models import RESOURCE_PERMISSIONS, DenialWindow, Grant
from access.resources import KINDS, resource_label, resource_type_of
from audit.canonical import format_timestamp
from audit.ledger import Actor, Subject, record


def principal_label(principal: User | Group) -> str:
    if isinstance(principal, Group):
        return f"group:{principal.name}"
    return f"user:{principal.pk}"


# The reason of every denial. The access API answers an unknown principal with it too, so it
# must never name the principal (that would tell a known name from an unknown one).
NO_GRANT = "no active grant of {permission} on {resource}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    grant_id: int | None
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


_ACTIVE = "{t}resource_type = %s AND {t}resource_id = %s AND {t}permission = %s AND {t}revoked_at IS NULL " \
    "AND {t}expires_at > %s"


def _grant_id(principal: User | Group, resource_type: str, resource_id: int, permission: str,
              now: datetime) -> int | None:
    """An active grant letting ``principal`` do it, in one raw statement on the partial indexes: the
    principal's own grants (``grant_check_user``), then, for a user, their groups' (``grant_check_group``).
    Raw SQL because building the ORM queries cost ten times the lookups themselves."""
    grant, member = Grant._meta.db_table, User.groups.through._meta.db_table
    active: list[Any] = [resource_type, resource_id, permission, connection.ops.adapt_datetimefield_value(now)]
    if isinstance(principal, Group):
        sql = f"SELECT id FROM {grant} WHERE group_id = %s AND {_ACTIVE.format(t='')} LIMIT 1"
        params = [principal.pk, *active]
    else:
        sql = (
            f"SELECT id FROM (SELECT id FROM {grant} WHERE user_id = %s AND {_ACTIVE.format(t='')} "
            f"UNION ALL SELECT g.id FROM {grant} g JOIN {member} m ON m.group_id = g.group_id "
            f"WHERE m.user_id = %s AND {_ACTIVE.format(t='g.')}) AS found LIMIT 1"
        )
        params = [principal.pk, *active, principal.pk, *active]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return int(row[0]) if row else None


def sensitivity(resource: Model) -> str | None:
    """The classification that makes a denied check worth recording, or None when it is not sensitive."""
    return KINDS[resource_type_of(resource)].sensitivity(resource)


def check(
    principal: User | Group, permission: str, resource: Model, *, at: datetime | None = None,
    record_denial: bool = True,
) -> Decision:
    """Allow or deny ``permission`` on ``resource`` for ``principal`` (a user, service account user or group).

    Denials on sensitive resources (confidential or restricted data, environments)
    are recorded in the ledger once per principal, resource and permission per
    ``ACCESS_DENIAL_INTERVAL``; the repeats are counted and summarised when the
    interval closes (``_record_denial``).
    """
    resource_type = resource_type_of(resource)
    if permission not in RESOURCE_PERMISSIONS[resource_type]:
        raise AccessError(
            f"{permission!r} does not apply to a {resource_type}; use one of "
            + ", ".join(RESOURCE_PERMISSIONS[resource_type])
        )
    now = at or timezone.now()
    active = isinstance(principal, Group) or principal.is_active
    grant_id = _grant_id(principal, resource_type, resource.pk, permission, now) if active else None
    if grant_id is not None:
        return Decision(True, grant_id, f"allowed by grant #{grant_id}")
    decision = Decision(False, None, NO_GRANT.format(permission=permission, resource=resource_label(resource)))
    if record_denial:
        level = sensitivity(resource)
        if level is not None:
            _record_denial(principal, permission, resource, level)
    return decision


def _interval() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "ACCESS_DENIAL_INTERVAL", 3600.0)))


def _record_denial(principal: User | Group, permission: str, resource: Model, level: str) -> None:
    label = resource_label(resource)
    denial_record(
        principal=principal_label(principal),
        actor=Actor.user(principal) if isinstance(principal, User) else Actor.system("access-check"),
        resource_type=resource_type_of(resource), resource_id=resource.pk, window_resource=label,
        entry_subject=Subject(resource_type_of(resource), resource.name),  # type: ignore[attr-defined]
        entry_resource=label, permission=permission, level=level,
    )


def denial_record(
    *, principal: str, actor: Actor, resource_type: str, resource_id: int, window_resource: str,
    entry_subject: Subject, entry_resource: str, permission: str, level: str | None,
) -> None:
    """Write ``access.check_denied`` for the first denial of an interval; count the repeats.

    The interval's window is keyed by ``principal`` (``user:<id>``, ``group:<name>``, never a
    name), ``resource_type``/``resource_id`` and ``permission``; ``window_resource`` (``type:name``)
    is the resource its summary names, ``entry_subject``/``entry_resource`` what the first
    entry names (a caller may key a window more coarsely than one object, as refused reveals
    of personal data do: one window per person over the whole ledger).

    A repeat within the interval is a single UPDATE of its ``DenialWindow`` and touches no
    ledger table, so a client polling a denied resource costs one cheap statement per poll.
    The first denial (or the first after the window closed) runs in its own transaction:
    the row's unique key lets only one of two concurrent first denials write the entry,
    and a closed window is summarised (``access.check_denials_summarised``) before reuse.
    """
    now = timezone.now()
    key = {"principal": principal, "resource_type": resource_type, "resource_id": resource_id,
           "permission": permission}
    if DenialWindow.objects.filter(**key, first_at__gt=now - _interval()).update(
            count=F("count") + 1, last_at=now):
        return
    with transaction.atomic():
        window = denial_window_lock(**key)
        if window is not None and window.first_at > now - _interval():  # opened meanwhile by another process
            DenialWindow.objects.filter(pk=window.pk).update(count=F("count") + 1, last_at=now)
            return
        if window is not None:
            _summarise(window)
            window.first_at = window.last_at = now
            window.count = 1
            window.resource = window_resource
            window.save(update_fields=["first_at", "last_at", "count", "resource"])
        else:
            try:
                with transaction.atomic():
                    DenialWindow.objects.create(**key, resource=window_resource, first_at=now, last_at=now)
            except IntegrityError:  # a concurrent first denial opened the window and wrote the entry
                DenialWindow.objects.filter(**key).update(count=F("count") + 1, last_at=now)
                return
        record(
            event_type="access.check_denied",
            actor=actor,
            subject=entry_subject,
            payload={"principal": principal, "resource": entry_resource, "permission": permission, "level": level},
        )


def _summarise(window: DenialWindow) -> None:
    """Record the count of a closed window (locked by the caller). A window of one denial needs no summary:
    its ``access.check_denied`` entry already says everything."""
    if window.count <= 1:
        return
    record(
        event_type="access.check_denials_summarised",
        actor=Actor.system("access-check"),
        subject=Subject(window.resource_type, window.resource.partition(":")[2]),
        payload={"principal": window.principal, "resource": window.resource, "permission": window.permission,
                 "count": window.count, "first_at": format_timestamp(window.first_at),
                 "last_at": format_timestamp(window.last_at)},
    )


def check_denials_summarise(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Close every denial window whose interval is over: record its summary and delete it, each window in its
    own transaction (a denial racing for the same row waits for it, then opens a new window). Idempotent;
    returns how many windows were closed. Run from the beat (``access.tasks.summarise_denials``); a denial
    after the interval also closes its own window lazily, so nothing depends on the beat running."""
    closed_before = (now or timezone.now()) - _interval()
    ids = list(DenialWindow.objects.filter(first_at__lte=closed_before).order_by("pk")
               .values_list("pk", flat=True)[:limit])
    closed = 0
    for pk in ids:
        with transaction.atomic():
            window = closed_denial_window_lock(pk, closed_before)
            if window is None:  # reopened or closed meanwhile
                continue
            _summarise(window)
            window.delete()
            closed += 1
    return closed
