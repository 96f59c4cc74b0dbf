"""Writing audit events: the one verb every read or write of patient data calls.

`record()` fails loudly. A view that cannot leave its trace must not show the data, so callers
record before they respond and let an exception become a 500. Recording inside a transaction
that later rolls back loses the event with it: record reads outside `atomic`, and writes after
the change committed (or record the failure in its own `except` branch).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.http import HttpRequest

from accounts.models import Membership, Organization, ReadingAgreement, Role

from .models import Action, AuditEvent, Outcome

USER_AGENT_MAX = 512
# When no study says which membership acted, the most powerful one is named: it is the one
# whose use a privacy officer most needs to see.
ROLE_PRECEDENCE = [
    Role.ADMIN,
    Role.ORG_ADMIN,
    Role.READER,
    Role.SCHEDULER,
    Role.REFERRING,
    Role.TECHNOLOGIST,
]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def record(
    request: HttpRequest | None,
    action: str,
    outcome: str = Outcome.SUCCESS,
    *,
    user: Any = None,
    username: str = "",
    study: Any = None,
    patient_record: Any = None,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one audit event and return it.

    `user` defaults to the request's authenticated user unless `username` is given: that names
    someone who is not (yet) signed in, such as a failed login. `obj` may be a Study or
    PatientRecord (then filled in as such) or any other model instance (recorded as type and
    id; `object_type`/`object_id` do the same for an object that no longer exists). The
    patient follows the study when only the study is given.
    """
    if action not in Action.values:
        raise ValueError(f"unknown audit action {action!r}; add it to audit.models.Action")
    if outcome not in Outcome.values:
        raise ValueError(f"unknown audit outcome {outcome!r}")

    from archive.models import Study
    from identity.models import PatientRecord

    if user is None and request is not None and not username:
        candidate = getattr(request, "user", None)
        if candidate is not None and candidate.is_authenticated:
            user = candidate
    if user is not None and not user.is_authenticated:
        user = None

    if isinstance(obj, Study) and study is None:
        study = obj
    elif isinstance(obj, PatientRecord) and patient_record is None:
        patient_record = obj
    elif obj is not None:
        object_type, object_id = obj._meta.label_lower, str(obj.pk)
    if study is not None and patient_record is None:
        patient_record = study.patient_record

    membership = _acting_membership(user, study)
    organization: Organization | None = membership.organization if membership else None
    role = membership.role if membership else ("superuser" if user and user.is_superuser else "")

    event = AuditEvent(
        user=user,
        username=_text((user.get_username() if user is not None else username)[:150]),
        role=role,
        organization=organization,
        organization_name=organization.name if organization else "",
        action=action,
        outcome=outcome,
        patient_record=patient_record,
        patient_id=patient_record.patient_id if patient_record else "",
        patient_issuer=patient_record.issuer_label if patient_record else "",
        study=study,
        study_uid=study.study_instance_uid if study else "",
        object_type=object_type,
        object_id=_text(object_id[:255]),
        source_ip=client_ip(request) if request is not None else None,
        user_agent=_text(_user_agent(request)),
        detail=_text(detail or {}),
    )
    event.save()
    return event


def _text(value: Any) -> Any:
    """Strings (also inside detail's lists and dicts) with NUL as U+FFFD: PostgreSQL refuses
    NUL in text and in jsonb, and a request's text (a query, a typed username) may hold one."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    return value


def _acting_membership(user: Any, study: Any) -> Membership | None:
    """The membership the user most plausibly acted through.

    For a study: a membership at the study's own facility, else a reading group with an active
    agreement with that facility, else any reading-side membership (priors reach across
    organisations). Otherwise, by ROLE_PRECEDENCE.
    """
    from accounts.policy import active_memberships

    memberships = active_memberships(user)
    if not memberships:
        return None
    ranked = sorted(
        memberships,
        key=lambda m: (
            ROLE_PRECEDENCE.index(m.role) if m.role in ROLE_PRECEDENCE else len(ROLE_PRECEDENCE),
            m.pk,
        ),
    )
    if study is None:
        return ranked[0]
    for m in ranked:
        if m.organization_id == study.organization_id:
            return m
    reading = [m for m in ranked if m.organization.kind == Organization.Kind.READING_GROUP]
    if reading:
        agreed = set(
            ReadingAgreement.objects.filter(
                reading_group__in=[m.organization_id for m in reading],
                sending_facility_id=study.organization_id,
                active=True,
            ).values_list("reading_group_id", flat=True)
        )
        for m in reading:
            if m.organization_id in agreed:
                return m
        return reading[0]
    return ranked[0]


def _user_agent(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return str(request.META.get("HTTP_USER_AGENT", ""))[:USER_AGENT_MAX]


def trusted_proxies() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """settings.TRUSTED_PROXIES: addresses or networks (list or comma-separated string)."""
    raw: str | Iterable[str] = getattr(settings, "TRUSTED_PROXIES", ())
    items = raw.split(",") if isinstance(raw, str) else raw
    networks = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES holds {item!r}, not an address or network"
            ) from None
    return networks


def _parse_ip(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The peer address; behind trusted proxies, the nearest untrusted X-Forwarded-For hop.

    X-Forwarded-For is client-controlled except for the hops our own proxies appended, so it is
    read right to left and only while each hop so far is a trusted proxy. Without
    TRUSTED_PROXIES it is ignored: anyone can write that header.
    """
    remote = _parse_ip(str(request.META.get("REMOTE_ADDR", "")))
    if remote is None:
        return None
    proxies = trusted_proxies()

    def trusted(ip: IPAddress) -> bool:
        return any(ip in net for net in proxies)

    address = remote
    if proxies and trusted(remote):
        hops = str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
        for hop in reversed(hops):
            ip = _parse_ip(hop)
            if ip is None:
                break
            address = ip
            if not trusted(ip):
                break
    return str(address)
