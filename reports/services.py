"""Domain verbs of reporting: open a draft, autosave, pull measurements from the viewer, sign
(preliminary, final) with re-authentication, addenda, critical results, and the outputs that
follow a signature (PDF, DICOM back into the study, deliveries, notification)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import models, transaction
from django.db.models import Max
from django.dispatch import Signal
from django.utils import timezone

from accounts import mfa
from archive.models import Study

from . import outputs
from .calculations import Calculated, calculate, number
from .catalog import install_shipped
from .models import (
    EDITABLE_FIELDS,
    SIGNED_FIELDS,
    CriticalResult,
    Report,
    ReportTemplate,
    ReportVersion,
)

log = logging.getLogger(__name__)

# Sent after commit with report_id, version_id and kind: the worklist moves its case on,
# integrations deliver (HL7 ORU plugs in here).
report_signed = Signal()

MAX_TEXT = 20000


class ReportError(ValueError):
    """A request the report cannot honour (shown to the user as a 400 with this reason)."""


# --- templates and drafts ---------------------------------------------------------------------


def choose_template(study: Study) -> ReportTemplate:
    """The active template whose modality and description match, by priority; else generic."""
    if not ReportTemplate.objects.exists():
        # Never configured (or emptied): the shipped catalogue, as the migration installs it.
        install_shipped(ReportTemplate)
    modalities = {m.upper() for m in study.modality_list}
    description = study.study_description.lower()
    for template in ReportTemplate.objects.filter(active=True).order_by("priority", "-version"):
        if template.modality and template.modality.upper() not in modalities:
            continue
        wanted = template.description_contains.lower()
        if wanted and wanted not in description:
            continue
        return template
    raise ReportError("no active report template (not even the generic one)")


def defaults(template: ReportTemplate) -> dict[str, Any]:
    return {f["key"]: f.get("default", "") for f in template.fields()}


@transaction.atomic
def open_report(user, study: Study) -> Report:
    """The study's report, creating the draft (with the template's normal text) on first open.
    Weight and height come from the DICOM header when it has them."""
    report = Report.objects.select_for_update().filter(study=study).first()
    if report:
        return report
    template = choose_template(study)
    return Report.objects.create(
        study=study,
        template=template,
        author=user,
        values=defaults(template),
        comparison=comparison_statement(user, study),
        height_cm=float(study.patient_size_m) * 100 if study.patient_size_m else None,
        weight_kg=float(study.patient_weight_kg) if study.patient_weight_kg else None,
    )


def comparison_statement(user, study: Study) -> str:
    """The same child's other studies this reader can see, newest first, as the draft's
    comparison statement (the reader edits it down to the priors actually used)."""
    from accounts.policy import visible_studies
    from archive.lookup import priors_of

    dated = [p for p in priors_of(study, visible_studies(user)) if p.study_date]
    priors = sorted(dated, key=lambda p: p.study_date, reverse=True)[:10]
    listed = [
        f"{p.study_date:%Y-%m-%d} {p.study_description or p.modalities_in_study} "
        f"({p.institution_name or p.organization.name})"
        for p in priors
    ]
    return f"Compared with: {'; '.join(listed)}." if listed else "No prior studies available."


def retry_outputs(now: datetime | None = None) -> dict[str, int]:
    """Sweep: outputs a crash (or a mail/archive outage) left undone. A signed version
    without its DICOM copy in the study gets it (same UIDs: a retry is a duplicate, never a
    second object); deliveries not yet delivered are attempted again when due."""
    from archive.models import Instance

    from .models import Delivery

    now = now or timezone.now()
    done = {"archived": 0, "delivered": 0}
    recent = ReportVersion.objects.filter(signed_at__gte=now - timedelta(days=7)).select_related(
        "report__study"
    )
    for version in recent:
        if not Instance.objects.filter(sop_instance_uid=outputs.archive_uid(version)).exists():
            try:
                outputs.store_in_archive(version)
                done["archived"] += 1
            except Exception:
                log.exception("report version %s: archive copy failed again", version.pk)
        if not version.deliveries.exists():
            outputs.create_deliveries(version, now)
    due = Delivery.objects.exclude(status=Delivery.Status.DELIVERED).filter(
        models.Q(next_attempt_at__isnull=True) | models.Q(next_attempt_at__lte=now)
    )
    for delivery in due:
        done["delivered"] += outputs.attempt(delivery, now)
    return done


def _hold(user, study: Study) -> None:
    from .casework import Locked, hold

    try:
        hold(user, study)
    except Locked as exc:
        raise ReportError(str(exc)) from None


@transaction.atomic
def take_over(user, report: Report) -> Report:
    """The reader who now holds the case continues an unsigned or preliminary report."""
    report = Report.objects.select_for_update().get(pk=report.pk)
    if report.is_final:
        raise ReportError("this report is final: write an addendum")
    _hold(user, report.study)
    previous = report.author
    report.author = user
    report.save()
    log.info("report %s taken over by %s from %s", report.pk, user, previous)
    return report


def storable_text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    """`value` as text the database can keep, else a ReportError naming the field.

    PostgreSQL refuses NUL in text and jsonb columns, and a JSON body may carry an unpaired
    surrogate ("\\ud800"), which is no character at all and cannot be encoded."""
    text = str(value)
    if "\x00" in text:
        raise ReportError(f"{what}: the text contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ReportError(f"{what}: the text contains an unpaired surrogate") from None
    return text[:limit]


def can_edit(user, report: Report) -> bool:
    """The author edits their draft; nobody edits a final report (addenda instead)."""
    return report.author_id == user.pk and not report.is_final


def _clean_values(template: ReportTemplate, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ReportError("values must be an object of field: value")
    fields = {f["key"]: f for f in template.fields()}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ReportError(f"unknown fields: {', '.join(sorted(unknown))[:200]}")
    clean = {}
    for key, value in raw.items():
        spec = fields[key]
        if value is None:
            value = ""
        if not isinstance(value, str | int | float):
            raise ReportError(f"{spec['label']}: a text or number")
        value = storable_text(value, spec["label"])
        if spec["type"] == "number" and value.strip() and number(value) is None:
            raise ReportError(f"{spec['label']}: {value[:20]!r} is not a number")
        if spec["type"] == "choice" and value and value not in spec.get("choices", []):
            raise ReportError(f"{spec['label']}: choose one of {', '.join(spec['choices'])}")
        if spec["type"] == "yesno" and value not in ("", "yes", "no"):
            raise ReportError(f"{spec['label']}: yes or no")
        clean[key] = value
    return clean


@transaction.atomic
def save_draft(user, report: Report, data: dict[str, Any]) -> Report:
    """Autosave: merge what the editor sent. Refused for anyone but the author and after
    final; never touches a signed version."""
    report = Report.objects.select_for_update().get(pk=report.pk)
    if report.is_final:
        raise ReportError("this report is final: write an addendum")
    if report.author_id != user.pk:
        raise ReportError("only the report's author can edit it")
    _hold(user, report.study)
    if "values" in data:
        report.values = {**report.values, **_clean_values(report.template, data["values"])}
    for name in EDITABLE_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if name in ("height_cm", "weight_kg"):
            value = number(value)
            if data[name] not in (None, "") and value is None:
                raise ReportError(f"{name} must be a number")
        elif name == "bsa_formula" and value not in ("haycock", "mosteller", "dubois"):
            raise ReportError("bsa_formula is haycock, mosteller or dubois")
        elif name == "zscore_model" and value not in ("PHN", "Detroit", "Boston"):
            raise ReportError("zscore_model is PHN, Detroit or Boston")
        else:
            value = storable_text(value or "", name)
        setattr(report, name, value)
    report.draft_saved_at = timezone.now()
    report.save()
    return report


def draft_fields(data: dict[str, Any]) -> list[str]:
    """The fields an autosave body (as save_draft accepted it) wrote: what its audit event
    names, without the text, which the report itself keeps."""
    values = data.get("values")
    written = list(values) if isinstance(values, dict) else []
    return sorted({*written, *(name for name in EDITABLE_FIELDS if name in data)})


def calculations(report: Report) -> Calculated:
    record = report.study.patient_record
    return calculate(
        report.template.fields(),
        report.values,
        birth=record.birth_date,
        study_date=report.study.study_date,
        sex=record.sex,
        height_cm=report.height_cm,
        weight_kg=report.weight_kg,
        bsa_formula=report.bsa_formula,
        zscore_model=report.zscore_model,
    )


UNIT_FROM_MM = {"cm": 0.1, "mm": 1.0}


def viewer_measurements(report: Report) -> dict[str, float]:
    """Field key -> value from measurements already made: the vendor's SR in the study, and
    the viewer's distances and ECG calipers whose label names the field (or its z-score
    structure or ECG interval), which win (newest last); converted to the field's unit. A
    length in px (uncalibrated) is never used."""
    from viewer.models import Measurement

    from .vendor_sr import study_measurements_mm

    by_label = {key: (mm, "mm") for key, mm in study_measurements_mm(report.study).items()}
    rows = Measurement.objects.filter(study=report.study, kind__in=["distance", "interval"])
    for m in rows.order_by("created_at"):
        if m.label and m.unit in ("mm", "ms"):
            by_label[m.label] = (m.value, m.unit)
    found = {}
    for spec in report.template.fields():
        names = [spec["key"], spec.get("zscore"), spec.get("ecg")]
        label = next((n for n in names if n and n in by_label), None)
        if label is None:
            continue
        value, unit = by_label[label]
        if unit == "mm" and spec.get("unit") in UNIT_FROM_MM:
            found[spec["key"]] = round(value * UNIT_FROM_MM[spec["unit"]], 2)
        elif unit == "ms" and spec.get("unit") == "ms":
            found[spec["key"]] = round(value)
    return found


def import_measurements(user, report: Report) -> dict[str, float]:
    found = viewer_measurements(report)
    if found:
        save_draft(user, report, {"values": {k: str(v) for k, v in found.items()}})
    return found


def missing_required(report: Report) -> list[str]:
    return [
        f["label"]
        for f in report.template.fields()
        if f.get("required") and not str(report.values.get(f["key"], "")).strip()
    ]


# --- sign-off --------------------------------------------------------------------------------


def reauthenticate(user, password: str, code: str, request=None) -> None:
    """Signing is deliberate: the password again, and the TOTP (or a recovery code) when the
    user has a device.

    With the request (the views always pass it) the password goes through the authentication
    backends, like a sign-in: django-axes counts a wrong one towards the lockout and refuses
    every password while the account is locked out, and the audit trail records the failure;
    so the signing form is no way around the sign-in's guess limit."""
    if not password:
        raise ReportError("the password is not correct")
    if request is not None:
        confirmed = authenticate(request, username=user.get_username(), password=password)
        correct = confirmed is not None and confirmed.pk == user.pk
    else:
        correct = user.check_password(password)
    if not correct:
        raise ReportError("the password is not correct (or the account is locked out)")
    if mfa.has_confirmed_device(user) and (not code or mfa.verify_code(user, code) is None):
        raise ReportError("the authenticator code is not correct")


def _snapshot(report: Report, calc: Calculated) -> dict[str, Any]:
    """What a signature fixes: the draft's fields, the calculations, and which frames are key
    (the study's key images can change after signing; outputs.signed_key_images)."""
    return {
        "template": {"key": report.template.key, "version": report.template.version},
        **{name: getattr(report, name) for name in SIGNED_FIELDS},
        "calculations": calc.as_dict(),
        "key_images": outputs.key_image_refs(report.study),
    }


def _next_number(report: Report) -> int:
    return (report.versions.aggregate(n=Max("number"))["n"] or 0) + 1


def sign(
    user, report: Report, kind: str, password: str, code: str = "", request=None
) -> ReportVersion:
    """Preliminary or final signature of the author's current draft."""
    if kind not in (ReportVersion.Kind.PRELIMINARY, ReportVersion.Kind.FINAL):
        raise ReportError("sign as preliminary or final")
    reauthenticate(user, password, code, request)
    with transaction.atomic():
        report = (
            Report.objects.select_for_update().select_related("study", "template").get(pk=report.pk)
        )
        if report.is_final:
            raise ReportError("this report is already final: write an addendum")
        if report.author_id != user.pk:
            raise ReportError("only the report's author can sign it")
        _hold(user, report.study)
        missing = missing_required(report)
        if missing:
            raise ReportError(f"required before signing: {', '.join(missing)}")
        if kind == ReportVersion.Kind.FINAL:
            open_critical = [c for c in report.critical_results.all() if not c.closed]
            if open_critical:
                raise ReportError(
                    "document how the critical result was communicated (who, how, when, "
                    "read-back) or wait for the referring physician's acknowledgement"
                )
        calc = calculations(report)
        content = _snapshot(report, calc)
        now = timezone.now()
        version = _create_version(
            report, kind, content, outputs.report_text(report, calc), user, now
        )
        report.status = Report.Status.FINAL if kind == "final" else Report.Status.PRELIMINARY
        report.save()
        transaction.on_commit(lambda: _after_signature(version.pk))
    return version


def addend(
    user, report: Report, text: str, password: str, code: str = "", request=None
) -> ReportVersion:
    text = storable_text(text or "", "addendum").strip()
    if not text:
        raise ReportError("an addendum needs text")
    reauthenticate(user, password, code, request)
    with transaction.atomic():
        report = Report.objects.select_for_update().get(pk=report.pk)
        if not report.is_final:
            raise ReportError("addenda follow a final report; edit the draft instead")
        version = _create_version(
            report,
            ReportVersion.Kind.ADDENDUM,
            {"text": text[:MAX_TEXT]},
            text[:MAX_TEXT],
            user,
            timezone.now(),
        )
        report.status = Report.Status.ADDENDED
        report.save()
        transaction.on_commit(lambda: _after_signature(version.pk))
    return version


def _create_version(report, kind, content, text, user, when) -> ReportVersion:
    number_ = _next_number(report)
    signer = user.get_full_name() or user.get_username()
    digest = hashlib.sha256(
        json.dumps(content, sort_keys=True, default=str).encode() + text.encode()
    ).hexdigest()
    version = ReportVersion(
        report=report,
        number=number_,
        kind=kind,
        content=content,
        text=text,
        signed_by=user,
        signer_name=signer,
        signed_at=when,
        content_sha256=digest,
        pdf=b"",
    )
    version.pdf = outputs.pdf_for(report, version)
    version.save()
    return version


def _after_signature(version_id: int) -> None:
    """Outputs of a signature, after commit: back into the archive as DICOM, deliveries,
    the referring physician's notification, and the event others listen to."""
    version = ReportVersion.objects.select_related("report__study").get(pk=version_id)
    try:
        outputs.store_in_archive(version)
    except Exception:  # the signature stands; retry_outputs stores the copy later
        log.exception("storing report version %s in the archive failed", version_id)
    outputs.create_deliveries(version)
    report_signed.send(
        sender=Report, report_id=version.report_id, version_id=version.pk, kind=version.kind
    )


# --- critical results ----------------------------------------------------------------------------


def flag_critical(
    user, report: Report, category: str, urgency: str, finding: str
) -> CriticalResult:
    if report.is_final:
        raise ReportError("flag critical results before the final signature (or in an addendum)")
    if urgency not in CriticalResult.Urgency.values:
        raise ReportError(f"urgency is one of {', '.join(CriticalResult.Urgency.values)}")
    category, finding = storable_text(category, "category"), storable_text(finding, "finding")
    if not category.strip() or not finding.strip():
        raise ReportError("a critical result needs a category and the finding")
    return CriticalResult.objects.create(
        report=report,
        category=category.strip()[:100],
        urgency=urgency,
        finding=finding.strip(),
        flagged_by=user,
    )


@transaction.atomic
def document_communication(
    user, critical: CriticalResult, to: str, method: str, when: datetime | None, read_back: bool
) -> CriticalResult:
    """Record who was told, how and when. Once only: a documented call is part of the record
    the final signature relied on, so a second (or concurrent) documentation is refused."""
    critical = CriticalResult.objects.select_for_update().get(pk=critical.pk)
    if critical.communicated_at is not None:
        raise ReportError(
            f"this call was documented at {critical.communicated_at:%Y-%m-%d %H:%M}: the record "
            "stands (add what happened since to the report)"
        )
    if method not in CriticalResult.Method.values:
        raise ReportError(f"method is one of {', '.join(CriticalResult.Method.values)}")
    to = storable_text(to, "contacted")
    if not to.strip():
        raise ReportError("who was contacted?")
    when = when or timezone.now()
    if when > timezone.now() + timedelta(minutes=5):
        raise ReportError("the communication cannot be in the future")
    if not read_back:
        raise ReportError("the receiver must read the result back")
    critical.communicated_to = to.strip()[:200]
    critical.method = method
    critical.communicated_at = when
    critical.read_back = True
    critical.documented_by = user
    critical.save()
    return critical


def acknowledge_critical(user, critical: CriticalResult) -> CriticalResult:
    if critical.acknowledged_at is None:
        critical.acknowledged_by = user
        critical.acknowledged_at = timezone.now()
        critical.save(update_fields=["acknowledged_by", "acknowledged_at"])
    return critical


def escalate_overdue(now: datetime | None = None) -> list[int]:
    """Critical results open longer than READINGROOM_CRITICAL_ESCALATE_MINUTES escalate,
    once each (escalated_at is set in the same statement that claims them)."""
    now = now or timezone.now()
    limit = now - timedelta(minutes=settings.CRITICAL_ESCALATE_MINUTES)
    escalated = []
    candidates = CriticalResult.objects.filter(
        escalated_at__isnull=True, acknowledged_at__isnull=True, flagged_at__lte=limit
    )
    for critical in candidates:
        if critical.closed:
            continue
        claimed = CriticalResult.objects.filter(pk=critical.pk, escalated_at__isnull=True).update(
            escalated_at=now
        )
        if claimed:
            escalated.append(critical.pk)
            outputs.notify_escalation(critical)
    return escalated
