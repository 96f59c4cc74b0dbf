"""`manage.py import_dicom`: folders through the same ingest service, with a summary."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from archive.models import Instance, StudyArrival
from tests.factories import pydicom_file, write_copies


def run(*args) -> str:
    out = StringIO()
    call_command("import_dicom", *args, "--no-progress", stdout=out)
    return out.getvalue()


def test_import_folder_stores_duplicates_and_rejects_with_reasons(riverside, tmp_path, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    folder = tmp_path / "import"
    write_copies(folder / "ct", 3)
    (folder / "notes.txt").write_text("not dicom")
    (folder / "trunc.dcm").write_bytes(pydicom_file("MR_truncated.dcm").read_bytes())
    out = run(str(folder), "--organization", "riverside")
    assert "stored 3, duplicate 0, ignored 0, rejected 2" in out
    assert "notes.txt: not a DICOM Part 10 file" in out
    assert "trunc.dcm: data set ends early" in out
    assert Instance.objects.count() == 3
    assert Instance.objects.filter(source="import:riverside").count() == 3
    assert StudyArrival.objects.get().reason == "import"
    again = run(str(folder / "ct"), "--ae-title", "RIVERSIDE")
    assert "stored 0, duplicate 3" in again
    assert Instance.objects.count() == 3


def test_import_needs_a_known_sender(riverside, tmp_path):
    write_copies(tmp_path / "x", 1)
    with pytest.raises(CommandError, match="no sending facility"):
        run(str(tmp_path / "x"), "--organization", "nowhere")
    with pytest.raises(CommandError, match="no enabled DICOM node"):
        run(str(tmp_path / "x"), "--ae-title", "NOPE")


def test_import_of_nothing_is_an_error(riverside, tmp_path):
    with pytest.raises(CommandError, match="no files"):
        run(str(tmp_path / "empty"), "--organization", "riverside")
