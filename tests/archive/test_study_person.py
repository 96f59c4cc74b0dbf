"""Study.person, the copy of a study's record's person that the access policy's prior probe
reads: the database keeps it equal to patient_record.person whatever writes (archive
migration 0006), including a link that commits while a study of that record is being filed."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from archive.models import Study
from identity import services
from identity.models import PatientRecord, Person
from tests.dicomweb.conftest import ingest
from tests.dicomweb.test_qido_search import ct, uid


def record(org, mrn: str) -> PatientRecord:
    return PatientRecord.objects.create(
        organization=org, patient_id=mrn, person=Person.objects.create(), match_pending=False
    )


def file_study(rec: PatientRecord, study_uid: str) -> Study:
    now = timezone.now()
    return Study.objects.create(
        study_instance_uid=study_uid,
        organization_id=rec.organization_id,
        patient_record=rec,
        first_received_at=now,
        last_received_at=now,
    )


def person_of(study: Study) -> int | None:
    return Study.objects.values_list("person_id", flat=True).get(pk=study.pk)


def record_person(rec: PatientRecord) -> int | None:
    return PatientRecord.objects.values_list("person_id", flat=True).get(pk=rec.pk)


def test_an_ingested_study_takes_its_records_person(riverside):
    ingest(ct(1, 1, 1), riverside)
    study = Study.objects.get(study_instance_uid=uid(1))
    assert study.person_id is not None
    assert study.person_id == study.patient_record.person_id


def test_the_person_follows_link_unlink_and_unmerge(riverside, lakeview):
    steward = get_user_model().objects.create_user("steward")
    a, b, c = record(riverside, "A"), record(lakeview, "B"), record(lakeview, "C")
    sa, sb, sc = file_study(a, "9.1"), file_study(b, "9.2"), file_study(c, "9.3")
    own = {s.pk: person_of(s) for s in (sa, sb, sc)}
    assert own == {sa.pk: a.person_id, sb.pk: b.person_id, sc.pk: c.person_id}

    event = services.link_records(a, b, steward)
    assert person_of(sb) == person_of(sa) == a.person_id
    services.link_records(a, c, steward)
    assert person_of(sc) == a.person_id
    services.unlink_record(c, steward)
    assert person_of(sc) == record_person(c) != a.person_id
    services.unmerge(event, steward)
    assert person_of(sb) == own[sb.pk] and person_of(sa) == own[sa.pk]


def test_a_plain_update_a_deleted_person_and_a_direct_write_are_followed(riverside):
    a = record(riverside, "A")
    study = file_study(a, "9.1")
    elsewhere = Person.objects.create()
    PatientRecord.objects.filter(pk=a.pk).update(person=elsewhere)
    assert person_of(study) == elsewhere.pk
    Study.objects.filter(pk=study.pk).update(person=Person.objects.create())
    assert person_of(study) == elsewhere.pk, "the record's person wins over a direct write"
    elsewhere.delete()  # its records are set to no person, and so are their studies
    assert record_person(a) is None and person_of(study) is None


def test_a_study_of_a_record_with_no_person_has_none(riverside):
    a = PatientRecord.objects.create(organization=riverside, patient_id="A", person=None)
    assert person_of(file_study(a, "9.1")) is None


def _in_thread(target, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test's assertion
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["filing", "linking"])
def test_a_link_committing_while_a_study_is_filed_reaches_the_study(riverside, first):
    """One transaction files a study of record A while another moves A to a new person. On
    PostgreSQL both run at once: whichever commits first, the study must end up with A's new
    person (else the study would stay a prior of the child A was taken from). On SQLite the
    second waits at BEGIN; the test holds the first open the same way."""
    a = record(riverside, "A")
    moved_to = Person.objects.create()
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def filing() -> None:
        with transaction.atomic():
            file_study(a, "9.1")
            if first == "filing":
                inside.set()
                release.wait(timeout=10)

    def linking() -> None:
        with transaction.atomic():
            PatientRecord.objects.filter(pk=a.pk).update(person=moved_to)
            if first == "linking":
                inside.set()
                release.wait(timeout=10)

    holder, other = (filing, linking) if first == "filing" else (linking, filing)
    one = _in_thread(holder, errors)
    assert inside.wait(timeout=30)
    two = _in_thread(other, errors)
    two.join(timeout=1.0)  # long enough for the second to reach the record and wait
    release.set()
    one.join(timeout=30)
    two.join(timeout=30)

    assert not errors, errors
    study = Study.objects.get(study_instance_uid="9.1")
    assert study.person_id == moved_to.pk == record_person(a)
