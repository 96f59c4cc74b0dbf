"""What a signature produces: the report's text and PDF, the DICOM copies that travel with the
study (Encapsulated PDF and an SR with the measurements), deliveries per destination and
notifications that carry a link and no PHI."""

from __future__ import annotations

import copy
import io
import logging
from typing import TYPE_CHECKING, Any

import pydicom
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone
from pydicom.uid import generate_uid

from accounts.models import Membership, Organization, Role

from . import dicom_sr, pdf
from .calculations import Calculated, number
from .models import SIGNED_FIELDS

if TYPE_CHECKING:
    from archive.models import Study

    from .models import CriticalResult, Report, ReportVersion

log = logging.getLogger(__name__)
UID_ROOT = "1.2.826.0.1.3680043.10.1188.9."  # ReadingRoom report objects
MAX_KEY_IMAGES = 4
DESTINATIONS = ("portal",)  # each has a transport in TRANSPORTS


def _field_line(spec: dict, value: str) -> str:
    unit = f" {spec['unit']}" if spec.get("unit") and spec["type"] == "number" else ""
    if spec["type"] == "text" and spec["label"] in ("Findings", "Impression", "Technique"):
        return value
    return f"{spec['label']}: {value}{unit}"


def sections(report: Report) -> list[tuple[str, str]]:
    out = []
    for section in report.template.definition.get("sections", []):
        if section["key"] == "impression":
            continue
        lines = [
            _field_line(spec, str(report.values.get(spec["key"], "")).strip())
            for spec in section.get("fields", [])
            if str(report.values.get(spec["key"], "")).strip()
        ]
        if lines:
            out.append((section["title"], "\n".join(lines)))
    return out


def measurement_rows(report: Report, calc: Calculated) -> list[pdf.MeasurementRow]:
    rows = []
    for spec in report.template.fields():
        value = number(report.values.get(spec["key"])) if spec["type"] == "number" else None
        if value is None or not spec.get("unit"):
            continue
        z = calc.zscores.get(spec["key"])
        rows.append(
            pdf.MeasurementRow.from_zscore(spec["label"], z)
            if z
            else pdf.MeasurementRow(spec["label"], value, spec["unit"])
        )
    for key, label in (("qtc_bazett", "QTc (Bazett)"), ("qtc_fridericia", "QTc (Fridericia)")):
        if key in calc.ecg:
            rows.append(pdf.MeasurementRow(label, round(calc.ecg[key]), "ms"))
    return rows


def report_text(report: Report, calc: Calculated) -> str:
    """The signed text as a reader reads it (kept in the version for search and audit)."""
    parts = [f"{title}\n{text}" for title, text in sections(report)]
    if calc.bsa:
        parts.append(f"BSA {calc.bsa.value_m2:.2f} m² ({calc.bsa.formula_name})")
    parts += [
        f"{r.name}: {r.value:g} {r.unit} {r.zscore_text}".strip()
        for r in measurement_rows(report, calc)
    ]
    parts.append(f"Impression\n{report.values.get('impression', '')}")
    return "\n\n".join(parts)


def _reading_group(user) -> str:
    membership = (
        Membership.objects.filter(
            user=user, active=True, organization__kind=Organization.Kind.READING_GROUP
        )
        .select_related("organization")
        .first()
    )
    return membership.organization.name if membership else "ReadingRoom"


def document(report: Report, version: ReportVersion) -> pdf.ReportDocument:
    """The report as of `version` (an addendum shows every addendum up to it, newest first,
    above the unchanged original)."""
    from . import services

    versions = list(report.versions.filter(number__lt=version.number)) + [version]
    signed = [v for v in versions if v.kind != "addendum"]
    addenda = [
        pdf.Addendum(v.signer_name, v.signed_at, v.text) for v in versions if v.kind == "addendum"
    ]
    main = signed[-1] if signed else version
    status = "ADDENDED" if addenda else ("FINAL" if main.kind == "final" else "PRELIMINARY")
    report = as_signed(report, main)
    record = report.study.patient_record
    calc = services.calculations(report)
    from identity.ages import pediatric_age

    return pdf.ReportDocument(
        facility_name=report.study.organization.name,
        reading_group=_reading_group(main.signed_by),
        patient=pdf.Patient(
            record.display_name,
            pediatric_age(record.birth_date, report.study.study_date),
            record.sex,
            record.patient_id,
            record.issuer_label,
        ),
        exam=pdf.Exam(
            report.study.study_description, report.study.study_date, report.study.accession_number
        ),
        status=status,
        impression=str(report.values.get("impression", "")),
        clinical_history=report.clinical_history
        + (f"\nComparison: {report.comparison}" if report.comparison else ""),
        sections=sections(report),
        measurements=measurement_rows(report, calc),
        signature=pdf.Signature(main.signer_name, "", main.signed_at),
        addenda=addenda,
        key_images=_key_images(report, signed_key_images(report, main)),
    )


def as_signed(report: Report, version: ReportVersion) -> Report:
    """The report as `version` signed it: an unsaved copy carrying the version's snapshot.

    Why: a document can be built long after its signature (retry_outputs stores the archive
    copy of a version whose outputs an outage lost) while the draft has moved on; it must
    show what was signed. Versions signed before bsa_formula and zscore_model joined the
    snapshot keep the report's current choice of those two."""
    signed = copy.copy(report)
    for name in SIGNED_FIELDS:
        if name in version.content:
            setattr(signed, name, version.content[name])
    return signed


def key_image_refs(study: Study) -> list[dict[str, Any]]:
    """The study's key images as a signature fixes them (reports.services._snapshot): SOP
    Instance UID and frame, in the order they were marked, at most MAX_KEY_IMAGES."""
    from viewer.models import KeyImage

    marks = KeyImage.objects.filter(study=study).select_related("instance")[:MAX_KEY_IMAGES]
    return [{"sop_instance_uid": k.instance.sop_instance_uid, "frame": k.frame} for k in marks]


def signed_key_images(report: Report, version: ReportVersion) -> list[dict[str, Any]]:
    """The key images `version` signed, whatever was marked or unmarked since: a document
    built late (retry_outputs, an addendum's PDF) shows the frames the signer saw. Versions
    signed before key images joined the snapshot keep the study's current ones."""
    refs = version.content.get("key_images")
    return key_image_refs(report.study) if refs is None else refs


def _key_images(report: Report, refs: list[dict[str, Any]]) -> list[bytes]:
    from archive.models import Instance
    from viewer import services as viewer

    uids = [ref["sop_instance_uid"] for ref in refs]
    instances = Instance.objects.filter(series__study=report.study, sop_instance_uid__in=uids)
    by_uid = {instance.sop_instance_uid: instance for instance in instances}
    images = []
    for ref in refs:
        uid, frame = ref["sop_instance_uid"], ref["frame"]
        try:
            params = viewer.RenderParams(viewport=(512, 512))
            images.append(viewer.render_frame(by_uid[uid], frame, params).content)
        except Exception:  # a key image that cannot render (or is gone) must not lose the PDF
            log.warning("key image %s frame %s did not render", uid, frame)
    return images


def pdf_for(report: Report, version: ReportVersion) -> bytes:
    return pdf.render_report_pdf(document(report, version), creation_date=version.signed_at)


def _like(report: Report) -> pydicom.Dataset:
    """Patient and study identity as the sending hospital wrote it, from a stored image."""
    from archive.storage import get_storage

    instance = report.study.series.first().instances.first()
    return pydicom.dcmread(get_storage().path(instance.storage_key), stop_before_pixels=True)


def archive_uid(version: ReportVersion) -> str:
    """SOP Instance UID of the version's Encapsulated PDF in the archive."""
    return _uid(version, "pdf")


def _uid(version: ReportVersion, what: str) -> str:
    """Deterministic: storing the same version again is a duplicate, not a second object."""
    return generate_uid(
        UID_ROOT, entropy_srcs=[report_uid(version.report), str(version.number), what]
    )


def report_uid(report: Report) -> str:
    return f"{report.study.study_instance_uid}/{report.pk}"


def store_in_archive(version: ReportVersion) -> list[str]:
    """Encapsulated PDF and SR of this version into the study, through ingest_instance."""
    from archive.dicomfile import split_part10
    from archive.documents import encapsulated_pdf
    from archive.services import IngestSource, ingest_instance

    report = version.report
    like = _like(report)
    doc = document(report, version)
    datasets = [
        encapsulated_pdf(
            bytes(version.pdf),
            like,
            f"Report {doc.status.title()}",
            series_uid=generate_uid(UID_ROOT, entropy_srcs=[report_uid(report), "pdf"]),
            sop_uid=_uid(version, "pdf"),
            series_number=900,
            when=version.signed_at,
        ),
        dicom_sr.comprehensive_sr(
            like,
            doc,
            series_uid=generate_uid(UID_ROOT, entropy_srcs=[report_uid(report), "sr"]),
            sop_uid=_uid(version, "sr"),
            when=version.signed_at,
        ),
    ]
    for ds in datasets:
        ds.InstanceNumber = version.number
    stored = []
    source = IngestSource(report.study.organization, "reports")
    for ds in datasets:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        syntax, data = split_part10(buffer.getvalue())
        outcome = ingest_instance(data, syntax, source)
        if not outcome.accepted:
            raise RuntimeError(f"report object refused by the archive: {outcome.message}")
        stored.append(ds.SOPInstanceUID)
    return stored


def referring_users(report: Report) -> list:
    """The ordering physicians of the study (the access policy's own test of who they are)."""
    from django.contrib.auth import get_user_model

    from accounts.policy import is_referring_for

    study = report.study
    candidates = (
        get_user_model()
        .objects.filter(
            is_active=True,
            memberships__organization=study.organization,
            memberships__role=Role.REFERRING,
            memberships__active=True,
        )
        .distinct()
    )
    return [user for user in candidates if is_referring_for(user, study)]


def _portal(delivery) -> None:
    """The portal reads signed versions from the database: delivered once they exist."""


# destination -> transport: raises to fail the attempt (retried with back-off). HL7 ORU^R01
# joins here when integrations/ exists.
TRANSPORTS = {"portal": _portal}
MAX_BACKOFF_MINUTES = 60


def attempt(delivery, now=None) -> int:
    """One try of one delivery; 1 if delivered. Failures back off 1, 2, 4... minutes."""
    from datetime import timedelta

    now = now or timezone.now()
    delivery.attempts += 1
    try:
        TRANSPORTS[delivery.destination](delivery)
    except Exception as exc:  # the transport's own error, kept for the operator
        delivery.status = delivery.Status.FAILED
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        delay = min(2 ** (delivery.attempts - 1), MAX_BACKOFF_MINUTES)
        delivery.next_attempt_at = now + timedelta(minutes=delay)
        delivery.save()
        return 0
    delivery.status = delivery.Status.DELIVERED
    delivery.delivered_at = now
    delivery.last_error = ""
    delivery.next_attempt_at = None
    delivery.save()
    return 1


def create_deliveries(version: ReportVersion, now=None) -> None:
    """One delivery per destination, tried at once; then the ordering physician's e-mail."""
    from .models import Delivery

    for destination in DESTINATIONS:
        delivery, created = Delivery.objects.get_or_create(version=version, destination=destination)
        if created:
            attempt(delivery, now)
    link = settings.SITE_URL + reverse("reports:portal-report", args=[version.report_id])
    for user in referring_users(version.report):
        if user.email:
            _mail(
                user.email,
                "ReadingRoom: a report you ordered is available",
                f"A {version.get_kind_display().lower()} report is available in the ReadingRoom "
                f"portal:\n{link}\n\nSign in to read it. This message contains no patient "
                "information.",
            )


def notify_escalation(critical: CriticalResult) -> None:
    report = critical.report
    link = settings.SITE_URL + reverse("reports:critical-board")
    recipients = {critical.flagged_by.email} if critical.flagged_by.email else set()
    schedulers = Membership.objects.filter(
        role=Role.SCHEDULER,
        active=True,
        organization__kind=Organization.Kind.READING_GROUP,
        organization__agreements_as_reader__sending_facility=report.study.organization_id,
    ).select_related("user")
    recipients |= {m.user.email for m in schedulers if m.user.email}
    for address in sorted(recipients):
        _mail(
            address,
            "ReadingRoom: a critical result is not acknowledged",
            f"A critical result has not been acknowledged in time. Open the critical results "
            f"board:\n{link}\n\nThis message contains no patient information.",
        )


def _mail(to: str, subject: str, body: str) -> None:
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
    except Exception:  # a mail server problem must not undo a signature
        log.exception("mail to %s failed", to)
