"""A study's lists of codes (ModalitiesInStudy, body parts) and its StudyModality index entries
when two associations add different codes to the same study at the same moment.

On PostgreSQL the two ingest transactions run side by side: the second reads the study while
the first has added its code but not committed. On SQLite write transactions take the lock at
BEGIN (IMMEDIATE), so the second waits before it reads; the test holds there too."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from archive import filing
from archive.models import Study
from tests.dicomweb.conftest import ingest
from tests.dicomweb.test_qido_search import ct, uid


@pytest.mark.django_db(transaction=True)
def test_codes_added_at_once_by_two_associations_are_all_kept(riverside, monkeypatch):
    ingest(ct(1, 1, 1, BodyPartExamined="CHEST"), riverside)
    first_inside = threading.Event()
    second_waiting = threading.Event()
    series_for = filing.series_for

    def hold_the_mr_transaction_open(header, study):
        # The MR ingest has added its codes (and on PostgreSQL holds the study row) and waits
        # here, uncommitted, while the PT ingest reads the study and tries to add its own.
        if header.modality == "MR":
            first_inside.set()
            second_waiting.wait(timeout=10)
        return series_for(header, study)

    monkeypatch.setattr(filing, "series_for", hold_the_mr_transaction_open)
    errors: list[BaseException] = []

    def send(data: bytes) -> None:
        try:
            ingest(data, riverside)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    mr = threading.Thread(target=send, args=(ct(1, 2, 1, Modality="MR", BodyPartExamined="HEAD"),))
    pt = threading.Thread(target=send, args=(ct(1, 3, 1, Modality="PT", BodyPartExamined="LEG"),))
    mr.start()
    assert first_inside.wait(timeout=30)
    pt.start()
    pt.join(timeout=1.0)  # long enough for the PT ingest to read the study and block
    second_waiting.set()
    mr.join(timeout=30)
    pt.join(timeout=30)

    assert not errors, errors
    study = Study.objects.get(study_instance_uid=uid(1))
    assert sorted(study.modality_list) == ["CT", "MR", "PT"]
    assert sorted(study.body_parts.split("\\")) == ["CHEST", "HEAD", "LEG"]
    assert sorted(study.modality_entries.values_list("modality", flat=True)) == ["CT", "MR", "PT"]


@pytest.mark.django_db
def test_a_code_is_added_once_and_the_list_stays_capped(riverside):
    ingest(ct(1, 1, 1), riverside)
    study = Study.objects.get(study_instance_uid=uid(1))
    assert filing.add_code(study.pk, "modalities_in_study", "SR") is True
    assert filing.add_code(study.pk, "modalities_in_study", "SR") is False
    # Whole codes only: "C" is part of "CT" but not a code of the study.
    assert filing.add_code(study.pk, "modalities_in_study", "C") is True
    study.refresh_from_db()
    assert study.modalities_in_study == "CT\\SR\\C"

    Study.objects.filter(pk=study.pk).update(body_parts="")
    assert filing.add_code(study.pk, "body_parts", "HEAD") is True
    for n in range(60):
        filing.add_code(study.pk, "body_parts", f"PART{n}")
    study.refresh_from_db()
    assert study.body_parts.startswith("HEAD\\PART0\\PART1\\")
    assert len(study.body_parts) == 200
