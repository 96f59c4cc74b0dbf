"""Verbs on patient records: resolve the record an incoming object belongs to."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from .models import PatientRecord, Person


@dataclass(frozen=True)
class Demographics:
    patient_id: str
    issuer: str
    name: str
    birth_date: datetime.date | None
    sex: str


def resolve_patient_record(organization, demo: Demographics) -> PatientRecord:
    """Find or create the record for (organisation, issuer, patient ID); new records get a Person.

    Must run inside the caller's transaction. Blank demographic fields are filled from later
    objects; differing values are left for the identity review (history comes with matching).
    """
    lookup = {"organization": organization, "issuer": demo.issuer, "patient_id": demo.patient_id}
    record = PatientRecord.objects.filter(**lookup).first()
    if record is None:
        try:
            with transaction.atomic():
                person = Person.objects.create()
                return PatientRecord.objects.create(
                    **lookup,
                    name=demo.name,
                    birth_date=demo.birth_date,
                    sex=demo.sex,
                    person=person,
                )
        except IntegrityError:
            # Another association created it first.
            record = PatientRecord.objects.get(**lookup)
    changed = []
    for field in ("name", "birth_date", "sex"):
        if not getattr(record, field) and getattr(demo, field):
            setattr(record, field, getattr(demo, field))
            changed.append(field)
    if changed:
        record.save(update_fields=[*changed, "updated_at"])
    return record
