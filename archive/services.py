"""Archive verbs: ingest an instance, record study arrivals, sweep what a crash left behind.

Every entry point (C-STORE, STOW-RS, folder import) goes through ingest_instance, so the
durability and validation rules live in one place: the file is durable before the row is
committed, and the row is committed before the caller reports success.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from identity.services import Demographics, resolve_patient_record

from .dicomfile import DicomFileError, Header, build_part10, read_header
from .models import Instance, InstanceVersion, Series, Study, StudyArrival
from .storage import get_storage, instance_key, is_valid_uid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestSource:
    """Who sent an object: the tenant, the DICOM node if any, and a label for the record."""

    organization: object
    label: str
    node: object | None = None


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one object. `code` is machine-readable; tests and adapters use it."""

    code: str  # stored | duplicate | new_version | ignored | or a rejection code
    message: str = ""
    instance_id: int | None = None
    study_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.code in ("stored", "duplicate", "new_version", "ignored")


class IngestRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def ingest_instance(
    dataset: bytes,
    transfer_syntax_uid: str,
    source: IngestSource,
    *,
    expected_sop_class_uid: str | None = None,
    expected_sop_instance_uid: str | None = None,
) -> IngestOutcome:
    """Validate, store durably and index one DICOM data set exactly as it was received.

    `dataset` is the encoded data set without file meta (what DIMSE carries); STOW-RS and
    import split Part 10 files first. Re-sending identical bytes is a harmless duplicate;
    different bytes under a known SOP Instance UID follow READINGROOM_RESEND_POLICY.
    """
    try:
        return _ingest(
            dataset, transfer_syntax_uid, source, expected_sop_class_uid, expected_sop_instance_uid
        )
    except (DicomFileError, IngestRejected) as exc:
        log.warning("rejected object from %s: %s", source.label, exc.message)
        return IngestOutcome(code=exc.code, message=exc.message)


def _ingest(
    dataset: bytes,
    ts_uid: str,
    source: IngestSource,
    expected_class: str | None,
    expected_instance: str | None,
) -> IngestOutcome:
    if not is_valid_uid(ts_uid):
        raise IngestRejected("invalid_uid", "Transfer Syntax UID is not a valid UID")
    if not dataset:
        raise IngestRejected("cannot_parse", "the data set is empty")
    header = read_header(dataset, ts_uid)
    if expected_class and header.sop_class_uid != expected_class:
        raise IngestRejected("sop_mismatch", "SOP Class UID differs from the request's")
    if expected_instance and header.sop_instance_uid != expected_instance:
        raise IngestRejected("sop_mismatch", "SOP Instance UID differs from the request's")
    part10 = build_part10(header.sop_class_uid, header.sop_instance_uid, ts_uid, dataset)

    sha256 = hashlib.sha256(dataset).hexdigest()
    key = instance_key(
        header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid, sha256
    )
    existing = _existing_outcome(header, sha256)
    if existing is not None:
        return existing

    storage = get_storage()
    storage.put(key, part10)
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return _index(header, ts_uid, sha256, key, len(part10), source)
        except IntegrityError:
            # A concurrent association indexed the same UID first: decide again from its row.
            if attempt == 2:
                raise
            existing = _existing_outcome(header, sha256)
            if existing is not None:
                return existing
        except IngestRejected:
            _delete_if_unreferenced(key)
            raise
    raise AssertionError("unreachable")


def _existing_outcome(header: Header, sha256: str) -> IngestOutcome | None:
    """Outcome for a SOP Instance UID already indexed, or None to go on and store it."""
    current = (
        Instance.objects.filter(sop_instance_uid=header.sop_instance_uid)
        .select_related("series")
        .first()
    )
    if current is None:
        return None
    study_id = current.series.study_id
    if current.sha256 == sha256 and get_storage().exists(current.storage_key):
        return IngestOutcome("duplicate", "identical copy already stored", current.pk, study_id)
    if current.sha256 == sha256:
        return None  # row without its file (restored backup?): store the file again
    if settings.RESEND_POLICY == "reject":
        raise IngestRejected("duplicate_rejected", "SOP Instance UID already stored, other bytes")
    if settings.RESEND_POLICY == "keep_first":
        return IngestOutcome(
            "ignored", "kept the earlier copy (policy keep_first)", current.pk, study_id
        )
    return None  # policy "version": index the new copy as the current version


def _index(
    header: Header, ts_uid: str, sha256: str, key: str, size: int, source: IngestSource
) -> IngestOutcome:
    now = timezone.now()
    record = resolve_patient_record(
        source.organization,
        Demographics(
            patient_id=header.patient_id,
            issuer=header.issuer_of_patient_id,
            name=header.patient_name,
            birth_date=header.patient_birth_date,
            sex=header.patient_sex,
        ),
    )
    study = _study_for(header, record, source, now)
    series = _series_for(header, study)
    fields = {
        "series": series,
        "sop_class_uid": header.sop_class_uid,
        "transfer_syntax_uid": ts_uid,
        "instance_number": header.instance_number,
        "rows": header.rows,
        "columns": header.columns,
        "number_of_frames": header.number_of_frames,
        "size": size,
        "sha256": sha256,
        "storage_key": key,
        "source_node": source.node,
        "source": source.label[:64],
        "received_at": now,
    }
    current = (
        Instance.objects.select_for_update()
        .filter(sop_instance_uid=header.sop_instance_uid)
        .select_related("series__study")
        .first()
    )
    if current is None:
        instance = Instance.objects.create(sop_instance_uid=header.sop_instance_uid, **fields)
        code, message = "stored", ""
    elif current.sha256 == sha256:
        instance = current  # the file was missing and has been written again
        code, message = "duplicate", "identical copy restored"
    else:
        if current.series.study.organization_id != source.organization.pk:
            raise IngestRejected("foreign_study", "SOP instance belongs to another organisation")
        InstanceVersion.objects.create(
            instance=current,
            version=current.version,
            transfer_syntax_uid=current.transfer_syntax_uid,
            size=current.size,
            sha256=current.sha256,
            storage_key=current.storage_key,
            source=current.source,
            received_at=current.received_at,
            superseded_at=now,
        )
        for name, value in fields.items():
            setattr(current, name, value)
        current.version += 1
        current.save()
        instance = current
        code, message = "new_version", f"stored as version {current.version}"
    Study.objects.filter(pk=study.pk).update(last_received_at=now, arrival_pending=True)
    return IngestOutcome(code, message, instance.pk, study.pk)


def _study_for(header: Header, record, source: IngestSource, now) -> Study:
    study = Study.objects.filter(study_instance_uid=header.study_instance_uid).first()
    if study is None:
        study, _ = Study.objects.get_or_create(
            study_instance_uid=header.study_instance_uid,
            defaults={
                "organization": source.organization,
                "patient_record": record,
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
    if study.organization_id != source.organization.pk:
        raise IngestRejected("foreign_study", "Study Instance UID belongs to another organisation")
    if study.patient_record_id != record.pk:
        raise IngestRejected(
            "patient_mismatch", "Study Instance UID is already filed under another Patient ID"
        )
    updates = {}
    for field, value in (
        ("modalities_in_study", header.modality),
        ("body_parts", header.body_part_examined),
    ):
        values = [v for v in getattr(study, field).split("\\") if v]
        if value and value not in values:
            updates[field] = "\\".join([*values, value])[:200]
    if updates:
        Study.objects.filter(pk=study.pk).update(**updates)
    return study


def _series_for(header: Header, study: Study) -> Series:
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


def _delete_if_unreferenced(key: str) -> None:
    referenced = (
        Instance.objects.filter(storage_key=key).exists()
        or InstanceVersion.objects.filter(storage_key=key).exists()
    )
    if not referenced:
        get_storage().delete(key)


# --- study arrival ------------------------------------------------------------------------


def record_arrivals(study_ids: set[int] | list[int], reason: str) -> list[int]:
    """Turn pending studies into study_received events; returns the arrival ids created.

    The arrival row and the cleared pending flag commit together; dispatch follows the
    commit. A study with nothing pending (already announced) gets no second event.
    """
    created = []
    for study_id in sorted(study_ids):
        with transaction.atomic():
            study = Study.objects.select_for_update().filter(pk=study_id).first()
            if study is None or not study.arrival_pending:
                continue
            count = Instance.objects.filter(series__study=study).count()
            arrival = StudyArrival.objects.create(study=study, reason=reason, instance_count=count)
            Study.objects.filter(pk=study.pk).update(
                arrival_pending=False, arrived_at=arrival.created_at
            )
            transaction.on_commit(lambda aid=arrival.pk: _enqueue_dispatch(aid))
            created.append(arrival.pk)
    return created


def _enqueue_dispatch(arrival_id: int) -> None:
    from .tasks import dispatch_study_arrival

    try:
        dispatch_study_arrival.delay(arrival_id)
    except Exception:
        # The broker is an accelerator: the sweep re-drives the durable row.
        log.exception("could not enqueue arrival %s; the sweep will retry", arrival_id)


def dispatch_arrival(arrival_id: int) -> bool:
    """Send study_received for one arrival and mark it processed. Idempotent."""
    from .signals import study_received

    arrival = StudyArrival.objects.filter(pk=arrival_id, processed_at__isnull=True).first()
    if arrival is None:
        return False
    StudyArrival.objects.filter(pk=arrival.pk).update(attempts=arrival.attempts + 1)
    study_received.send(sender=Study, study_id=arrival.study_id, arrival_id=arrival.pk)
    StudyArrival.objects.filter(pk=arrival.pk).update(processed_at=timezone.now())
    return True


def sweep_arrivals() -> dict[str, int]:
    """Announce studies quiet for the quiet period; re-drive arrivals never processed."""
    now = timezone.now()
    quiet_before = now - timedelta(seconds=settings.ARRIVAL_QUIET_SECONDS)
    quiet = list(
        Study.objects.filter(arrival_pending=True, last_received_at__lt=quiet_before).values_list(
            "pk", flat=True
        )
    )
    announced = record_arrivals(quiet, StudyArrival.Reason.QUIET_PERIOD)
    redrive_before = now - timedelta(seconds=settings.ARRIVAL_REDRIVE_SECONDS)
    stale = list(
        StudyArrival.objects.filter(processed_at__isnull=True, created_at__lt=redrive_before)
        .exclude(pk__in=announced)
        .values_list("pk", flat=True)
    )
    redriven = 0
    for arrival_id in stale:
        try:
            redriven += dispatch_arrival(arrival_id)
        except Exception:
            log.exception("study_received receiver failed for arrival %s", arrival_id)
    return {"announced": len(announced), "redriven": redriven}
