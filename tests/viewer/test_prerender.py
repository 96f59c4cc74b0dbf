"""When a study arrives, a worker task renders each image series' first frame and thumbnail
into the frame cache, so the first look at a case is a cache hit."""

from __future__ import annotations

from django.db import transaction

from archive.arrivals import record_arrivals
from archive.models import Instance, StudyArrival
from tests.conftest import wait_for
from tests.dicomweb.conftest import ingest, part10
from viewer import services
from viewer.frame_cache import frame_key, get_frame_cache, reset_frame_cache


def cached(instance: Instance, frame: int, params) -> bool:
    key = frame_key(instance.sop_instance_uid, instance.sha256, frame, params.cache_token())
    return get_frame_cache().get(key) is not None


def test_arrival_pre_renders_first_frames_and_thumbnails(
    transactional_db, riverside, worker_storage, celery_worker_process
):
    reset_frame_cache()
    study = "1.2.826.0.1.3680043.8.498.501"
    for source, series in (("CT_small.dcm", 1), ("US1_UNCR.dcm", 2), ("waveform_ecg.dcm", 3)):
        ingest(
            part10(source, StudyInstanceUID=study, SeriesNumber=series, PatientID="P5"), riverside
        )
    images = list(Instance.objects.filter(number_of_frames__gt=0).order_by("series__series_number"))
    assert len(images) == 2
    assert not any(cached(i, 1, services.RenderParams()) for i in images)
    with transaction.atomic():
        record_arrivals([images[0].series.study_id], StudyArrival.Reason.IMPORT)
    for instance in images:
        wait_for(lambda i=instance: cached(i, 1, services.RenderParams()), timeout=30)
        wait_for(lambda i=instance: cached(i, 1, services.THUMBNAIL), timeout=30)
    # And exactly what the viewer page asks first: lossless PNG (a study with ultrasound
    # hangs by the echo protocol, which names no window preset).
    for instance in images:
        assert cached(instance, 1, services.RenderParams(media_type="image/png"))


def test_prerender_uses_the_hanging_protocols_preset(db, riverside):
    reset_frame_cache()
    outcome = ingest(part10("CT_small.dcm", PatientID="P4"), riverside)
    ct = Instance.objects.get(pk=outcome.instance_id)
    assert services.prerender_study(ct.series.study_id) == 3  # viewer, default, thumbnail
    soft_tissue = services.RenderParams(window=services.Window(40, 400), media_type="image/png")
    assert cached(ct, 1, soft_tissue)  # the CT protocol's first viewport: preset 1, W400/L40


def test_prerender_skips_non_images_and_survives_a_missing_file(db, riverside, storage_dir):
    ingest(part10("waveform_ecg.dcm", PatientID="P6"), riverside)
    outcome = ingest(part10("CT_small.dcm", PatientID="P7"), riverside)
    ecg_study = Instance.objects.exclude(pk=outcome.instance_id).get().series.study_id
    assert services.prerender_study(ecg_study) == 0
    ct = Instance.objects.get(pk=outcome.instance_id)
    (storage_dir / ct.storage_key).unlink()
    assert services.prerender_study(ct.series.study_id) == 0  # logged, not raised


def test_a_replaced_instance_drops_its_cached_frames(riverside, django_capture_on_commit_callbacks):
    reset_frame_cache()
    data = part10("CT_small.dcm", PatientID="P8")
    first = Instance.objects.get(pk=ingest(data, riverside).instance_id)
    services.render_frame(first, 1, services.RenderParams())
    assert cached(first, 1, services.RenderParams())
    changed = data.replace(b"P8", b"P8", 1)[:-2] + b"\x00\x01"  # same UIDs, other pixel bytes
    with django_capture_on_commit_callbacks(execute=True):
        outcome = ingest(changed, riverside)
    assert outcome.code == "new_version"
    assert not cached(first, 1, services.RenderParams())  # the old version's frame is gone
    second = Instance.objects.get(pk=outcome.instance_id)
    image = services.render_frame(second, 1, services.RenderParams())
    assert image.media_type == "image/jpeg" and cached(second, 1, services.RenderParams())
