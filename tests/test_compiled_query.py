"""A CompiledQuery answers exactly what its queryset answers, for any values, on either database."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from archive.models import Study
from identity.models import PatientRecord
from readingroom.compiled_query import CompiledQuery


def make_study(organization, **fields) -> Study:
    record = PatientRecord.objects.create(organization=organization, patient_id="MRN-1")
    now = timezone.now()
    return Study.objects.create(
        organization=organization,
        patient_record=record,
        first_received_at=now,
        last_received_at=now,
        **fields,
    )


def _by_uid_and_accession(uid, accession):
    return Study.objects.filter(study_instance_uid=uid, accession_number=accession).values_list(
        "pk", "study_instance_uid", "organization__name"
    )


@pytest.mark.django_db
def test_rows_equal_the_querysets_for_other_values(riverside, lakeview):
    first = make_study(riverside, study_instance_uid="1.2.3.1", accession_number="A1")
    make_study(lakeview, study_instance_uid="1.2.3.2", accession_number="A2")
    query = CompiledQuery(_by_uid_and_accession, 2)
    for values in (("1.2.3.1", "A1"), ("1.2.3.2", "A2"), ("1.2.3.1", "A2"), ("x' OR '1'='1", "A1")):
        assert query.rows(*values) == list(_by_uid_and_accession(*values))
    assert query.rows("1.2.3.1", "A1") == [(first.pk, "1.2.3.1", riverside.name)]
    assert query.rows("x' OR '1'='1", "A1") == []  # a value is a parameter, never SQL


@pytest.mark.django_db
def test_misuse_is_refused_not_answered_wrongly(riverside):
    with pytest.raises(TypeError):
        CompiledQuery(_by_uid_and_accession, 2).rows("1.2.3.1")
    # A value used twice, or not at all, cannot be placed.
    twice = CompiledQuery(
        lambda uid: Study.objects.filter(study_instance_uid=uid, accession_number=uid).values_list(
            "pk"
        ),
        1,
    )
    with pytest.raises(RuntimeError, match="one query parameter"):
        twice.rows("1.2.3")
    # Where the backend converts a column (SQLite: dates, booleans) the cursor's raw value
    # would be wrong, so such a query is refused; where it does not, it answers the same.
    dated = CompiledQuery(
        lambda uid: Study.objects.filter(study_instance_uid=uid).values_list("first_received_at"),
        1,
    )
    if connection.vendor == "sqlite":
        with pytest.raises(RuntimeError, match="conversion"):
            dated.rows("1.2.3")
    else:
        study = make_study(riverside, study_instance_uid="1.2.3")
        assert dated.rows("1.2.3") == [(study.first_received_at,)]
