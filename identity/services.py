"""Verbs of the master patient index: resolve the record an object belongs to, match records
into enterprise persons, link, unlink, unmerge, and the steward's review decisions.

Matching itself (blocking keys, field comparisons, scores, thresholds) is pure and lives in
identity.matching; this module reads candidates through the BlockingKey index, applies the
decisions in transactions and records every one with its evidence.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.access_changes import announce as announce_access_change
from audit.models import Action
from audit.services import record as audit

from . import matching
from .models import (
    BlockingKey,
    LinkEvent,
    PairDecision,
    PatientRecord,
    Person,
    RecordHistory,
)

log = logging.getLogger(__name__)
Status = PairDecision.Status
# Blocking keys find a handful of candidates; a key everyone shares (a hospital switchboard
# phone, a default birth date) must not turn one match into thousands of comparisons.
MAX_CANDIDATES = 200


@dataclass(frozen=True)
class Demographics:
    """Patient attributes as an incoming object (DICOM header, HL7 PID) carries them."""

    patient_id: str
    issuer: str
    name: str
    birth_date: datetime.date | None
    sex: str
    mother_maiden_name: str = ""
    parent_name: str = ""
    postcode: str = ""
    phone: str = ""
    multiple_birth: bool | None = None
    birth_order: int | None = None


UPDATABLE = (
    "name",
    "birth_date",
    "sex",
    "mother_maiden_name",
    "parent_name",
    "postcode",
    "phone",
    "multiple_birth",
    "birth_order",
)


def resolve_patient_record(organization, demo: Demographics, source: str = "") -> PatientRecord:
    """Find or create the record for (organisation, issuer, patient ID); new records get a Person.

    Must run inside the caller's transaction. A later object with different demographics
    updates the record (the earlier values go to RecordHistory) and queues it for matching;
    an object that leaves a field empty never erases what is known.
    """
    lookup = {"organization": organization, "issuer": demo.issuer, "patient_id": demo.patient_id}
    record = PatientRecord.objects.filter(**lookup).first()
    if record is None:
        try:
            with transaction.atomic():
                person = Person.objects.create()
                record = PatientRecord(**lookup, person=person)
                _apply(record, demo)
                record.save()
                _queue_match(record.pk)
                return record
        except IntegrityError:
            record = PatientRecord.objects.get(**lookup)  # another association created it
    changes = {}
    for field in UPDATABLE:
        new = getattr(demo, field)
        old = getattr(record, field)
        if new not in (None, "") and new != old:
            changes[field] = [_json(old), _json(new)]
    if changes:
        _apply(record, demo)
        record.match_pending = True
        record.save()
        RecordHistory.objects.create(record=record, source=source[:64], changes=changes)
        _queue_match(record.pk)
    return record


def _apply(record: PatientRecord, demo: Demographics) -> None:
    for field in UPDATABLE:
        value = getattr(demo, field)
        if value not in (None, ""):
            setattr(record, field, value)
    record.family_name, record.given_name, record.middle_name = (
        part[:64] for part in matching.parse_person_name(record.name)
    )


def _json(value):
    return value.isoformat() if isinstance(value, datetime.date) else value


def _queue_match(record_id: int) -> None:
    from .tasks import match_record_task

    transaction.on_commit(lambda: match_record_task.delay(record_id))


# --- matching ---------------------------------------------------------------------------------


def demographics_of(record: PatientRecord) -> matching.Demographics:
    return matching.Demographics(
        issuer=f"{record.organization_id}|{record.issuer}",
        patient_id=record.patient_id,
        family=record.family_name,
        given=record.given_name,
        middle=record.middle_name,
        birth_date=record.birth_date,
        sex=record.sex,
        mother_maiden=record.mother_maiden_name,
        parent_name=record.parent_name,
        postcode=record.postcode,
        phone=record.phone,
        multiple_birth=record.multiple_birth,
        birth_order=record.birth_order,
    )


@dataclass
class MatchResult:
    candidates: int = 0
    linked: int = 0
    review: int = 0


def match_record(record_id: int) -> MatchResult:
    """Index a record's blocking keys, score it against the records sharing one, then link,
    queue for review or leave apart. Idempotent: a re-run finds the same pairs decided.

    About ten queries whatever the population: the candidate search is one indexed join.
    """
    result = MatchResult()
    with transaction.atomic():
        record = PatientRecord.objects.select_for_update().filter(pk=record_id).first()
        if record is None:
            return result
        mine = matching.normalise(demographics_of(record))
        keys = matching.blocking_keys(mine)
        _store_keys(record, keys)
        candidates = list(
            PatientRecord.objects.filter(
                pk__in=BlockingKey.objects.filter(key__in=keys)
                .exclude(record_id=record.pk)
                .values("record_id")
            ).order_by("pk")[:MAX_CANDIDATES]
        )
        result.candidates = len(candidates)
        decided = _decided_pairs(record, candidates)
        person_of = {r.pk: r.person_id for r in [record, *candidates]}
        for other in candidates:
            pair = _ordered(record.pk, other.pk)
            existing = decided.get(pair)
            if existing is not None and existing.by_person:
                continue  # a steward's decision stands
            comparison = matching.compare(mine, matching.normalise(demographics_of(other)))
            outcome = matching.decide(comparison)
            decision = _record_decision(pair, comparison, outcome, existing)
            mine_person, their_person = person_of[record.pk], person_of[other.pk]
            if outcome == "link" and mine_person != their_person:
                if _kept_apart_between(mine_person, their_person):
                    decision.status = Status.PENDING
                    decision.save(update_fields=["status", "updated_at"])
                    result.review += 1
                    continue
                event = _merge_smaller(mine_person, their_person, decision=decision, automatic=True)
                _audit_automatic_link((record, other), decision, event)
                for moved in event.records:
                    person_of[moved] = event.target_id
                result.linked += 1
            elif decision.status == Status.PENDING:
                result.review += 1
        record.match_pending = False
        record.matched_at = timezone.now()
        record.save(update_fields=["match_pending", "matched_at", "updated_at"])
    return result


def _audit_automatic_link(
    pair: tuple[PatientRecord, PatientRecord], decision: PairDecision, event: LinkEvent
) -> None:
    """The matcher's link leaves the identity.link events a steward's link leaves (one per
    record of the pair), with no user: the system acted, as the audit trail records system
    actions (the application is the requestor in the DICOM export).

    Written in the link's own transaction, so a link never commits without its trace and a
    link rolled back leaves no event claiming it happened."""
    detail = {"automatic": True, "pair": decision.pk, "score": decision.score, "event": event.pk}
    for rec in pair:
        audit(None, Action.IDENTITY_LINK, patient_record=rec, detail=detail)


def _store_keys(record: PatientRecord, keys: set[str]) -> None:
    existing = set(BlockingKey.objects.filter(record=record).values_list("key", flat=True))
    if existing - keys:
        BlockingKey.objects.filter(record=record, key__in=existing - keys).delete()
    if keys - existing:
        BlockingKey.objects.bulk_create(
            [BlockingKey(record=record, key=k) for k in sorted(keys - existing)],
            ignore_conflicts=True,
        )


def _ordered(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _decided_pairs(record: PatientRecord, others: list[PatientRecord]) -> dict:
    if not others:
        return {}
    ids = [o.pk for o in others]
    rows = PairDecision.objects.filter(
        Q(record_a=record, record_b__in=ids) | Q(record_b=record, record_a__in=ids)
    )
    return {(d.record_a_id, d.record_b_id): d for d in rows}


def _record_decision(pair, comparison, outcome: str, existing: PairDecision | None):
    status = {"link": Status.AUTO_LINKED, "review": Status.PENDING}.get(outcome, Status.SEPARATE)
    evidence = [
        {"field": e.field, "outcome": e.outcome, "weight": round(e.weight, 2), "detail": e.detail}
        for e in comparison.evidence
    ]
    values = {
        "score": round(comparison.score, 3),
        "evidence": evidence,
        "veto": comparison.veto[:200],
        "status": status,
    }
    if existing is None:
        return PairDecision.objects.create(record_a_id=pair[0], record_b_id=pair[1], **values)
    if any(getattr(existing, name) != value for name, value in values.items()):
        for name, value in values.items():
            setattr(existing, name, value)
        existing.save()
    return existing


def _kept_apart_between(person_a: int, person_b: int) -> bool:
    """A steward kept some record of one group apart from some record of the other."""
    a = PatientRecord.objects.filter(person_id=person_a).values("pk")
    b = PatientRecord.objects.filter(person_id=person_b).values("pk")
    return PairDecision.objects.filter(
        Q(record_a__in=a, record_b__in=b) | Q(record_a__in=b, record_b__in=a),
        status=Status.KEPT_APART,
    ).exists()


def _merge_smaller(a: int, b: int, **event) -> LinkEvent:
    """Link two persons by moving the records of the smaller group (fewer rows to restore)."""
    size_a = PatientRecord.objects.filter(person_id=a).count()
    size_b = PatientRecord.objects.filter(person_id=b).count()
    return _merge(a, b, **event) if size_a <= size_b else _merge(b, a, **event)


def _merge(source_id: int, target_id: int, **event) -> LinkEvent:
    """Move every record of person `source` to `target`, remembering which moved."""
    moved = list(
        PatientRecord.objects.filter(person_id=source_id)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    PatientRecord.objects.filter(pk__in=moved).update(person_id=target_id)
    return LinkEvent.objects.create(
        kind=LinkEvent.Kind.LINK, source_id=source_id, target_id=target_id, records=moved, **event
    )


# --- people's decisions -----------------------------------------------------------------------


class IdentityError(ValueError):
    pass


@transaction.atomic
def link_records(a: PatientRecord, b: PatientRecord, user, reason: str = "") -> LinkEvent:
    """A steward says two records are the same child: their persons become one."""
    a.refresh_from_db()
    b.refresh_from_db()
    if a.pk == b.pk:
        raise IdentityError("a record cannot be linked to itself")
    if a.person_id == b.person_id:
        raise IdentityError("these records already belong to the same person")
    decision = _set_pair_status(a, b, Status.LINKED, user)
    return _merge(b.person_id, a.person_id, decision=decision, by=user, reason=reason[:200])


@transaction.atomic
def keep_apart(a: PatientRecord, b: PatientRecord, user) -> PairDecision:
    """A steward says two records are different children; the pair never returns to review."""
    a.refresh_from_db()
    b.refresh_from_db()
    if a.person_id == b.person_id:
        raise IdentityError("these records are linked: unlink or unmerge first")
    return _set_pair_status(a, b, Status.KEPT_APART, user)


def _set_pair_status(a: PatientRecord, b: PatientRecord, status: str, user) -> PairDecision:
    low, high = _ordered(a.pk, b.pk)
    decision, _ = PairDecision.objects.get_or_create(
        record_a_id=low, record_b_id=high, defaults={"score": 0.0, "status": status}
    )
    decision.status = status
    decision.decided_by = user
    decision.decided_at = timezone.now()
    decision.save()
    return decision


@transaction.atomic
def unlink_record(record: PatientRecord, user, reason: str = "") -> LinkEvent:
    """Take one record out of its person into a person of its own, and keep it apart from the
    records it leaves so the matcher does not put it back."""
    record.refresh_from_db()
    others = list(PatientRecord.objects.filter(person_id=record.person_id).exclude(pk=record.pk))
    if not others:
        raise IdentityError("this record is the only one of its person")
    old_person = record.person_id
    new_person = Person.objects.create()
    PatientRecord.objects.filter(pk=record.pk).update(person=new_person)
    announce_access_change()  # the record's studies are no longer the others' priors
    for other in others:
        _set_pair_status(record, other, Status.KEPT_APART, user)
    return LinkEvent.objects.create(
        kind=LinkEvent.Kind.SPLIT,
        source_id=old_person,
        target=new_person,
        records=[record.pk],
        by=user,
        reason=reason[:200],
    )


@transaction.atomic
def unmerge(event: LinkEvent, user, reason: str = "") -> LinkEvent:
    """Undo a link exactly: the records it moved go back to the person they came from (the
    very same Person row), and the pair that caused it is kept apart from now on."""
    event = LinkEvent.objects.select_for_update().get(pk=event.pk)
    if event.kind != LinkEvent.Kind.LINK:
        raise IdentityError("only a link can be unmerged")
    if event.undone_by_id is not None:
        raise IdentityError("this link was already undone")
    moved = PatientRecord.objects.filter(pk__in=event.records, person_id=event.target_id)
    if moved.count() != len(event.records):
        raise IdentityError(
            "records of this link were moved again since; undo the later changes first"
        )
    moved.update(person_id=event.source_id)
    announce_access_change()  # the moved records' studies are no longer the target's priors
    if event.decision_id:
        decision = event.decision
        decision.status = Status.KEPT_APART
        decision.decided_by = user
        decision.decided_at = timezone.now()
        decision.save()
    undo = LinkEvent.objects.create(
        kind=LinkEvent.Kind.UNMERGE,
        source_id=event.target_id,
        target_id=event.source_id,
        records=list(event.records),
        by=user,
        reason=reason[:200],
    )
    event.undone_by = undo
    event.save(update_fields=["undone_by"])
    return undo


def grouping() -> dict[int, int]:
    """record id -> person id, for every record: what link and unmerge must restore."""
    return dict(PatientRecord.objects.values_list("pk", "person_id"))


def match_pending_records(limit: int = 500) -> int:
    """Sweep: match records whose matching never ran (crash, lost task). Returns how many."""
    ids = list(
        PatientRecord.objects.filter(match_pending=True)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
    for record_id in ids:
        try:
            match_record(record_id)
        except Exception:
            log.exception("matching record %s failed; the sweep will retry", record_id)
    return len(ids)
