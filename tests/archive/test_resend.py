"""Re-sending: identical bytes are a harmless duplicate; other bytes follow the policy."""

from __future__ import annotations

import pytest
from pydicom import dcmread

from archive.models import Instance, InstanceVersion
from archive.storage import get_storage
from tests.archive.scu import encode, send_raw, send_raw_many
from tests.factories import dataset_sha256, write_copies

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def original(tmp_path):
    (path,) = write_copies(tmp_path / "orig", 1)
    return path


@pytest.fixture
def outbox(tmp_path):
    folder = tmp_path / "outbox"
    folder.mkdir()
    return folder


def modified_body(path):
    ds = dcmread(path)
    ds.StudyDescription = "CORRECTED DESCRIPTION"
    return ds.SOPInstanceUID, encode(ds)


def send_file(port, outbox, path) -> int:
    ds = dcmread(path)
    return send_raw(port, outbox, CT, ds.SOPInstanceUID, encode(ds))


def test_identical_resend_is_a_duplicate(scp, original, outbox):
    assert send_file(scp, outbox, original) == 0x0000
    first = Instance.objects.get()
    assert send_file(scp, outbox, original) == 0x0000
    again = Instance.objects.get()
    assert (again.pk, again.version, again.storage_key) == (first.pk, 1, first.storage_key)
    assert InstanceVersion.objects.count() == 0
    assert len([p for p in get_storage().root.rglob("*.dcm")]) == 1


def test_modified_resend_keeps_earlier_copy_as_a_version(scp, original, outbox, settings):
    settings.RESEND_POLICY = "version"
    assert send_file(scp, outbox, original) == 0x0000
    first = Instance.objects.get()
    uid, body = modified_body(original)
    assert send_raw(scp, outbox, CT, uid, body) == 0x0000
    current = Instance.objects.get()
    assert current.version == 2 and current.sha256 != first.sha256
    old = InstanceVersion.objects.get()
    assert (old.version, old.sha256, old.storage_key) == (1, first.sha256, first.storage_key)
    storage = get_storage()
    assert dataset_sha256(storage.path(old.storage_key)) == first.sha256
    assert dcmread(storage.path(current.storage_key)).StudyDescription == "CORRECTED DESCRIPTION"
    # Sending the first copy again makes it current once more; nothing is lost.
    assert send_file(scp, outbox, original) == 0x0000
    current = Instance.objects.get()
    assert (current.version, current.sha256) == (3, first.sha256)
    assert sorted(InstanceVersion.objects.values_list("version", flat=True)) == [1, 2]


def test_modified_resend_rejected_by_policy(scp, original, outbox, settings):
    settings.RESEND_POLICY = "reject"
    assert send_file(scp, outbox, original) == 0x0000
    first = Instance.objects.get()
    uid, body = modified_body(original)
    assert send_raw(scp, outbox, CT, uid, body) == 0xC010
    assert Instance.objects.get().sha256 == first.sha256
    assert InstanceVersion.objects.count() == 0
    assert len(list(get_storage().root.rglob("*.dcm"))) == 1


def test_modified_resend_ignored_by_keep_first_policy(scp, original, outbox, settings):
    settings.RESEND_POLICY = "keep_first"
    assert send_file(scp, outbox, original) == 0x0000
    first = Instance.objects.get()
    uid, body = modified_body(original)
    assert send_raw(scp, outbox, CT, uid, body) == 0x0000
    assert Instance.objects.get().sha256 == first.sha256
    assert len(list(get_storage().root.rglob("*.dcm"))) == 1


def test_same_uid_from_another_organisation_is_refused(scp, original, outbox):
    assert send_file(scp, outbox, original) == 0x0000
    uid, body = modified_body(original)
    assert send_raw(scp, outbox, CT, uid, body, aet="LAKEVIEW") == 0xC011
    assert Instance.objects.get().version == 1


def test_study_uid_reused_for_another_patient_is_refused(scp, tmp_path, outbox):
    (a,) = write_copies(tmp_path / "a", 1, patient_id="MRN-A")
    ds = dcmread(a)
    assert send_file(scp, outbox, a) == 0x0000
    (b,) = write_copies(tmp_path / "b", 1, patient_id="MRN-B", study_uid=ds.StudyInstanceUID)
    assert send_file(scp, outbox, b) == 0xC012
    assert Instance.objects.count() == 1


# Within one association the series is already filed (archive.services.IngestCache), so a
# re-send must still be found before anything is indexed twice or a file left behind.


def test_identical_resend_in_the_same_association_is_a_duplicate(scp, original, outbox):
    ds = dcmread(original)
    body = encode(ds)
    assert send_raw_many(scp, outbox, CT, [(ds.SOPInstanceUID, body)] * 3) == [0, 0, 0]
    instance = Instance.objects.get()
    assert instance.version == 1 and InstanceVersion.objects.count() == 0
    assert [p.name for p in get_storage().root.rglob("*.dcm")] == [
        get_storage().path(instance.storage_key).name
    ]
    assert dataset_sha256(get_storage().path(instance.storage_key)) == instance.sha256


@pytest.mark.parametrize(
    ("policy", "status"), [("reject", 0xC010), ("keep_first", 0x0000)], ids=["reject", "keep_first"]
)
def test_modified_resend_in_the_same_association_leaves_no_stray_file(
    scp, original, outbox, settings, policy, status
):
    settings.RESEND_POLICY = policy
    ds = dcmread(original)
    uid, modified = modified_body(original)
    sent = send_raw_many(scp, outbox, CT, [(uid, encode(ds)), (uid, modified)])
    assert sent == [0x0000, status]
    instance = Instance.objects.get()
    assert instance.version == 1 and InstanceVersion.objects.count() == 0
    files = list(get_storage().root.rglob("*.dcm"))
    assert files == [get_storage().path(instance.storage_key)]
    assert dataset_sha256(files[0]) == instance.sha256


def test_modified_resend_in_the_same_association_becomes_a_version(scp, original, outbox, settings):
    settings.RESEND_POLICY = "version"
    ds = dcmread(original)
    uid, modified = modified_body(original)
    assert send_raw_many(scp, outbox, CT, [(uid, encode(ds)), (uid, modified)]) == [0, 0]
    current = Instance.objects.get()
    old = InstanceVersion.objects.get()
    assert (current.version, old.version) == (2, 1)
    storage = get_storage()
    assert dcmread(storage.path(current.storage_key)).StudyDescription == "CORRECTED DESCRIPTION"
    assert dataset_sha256(storage.path(old.storage_key)) == old.sha256


@pytest.mark.parametrize("policy", ["version", "reject", "keep_first"])
def test_identical_bytes_from_another_organisation_are_refused_not_a_duplicate(
    scp, original, outbox, settings, policy
):
    """Another hospital sending the very same object must not get a success (the copy it
    was told is stored is one it can never see) nor a policy answer that tells it whether
    the bytes match: the UID belongs to another organisation, whatever the bytes."""
    settings.RESEND_POLICY = policy
    assert send_file(scp, outbox, original) == 0x0000
    ds = dcmread(original)
    assert send_raw(scp, outbox, CT, ds.SOPInstanceUID, encode(ds), aet="LAKEVIEW") == 0xC011
    uid, body = modified_body(original)
    assert send_raw(scp, outbox, CT, uid, body, aet="LAKEVIEW") == 0xC011
    instance = Instance.objects.select_related("series__study__organization").get()
    assert instance.version == 1 and InstanceVersion.objects.count() == 0
    assert instance.series.study.organization.slug != "lakeview"
    assert len(list(get_storage().root.rglob("*.dcm"))) == 1


@pytest.mark.parametrize("moved", ["study", "series"])
def test_a_new_version_may_not_move_the_instance_to_another_study_or_series(
    scp, original, outbox, settings, moved
):
    """A new version replaces the object where it is filed; one that names another study or
    series would leave the old ones empty (and their answers wrong), so it is refused."""
    settings.RESEND_POLICY = "version"
    assert send_file(scp, outbox, original) == 0x0000
    first = Instance.objects.select_related("series__study").get()
    ds = dcmread(original)
    if moved == "study":
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.777"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.778"
    assert send_raw(scp, outbox, CT, ds.SOPInstanceUID, encode(ds)) == 0xC013
    current = Instance.objects.select_related("series__study").get()
    assert (current.version, current.sha256, current.series_id) == (
        1,
        first.sha256,
        first.series_id,
    )
    assert InstanceVersion.objects.count() == 0
    from archive.models import Series, Study

    assert Study.objects.count() == 1 and Series.objects.count() == 1
    assert len(list(get_storage().root.rglob("*.dcm"))) == 1
