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
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from identity.services import Demographics, resolve_patient_record
from readingroom.compiled_query import CompiledQuery

from . import filing
from .dicomfile import DicomFileError, Header, part10_prefix, read_header
from .failures import IngestRejected
from .models import Instance, InstanceVersion, Study
from .signals import instance_replaced
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


@dataclass(frozen=True)
class _Filed:
    """Index rows an earlier object of the same sender resolved and validated."""

    study_id: int
    series_id: int


class IngestCache:
    """What one sender (a DICOM association) has already filed: its patient/study/series rows.

    A modality sends a series as many objects with the same patient, study and series
    attributes. The first one takes the full path (find or create the patient record, study
    and series, with every rejection rule checked in the write transaction); the ids it
    resolved are remembered here under everything that path reads from the header, so a
    later object with the very same values can only have reached the same rows with the same
    checks passing and nothing to update. It is then indexed with one INSERT (plus the study's
    arrival bookkeeping, see _file_known) in a short transaction. Anything that differs (other
    demographics, a new modality, another series) misses and takes the full path again.

    Entries are added only after the full path committed, and dropped when an insert with
    them fails on a constraint (e.g. the study was deleted meanwhile). Not thread-safe: one
    cache per association, used by that association's thread only.
    """

    def __init__(self) -> None:
        self._filed: dict[tuple, _Filed] = {}

    @staticmethod
    def key(header: Header, source: IngestSource) -> tuple:
        return (
            source.organization.pk,
            header.issuer_of_patient_id,
            header.patient_id,
            header.patient_name,
            header.patient_birth_date,
            header.patient_sex,
            header.mother_birth_name,
            header.responsible_person,
            header.patient_phone,
            header.patient_postcode,
            header.study_instance_uid,
            header.series_instance_uid,
            header.modality,
            header.body_part_examined,
        )

    def get(self, key: tuple) -> _Filed | None:
        return self._filed.get(key)

    def put(self, key: tuple, filed: _Filed) -> None:
        if len(self._filed) >= 256:  # a sender of thousands of series: keep memory bounded
            self._filed.clear()
        self._filed[key] = filed

    def drop(self, key: tuple) -> None:
        self._filed.pop(key, None)


def ingest_instance(
    dataset: bytes,
    transfer_syntax_uid: str,
    source: IngestSource,
    *,
    expected_sop_class_uid: str | None = None,
    expected_sop_instance_uid: str | None = None,
    cache: IngestCache | None = None,
) -> IngestOutcome:
    """Validate, store durably and index one DICOM data set exactly as it was received.

    `dataset` is the encoded data set without file meta (what DIMSE carries); STOW-RS and
    import split Part 10 files first. Re-sending identical bytes is a harmless duplicate;
    different bytes under a known SOP Instance UID follow READINGROOM_RESEND_POLICY.
    `cache`, one per sender (association), lets later objects of a series skip the lookups
    the first one made (see IngestCache); results are the same with or without it.
    """
    try:
        return _ingest(
            dataset,
            transfer_syntax_uid,
            source,
            expected_sop_class_uid,
            expected_sop_instance_uid,
            cache,
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
    cache: IngestCache | None = None,
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
    meta = part10_prefix(header.sop_class_uid, header.sop_instance_uid, ts_uid)

    sha256 = hashlib.sha256(dataset).hexdigest()
    key = instance_key(
        header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid, sha256
    )
    # Reads happen before the write transaction, so they never hold the write lock.
    existing, indexed = _existing_outcome(header, sha256, source)
    if existing is not None:
        return existing

    storage = get_storage()
    storage.put_parts(key, (meta, dataset))
    size = len(meta) + len(dataset)
    cache_key = IngestCache.key(header, source) if cache is not None else None
    for attempt in range(1, _ATTEMPTS + 1):
        filed = cache.get(cache_key) if cache is not None and not indexed else None
        try:
            if filed is not None:
                with transaction.atomic():
                    return _file_known(header, ts_uid, sha256, key, size, source, filed)
            with transaction.atomic():
                outcome, filed = _index(header, ts_uid, sha256, key, size, source)
            if cache is not None:
                cache.put(cache_key, filed)  # committed: the ids are real and were validated
            return outcome
        except OperationalError as exc:
            # PostgreSQL broke a deadlock between two associations by aborting this one:
            # nothing of it was committed, so the same work can simply run again.
            if attempt == _ATTEMPTS or not _is_transient(exc):
                raise
            existing, indexed = _decide_again(header, sha256, key, source)
            if existing is not None:
                return existing
        except IntegrityError:
            # A concurrent association indexed the same UID first: decide again from its row,
            # keeping our file only if a row needs it.
            if attempt == _ATTEMPTS:
                raise
            existing, indexed = _decide_again(header, sha256, key, source)
            if cache is not None and not indexed:
                cache.drop(cache_key)  # not explained by the UID: the remembered rows may be gone
            if existing is not None:
                return existing
        except IngestRejected:
            _delete_if_unreferenced(key)
            raise
    raise AssertionError("unreachable")


_ATTEMPTS = 3
# SQLSTATE deadlock_detected and serialization_failure: the transaction was rolled back.
_TRANSIENT_SQLSTATES = {"40P01", "40001"}


def _is_transient(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in _TRANSIENT_SQLSTATES


def _decide_again(
    header: Header, sha256: str, key: str, source: IngestSource
) -> tuple[IngestOutcome | None, bool]:
    """_existing_outcome after our file was written: a refusal, or an outcome that indexes
    nothing (duplicate, kept first), leaves the file only if some row refers to it."""
    try:
        existing, indexed = _existing_outcome(header, sha256, source)
    except IngestRejected:
        _delete_if_unreferenced(key)
        raise
    if existing is not None:
        _delete_if_unreferenced(key)
    return existing, indexed


# Compiled once (readingroom.compiled_query): compiling it was ~0.3 ms of every ingest.
_EXISTING = CompiledQuery(
    lambda sop_instance_uid: Instance.objects.filter(sop_instance_uid=sop_instance_uid).values_list(
        "pk", "sha256", "storage_key", "series__study_id", "series__study__organization_id"
    ),
    1,
)


def _existing_outcome(
    header: Header, sha256: str, source: IngestSource
) -> tuple[IngestOutcome | None, bool]:
    """(Outcome, True) for a SOP Instance UID already indexed, (None, indexed) to store it.

    Another organisation's UID is refused before the bytes are compared: a "duplicate" would
    tell the sender a copy it can never open is stored, and the policy's answer would tell it
    whether its bytes match someone else's.
    """
    row = _EXISTING.rows(header.sop_instance_uid)
    if not row:
        return None, False
    pk, current_sha256, storage_key, study_id, organization_id = row[0]
    if organization_id != source.organization.pk:
        raise IngestRejected("foreign_study", "SOP Instance UID belongs to another organisation")
    if current_sha256 == sha256 and get_storage().exists(storage_key):
        return IngestOutcome("duplicate", "identical copy already stored", pk, study_id), True
    if current_sha256 == sha256:
        return None, True  # row without its file (restored backup?): store the file again
    if settings.RESEND_POLICY == "reject":
        raise IngestRejected("duplicate_rejected", "SOP Instance UID already stored, other bytes")
    if settings.RESEND_POLICY == "keep_first":
        message = "kept the earlier copy (policy keep_first)"
        return IngestOutcome("ignored", message, pk, study_id), True
    return None, True  # policy "version": index the new copy as the current version


def _instance_fields(
    header: Header, ts_uid: str, sha256: str, key: str, size: int, source: IngestSource, now
) -> dict:
    return {
        "sop_class_uid": header.sop_class_uid,
        "transfer_syntax_uid": ts_uid,
        "instance_number": header.instance_number,
        "rows": header.rows,
        "columns": header.columns,
        "number_of_frames": header.number_of_frames,
        "bits_allocated": header.bits_allocated,
        "size": size,
        "sha256": sha256,
        "storage_key": key,
        "source_node": source.node,
        "source": source.label[:64],
        "received_at": now,
    }


def _file_known(
    header: Header,
    ts_uid: str,
    sha256: str,
    key: str,
    size: int,
    source: IngestSource,
    filed: _Filed,
) -> IngestOutcome:
    """Index a new SOP instance into a series this sender already filed (IngestCache).

    Inside the caller's transaction. A UID indexed meanwhile raises IntegrityError.
    """
    now = timezone.now()
    _mark_study_received(filed.study_id, now)
    instance = Instance.objects.create(
        sop_instance_uid=header.sop_instance_uid,
        series_id=filed.series_id,
        **_instance_fields(header, ts_uid, sha256, key, size, source, now),
    )
    return IngestOutcome("stored", "", instance.pk, filed.study_id)


def _mark_study_received(study_id: int, now) -> None:
    """Keep the study's arrival bookkeeping right for an instance indexed in this transaction.

    The rule (as when every instance updated the study row): once this transaction commits,
    either the study is arrival_pending, or a study_received arrival recorded after this
    instance committed counts it. So a crash at any point leaves every stored instance either
    announced or in a pending study that the sweep announces after the quiet period, and the
    association's end (record_arrivals) announces it otherwise.

    Updating the study row for every instance made every association queue on that one row
    lock (PostgreSQL) and rewrote the row each time. Instead the row is only read, under a
    lock that other ingests share but record_arrivals' SELECT ... FOR UPDATE does not:

    * record_arrivals locked the row first: this read waits for it to commit and then sees
      arrival_pending false, so the row is set pending again below; or
    * this read came first: record_arrivals waits for this transaction to commit, so its
      instance count includes this instance.

    (SQLite: write transactions are serialised by BEGIN IMMEDIATE, so a plain read is exact.)
    The row is written when it is not pending, or when last_received_at is older than
    _LAST_RECEIVED_GRANULARITY: last_received_at (the quiet-period clock of sweep_arrivals
    and the worklist's order) is kept to within that granularity rather than to the instant,
    which at most brings a quiet-period announcement forward by that much.
    """
    threshold = now - _last_received_granularity()
    sql = _STUDY_STATE_SQL + (" FOR KEY SHARE" if connection.vendor == "postgresql" else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection.ops.adapt_datetimefield_value(threshold), study_id])
        row = cursor.fetchone()
    if row is None:
        raise IntegrityError(f"study {study_id} no longer exists")
    pending, stale = row
    if not pending or stale:
        Study.objects.filter(pk=study_id).update(last_received_at=now, arrival_pending=True)


_STUDY_STATE_SQL = "SELECT arrival_pending, last_received_at < %s FROM archive_study WHERE id = %s"
assert Study._meta.db_table == "archive_study"


def _last_received_granularity() -> timedelta:
    return timedelta(seconds=min(1.0, settings.ARRIVAL_QUIET_SECONDS / 20))


def _index(
    header: Header, ts_uid: str, sha256: str, key: str, size: int, source: IngestSource
) -> tuple[IngestOutcome, _Filed]:
    """The full path: resolve (or create) patient record, study and series, check every
    rejection rule, then index the instance (new, restored or a new version)."""
    now = timezone.now()
    record = resolve_patient_record(
        source.organization,
        Demographics(
            patient_id=header.patient_id,
            issuer=header.issuer_of_patient_id,
            name=header.patient_name,
            birth_date=header.patient_birth_date,
            sex=header.patient_sex,
            mother_maiden_name=header.mother_birth_name,
            parent_name=header.responsible_person,
            postcode=header.patient_postcode,
            phone=header.patient_phone,
        ),
        source=source.label,
    )
    study = filing.study_for(header, record, source.organization, now)
    series = filing.series_for(header, study)
    fields = {"series": series, **_instance_fields(header, ts_uid, sha256, key, size, source, now)}
    current = (
        # Lock the instance row only: locking the joined study too deadlocked two
        # associations filing the same study on PostgreSQL.
        Instance.objects.select_for_update(of=("self",))
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
        if current.series_id != series.pk:
            # Moving it would leave the old study or series empty and its answers wrong.
            raise IngestRejected(
                "series_mismatch", "a new version must keep the Study and Series UIDs"
            )
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
        uid = header.sop_instance_uid
        transaction.on_commit(lambda: instance_replaced.send(sender=Instance, sop_instance_uid=uid))
    Study.objects.filter(pk=study.pk).update(last_received_at=now, arrival_pending=True)
    return IngestOutcome(code, message, instance.pk, study.pk), _Filed(study.pk, series.pk)


def _delete_if_unreferenced(key: str) -> None:
    referenced = (
        Instance.objects.filter(storage_key=key).exists()
        or InstanceVersion.objects.filter(storage_key=key).exists()
    )
    if not referenced:
        get_storage().delete(key)
