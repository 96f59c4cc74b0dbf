"""Filing an instance's study and series rows: created from its header the first time, checked
against it every time (a UID reused by another organisation, patient or study is refused).

Called by archive.services inside the ingest transaction.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db.models import Case, CharField, F, Q, Value, When
from django.db.models.functions import Concat, StrIndex, Substr
from django.db.models.lookups import Exact, GreaterThan

from .dicomfile import Header
from .failures import IngestRejected
from .models import Series, Study, StudyModality

if TYPE_CHECKING:
    from accounts.models import Organization
    from identity.models import PatientRecord


def study_for(header: Header, record: PatientRecord, organization: Organization, now) -> Study:
    """The study the instance belongs to, created from its header the first time; its lists of
    codes grow with each new modality and body part."""
    study = Study.objects.filter(study_instance_uid=header.study_instance_uid).first()
    if study is None:
        study, _ = Study.objects.get_or_create(
            study_instance_uid=header.study_instance_uid,
            defaults={
                "organization": organization,
                "patient_record": record,
                "person_id": record.person_id,  # what the database writes too (models.Study)
                "accession_number": header.accession_number,
                "study_id": header.study_id,
                "study_date": header.study_date,
                "study_time": header.study_time,
                "study_description": header.study_description,
                "referring_physician": header.referring_physician,
                "institution_name": header.institution_name,
                "patient_age": header.patient_age,
                "patient_weight_kg": header.patient_weight_kg,
                "patient_size_m": header.patient_size_m,
                "first_received_at": now,
                "last_received_at": now,
            },
        )
    if study.organization_id != organization.pk:
        raise IngestRejected("foreign_study", "Study Instance UID belongs to another organisation")
    if study.patient_record_id != record.pk:
        raise IngestRejected(
            "patient_mismatch", "Study Instance UID is already filed under another Patient ID"
        )
    modality = header.modality
    new = modality and modality not in study.modality_list
    if new and add_code(study.pk, "modalities_in_study", modality):
        # The index a ModalitiesInStudy search walks (models.StudyModality).
        StudyModality.objects.get_or_create(
            study=study,
            modality=modality,
            defaults={"study_date": study.study_date, "study_time": study.study_time},
        )
    body_part = header.body_part_examined
    if body_part and body_part not in study.body_parts.split("\\"):
        add_code(study.pk, "body_parts", body_part)
    return study


def add_code(study_pk: int, field: str, code: str) -> bool:
    """Append `code` to the study's backslash-separated `field` (capped at 200 characters) unless
    it is there already; True if this call added it.

    Why one UPDATE that tests and builds the value in SQL: on PostgreSQL two associations
    adding different codes to one study (its CT and its MR series at once) both read the study
    before either committed, and writing back a list built from that read dropped the first
    one's code. The UPDATE waits for the other's row lock and then works on the committed row.
    """
    grown = Case(
        When(**{field: ""}, then=Value(code)),
        default=Concat(F(field), Value("\\" + code)),
    )
    return bool(
        Study.objects.filter(pk=study_pk)
        .filter(Exact(_position(field, code), 0))
        .update(**{field: Substr(grown, 1, 200)})
    )


def holds_code(field: str, codes: Iterable[str]) -> Q:
    """Rows whose backslash-separated `field` (as add_code builds it) holds one of `codes` as a
    whole code, compared exactly: a test of the row itself, no join."""
    tests = [Q(GreaterThan(_position(field, code), 0)) for code in codes]
    return functools.reduce(operator.or_, tests, Q(pk__in=[]))


def _position(field: str, code: str) -> StrIndex:
    padded = Concat(Value("\\"), F(field), Value("\\"), output_field=CharField())
    return StrIndex(padded, Value(f"\\{code}\\"))


def series_for(header: Header, study: Study) -> Series:
    series, _ = Series.objects.get_or_create(
        series_instance_uid=header.series_instance_uid,
        defaults={
            "study": study,
            "modality": header.modality,
            "series_number": header.series_number,
            "series_description": header.series_description,
            "body_part_examined": header.body_part_examined,
            "frame_of_reference_uid": header.frame_of_reference_uid,
        },
    )
    if series.study_id != study.pk:
        raise IngestRejected("series_mismatch", "Series Instance UID belongs to another study")
    return series
