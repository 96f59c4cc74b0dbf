"""The migration that adds the StudyModality index fills it for the studies already there."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from archive.models import Study, StudyModality
from tests.dicomweb.conftest import ingest, part10

BEFORE = ("archive", "0002_qido_indexes")


def study(n: int, series: int, modality: str, date: str) -> bytes:
    root = "1.2.826.0.1.3680043.8.498.78"
    return part10(
        "CT_small.dcm",
        StudyInstanceUID=f"{root}.{n}",
        SeriesInstanceUID=f"{root}.{n}.{series}",
        PatientID=f"MRN-{n}",
        Modality=modality,
        StudyDate=date,
    )


@pytest.mark.django_db(transaction=True)
def test_existing_studies_get_one_entry_per_code(riverside):
    ingest(study(1, 1, "CT", "20200101"), riverside)
    ingest(study(1, 2, "SR", "20200101"), riverside)
    ingest(study(2, 1, "US", ""), riverside)
    expected = sorted(StudyModality.objects.values_list("study_id", "modality", "study_date"))
    assert len(expected) == 3
    # Back to before the index existed (its table dropped, the studies kept), then forward.
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    assert Study.objects.count() == 2
    call_command("migrate", "archive", verbosity=0)
    assert sorted(StudyModality.objects.values_list("study_id", "modality", "study_date")) == (
        expected
    )
