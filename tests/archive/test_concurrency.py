"""Concurrent associations against the real SCP: dcmtk senders racing into the same study.

Four `storescu` processes are started at once, each over its own association; the archive
must store every instance exactly once, create each Study/Series/PatientRecord exactly once
and answer Success to every C-STORE, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from archive.models import Instance, InstanceVersion, Series, Study
from archive.storage import TEMP_PREFIX, get_storage
from identity.models import PatientRecord
from tests.conftest import require_tool
from tests.factories import dataset_sha256, write_copies

pytestmark = [pytest.mark.interop, pytest.mark.slow]

PER_SENDER = 200
RESPONSE_RE = re.compile(r"Received Store Response \(([^)]*)\)")


def copies_as_dcmtk_sends_them(folder: Path, count: int, **kwargs) -> list[Path]:
    """write_copies without CT_small's (FFFC,FFFC) trailing padding, which dcmtk drops on send.

    With it gone, the data set dcmtk puts on the wire is byte-identical to the file's, so the
    stored digest can be compared with the source file's.
    """
    paths = write_copies(folder, count, **kwargs)
    for path in paths:
        ds = dcmread(path)
        if ds.pop(0xFFFCFFFC, None) is not None:
            ds.save_as(path, enforce_file_format=True)
    return paths


def start_storescu(port: int, files: list[Path], aet: str) -> subprocess.Popen:
    """One dcmtk association sending `files`, started without waiting for it."""
    exe = require_tool("storescu")
    cmd = [
        exe,
        "-v",
        "-aet",
        aet,
        "-aec",
        "READINGROOM",
        "-R",
        "-nh",
        "127.0.0.1",
        str(port),
        *map(str, files),
    ]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TCP_NODELAY": "1"},
    )


def run_concurrently(port: int, batches: list[tuple[str, list[Path]]]) -> list[dict]:
    """Start every sender before waiting for any; return exit code and C-STORE statuses."""
    procs = [start_storescu(port, files, aet) for aet, files in batches]
    try:
        # 200 C-STOREs take far longer than starting four processes: all are in flight now.
        assert all(p.poll() is None for p in procs), "a sender finished before the others began"
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            results.append(
                {
                    "returncode": proc.returncode,
                    "statuses": Counter(RESPONSE_RE.findall(err)),
                    "log": err[-2000:],
                }
            )
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def assert_all_succeeded(results: list[dict], per_sender: int) -> None:
    for n, result in enumerate(results):
        assert result["returncode"] == 0, f"sender {n}: {result['log']}"
        assert result["statuses"] == Counter({"Success": per_sender}), (
            f"sender {n} got {dict(result['statuses'])}: {result['log']}"
        )


def assert_files_match_rows(expected_sops: set[str]) -> None:
    """Every row's file exists with the row's size and digest; no other file; no temp file."""
    storage = get_storage()
    rows = list(Instance.objects.values_list("sop_instance_uid", "storage_key", "size", "sha256"))
    for sop, key, size, sha in rows:
        path = storage.path(key)
        assert path.is_file(), f"{sop}: {key} is missing"
        assert path.stat().st_size == size, f"{sop}: size on disk differs from the row"
        assert dataset_sha256(path) == sha, f"{sop}: stored bytes differ from the row's digest"
    on_disk = sorted(p for p in storage.root.rglob("*") if p.is_file())
    assert [p for p in on_disk if p.name.startswith(TEMP_PREFIX)] == []
    assert {sop for sop, _, _, _ in rows} == expected_sops
    # Exactly one file per row: no second copy of any instance, no file that no row references.
    assert sorted(str(p.relative_to(storage.root)) for p in on_disk) == sorted(
        key for _, key, _, _ in rows
    )
    assert {p.name.rsplit(".", 2)[0] for p in on_disk} == expected_sops


# Which study/series/organisation each of the four senders writes into.
LAYOUTS = {
    # All four associations race into one study and one series: maximum contention.
    "one_series": [
        ("RIVERSIDE", "A", "A1"),
        ("RIVERSIDE", "A", "A1"),
        ("RIVERSIDE", "A", "A1"),
        ("RIVERSIDE", "A", "A1"),
    ],
    # Two senders share a study but each creates its own series in it; two others (another
    # organisation, another patient) share one study and one series.
    "mixed": [
        ("RIVERSIDE", "A", "A1"),
        ("RIVERSIDE", "A", "A2"),
        ("LAKEVIEW", "B", "B1"),
        ("LAKEVIEW", "B", "B1"),
    ],
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_four_concurrent_associations_store_every_instance_once(scp, tmp_path, layout):
    plan = LAYOUTS[layout]
    study_uids = {name: generate_uid() for _, name, _ in plan}
    series_uids = {name: generate_uid() for _, _, name in plan}
    batches = []
    expected: dict[str, tuple[Path, str, str]] = {}  # sop -> (source file, study, series)
    sender_of: dict[str, int] = {}
    for n, (aet, study, series) in enumerate(plan):
        files = copies_as_dcmtk_sends_them(
            tmp_path / f"sender{n}",
            PER_SENDER,
            study_uid=study_uids[study],
            series_uid=series_uids[series],
            patient_id=f"MRN-{aet}",
            patient_name=f"DOE^{aet}",
        )
        for path in files:
            sop = _sop_of(path)
            expected[sop] = (path, study_uids[study], series_uids[series])
            sender_of[sop] = n
        batches.append((aet, files))
    total = PER_SENDER * len(plan)
    assert len(expected) == total  # fresh UIDs everywhere

    results = run_concurrently(scp, batches)

    assert_all_succeeded(results, PER_SENDER)
    assert Instance.objects.count() == total
    sops = list(Instance.objects.values_list("sop_instance_uid", flat=True))
    assert len(set(sops)) == total
    assert set(sops) == set(expected)
    assert not InstanceVersion.objects.exists()  # nothing was taken for a re-send
    assert set(Instance.objects.values_list("version", flat=True)) == {1}
    assert Study.objects.count() == len(study_uids)
    assert Series.objects.count() == len(series_uids)
    assert PatientRecord.objects.count() == len({aet for aet, _, _ in plan})

    # Each instance is filed under its own series and study, and the study under its sender.
    for aet, study in {(aet, study) for aet, study, _ in plan}:
        row = Study.objects.select_related("organization", "patient_record").get(
            study_instance_uid=study_uids[study]
        )
        assert row.organization.nodes.get().ae_title == aet
        assert row.patient_record.patient_id == f"MRN-{aet}"
    per_series = Counter(Instance.objects.values_list("series__series_instance_uid", flat=True))
    assert per_series == Counter(
        {series_uids[s]: PER_SENDER * sum(1 for p in plan if p[2] == s) for s in series_uids}
    )
    placed = Instance.objects.values_list(
        "sop_instance_uid",
        "series__series_instance_uid",
        "series__study__study_instance_uid",
        "sha256",
    )
    for sop, series_uid, study_uid, sha in placed:
        source, want_study, want_series = expected[sop]
        assert (study_uid, series_uid) == (want_study, want_series), sop
        assert sha == dataset_sha256(source), f"{sop}: stored digest differs from what was sent"

    assert_files_match_rows(set(expected))

    # The ingests really interleaved (the test exercised the race, not four serial sends).
    in_commit_order = [
        sender_of[s]
        for s in Instance.objects.order_by("pk").values_list("sop_instance_uid", flat=True)
    ]
    switches = sum(1 for a, b in zip(in_commit_order, in_commit_order[1:]) if a != b)
    assert switches >= 20, f"only {switches} switches between senders: not concurrent"


def test_same_files_over_two_concurrent_associations_are_stored_once(scp, tmp_path):
    files = copies_as_dcmtk_sends_them(tmp_path / "same", 100)
    results = run_concurrently(scp, [("RIVERSIDE", files), ("RIVERSIDE", files)])

    # An identical re-send is a harmless duplicate: Success for every copy, on both.
    assert_all_succeeded(results, 100)
    assert Instance.objects.count() == 100
    sops = set(Instance.objects.values_list("sop_instance_uid", flat=True))
    assert sops == {_sop_of(p) for p in files}
    assert not InstanceVersion.objects.exists()
    assert set(Instance.objects.values_list("version", flat=True)) == {1}
    assert Study.objects.count() == 1
    assert Series.objects.count() == 1
    assert PatientRecord.objects.count() == 1
    digests = {_sop_of(p): dataset_sha256(p) for p in files}
    for sop, sha in Instance.objects.values_list("sop_instance_uid", "sha256"):
        assert sha == digests[sop]
    assert_files_match_rows(sops)


def _sop_of(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
