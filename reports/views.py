"""Report pages: the editor (autosave, measurements, calculations, sign-off), the signed
report with its versions and PDF, critical results, and the referring physician's portal.
Thin: access through the policy, work in reports.services."""

from __future__ import annotations

import json
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.policy import is_referring_for, reportable_studies, visible_studies
from archive.lookup import priors_of, visible_study_or_404
from audit.models import Action, Outcome
from audit.services import record

from . import services
from .casework import Locked, hold, touch
from .models import CriticalResult, Report, ReportVersion


def _report(request: HttpRequest, pk: int, page: str) -> Report:
    """A report of a study the user may see (else 404, audited like every study lookup)."""
    report = Report.objects.filter(pk=pk).select_related("study").first()
    if report is None:
        record(
            request,
            Action.ACCESS_DENIED,
            Outcome.DENIED,
            object_type="report",
            object_id=str(pk),
            detail={"page": page},
        )
        raise Http404("No such report")
    visible_study_or_404(request, report.study.study_instance_uid, page)
    return report


def _editable(request: HttpRequest, pk: int) -> Report:
    report = _report(request, pk, "report_edit")
    if not reportable_studies(request.user).filter(pk=report.study_id).exists():
        raise Http404("not yours to report")
    return report


@login_required
@require_GET
def editor(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = visible_study_or_404(request, study_uid, "report_edit")
    if not reportable_studies(request.user).filter(pk=study.pk).exists():
        messages.error(request, "You can read this study but not report it (no reading agreement).")
        return redirect("viewer:study", study_uid)
    report = services.open_report(request.user, study)
    if report.is_final:
        return redirect("reports:report", report.pk)
    try:
        hold(request.user, study)  # opening to report takes the case's lock
    except Locked as exc:
        messages.error(request, f"{exc} You can view the images read-only.")
        return redirect("viewer:study", study_uid)
    if report.author_id != request.user.pk:
        # The case is now this reader's (reassigned, or the attending finalising a
        # resident's preliminary): the draft goes with the lock, its text kept.
        report = services.take_over(request.user, report)
    record(request, Action.REPORT_OPEN, study=study, detail={"report": report.pk})
    priors = priors_of(study, visible_studies(request.user))
    return render(
        request,
        "reports/editor.html",
        {
            "report": report,
            "study": study,
            "sections": report.template.definition.get("sections", []),
            "calc": services.calculations(report).as_dict(),
            "suggested": services.viewer_measurements(report),
            "priors": priors,
            "critical": report.critical_results.all(),
            "missing": services.missing_required(report),
        },
    )


def _json_body(request: HttpRequest) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):  # RecursionError: arrays nested 100,000 deep
        raise services.ReportError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise services.ReportError("the body must be a JSON object")
    return body


@login_required
@require_POST
def autosave(request: HttpRequest, pk: int) -> JsonResponse:
    report = _editable(request, pk)
    try:
        body = _json_body(request)
        report = services.save_draft(request.user, report, body)
    except services.ReportError as exc:
        return JsonResponse({"error": str(exc)}, status=409 if report.is_final else 400)
    detail = {"report": report.pk, "fields": services.draft_fields(body)}
    record(request, Action.REPORT_DRAFT, study=report.study, detail=detail)
    return JsonResponse(
        {
            "saved_at": report.draft_saved_at.isoformat(),
            "calc": services.calculations(report).as_dict(),
            "missing": services.missing_required(report),
        }
    )


@login_required
@require_POST
def heartbeat(request: HttpRequest, study_uid: str) -> JsonResponse:
    """While the editor or the viewer of a case this reader holds is open, the lock stays."""
    study = visible_study_or_404(request, study_uid, "report_heartbeat")
    return JsonResponse({"held": touch(request.user, study)})


@login_required
@require_POST
def import_measurements(request: HttpRequest, pk: int) -> HttpResponse:
    report = _editable(request, pk)
    try:
        found = services.import_measurements(request.user, report)
    except services.ReportError as exc:
        messages.error(request, str(exc))
    else:
        detail = {"report": report.pk, "imported": sorted(found)}
        record(request, Action.REPORT_DRAFT, study=report.study, detail=detail)
        messages.info(request, f"{len(found)} measurement(s) taken from the viewer.")
    return redirect("reports:editor", report.study.study_instance_uid)


@login_required
@require_POST
def sign(request: HttpRequest, pk: int) -> HttpResponse:
    report = _editable(request, pk)
    try:
        version = services.sign(
            request.user,
            report,
            request.POST.get("kind", ""),
            request.POST.get("password", ""),
            request.POST.get("code", ""),
            request=request,
        )
    except services.ReportError as exc:
        messages.error(request, f"Not signed: {exc}")
        return redirect("reports:editor", report.study.study_instance_uid)
    record(
        request,
        Action.REPORT_SIGN,
        study=report.study,
        detail={"version": version.number, "kind": version.kind},
    )
    messages.info(request, f"Signed {version.get_kind_display().lower()}.")
    return redirect("reports:report", report.pk)


@login_required
@require_POST
def addendum(request: HttpRequest, pk: int) -> HttpResponse:
    report = _editable(request, pk)
    try:
        version = services.addend(
            request.user,
            report,
            request.POST.get("text", ""),
            request.POST.get("password", ""),
            request.POST.get("code", ""),
            request=request,
        )
    except services.ReportError as exc:
        messages.error(request, f"Addendum not signed: {exc}")
    else:
        record(
            request, Action.REPORT_ADDEND, study=report.study, detail={"version": version.number}
        )
        messages.info(request, "Addendum signed.")
    return redirect("reports:report", report.pk)


@login_required
@require_GET
def report_page(request: HttpRequest, pk: int) -> HttpResponse:
    report = _report(request, pk, "report")
    versions = list(report.versions.select_related("signed_by"))
    if not versions and not services.can_edit(request.user, report):
        raise Http404("no signed report yet")
    record(request, Action.REPORT_OPEN, study=report.study, detail={"report": report.pk})
    addenda = [v for v in versions if v.kind == "addendum"][::-1]
    signed = [v for v in versions if v.kind != "addendum"]
    return render(
        request,
        "reports/report.html",
        {
            "report": report,
            "addenda": addenda,
            "current": signed[-1] if signed else None,
            "versions": versions,
            "latest": versions[-1] if versions else None,
            "can_addend": report.is_final
            and reportable_studies(request.user).filter(pk=report.study_id).exists(),
            "critical": report.critical_results.all(),
        },
    )


@login_required
@require_GET
def version_pdf(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    report = _report(request, pk, "report_pdf")
    version = get_object_or_404(ReportVersion, report=report, number=number)
    record(request, Action.EXPORT, study=report.study, detail={"report_pdf": version.number})
    response = HttpResponse(bytes(version.pdf), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="report-{report.pk}-v{number}.pdf"'
    return response


@login_required
@require_POST
def flag_critical(request: HttpRequest, pk: int) -> HttpResponse:
    report = _editable(request, pk)
    try:
        critical = services.flag_critical(
            request.user,
            report,
            request.POST.get("category", ""),
            request.POST.get("urgency", ""),
            request.POST.get("finding", ""),
        )
    except services.ReportError as exc:
        messages.error(request, str(exc))
    else:
        detail = {"critical_flag": critical.pk}
        record(request, Action.REPORT_CRITICAL, study=report.study, detail=detail)
    return redirect("reports:editor", report.study.study_instance_uid)


@login_required
@require_POST
def document_critical(request: HttpRequest, pk: int) -> HttpResponse:
    critical = get_object_or_404(CriticalResult, pk=pk)
    report = _editable(request, critical.report_id)
    when = None
    if request.POST.get("when"):
        try:
            when = timezone.make_aware(datetime.fromisoformat(request.POST["when"]))
        except ValueError:
            messages.error(request, "the time of the call is not a date and time")
            return redirect("reports:editor", report.study.study_instance_uid)
    try:
        services.document_communication(
            request.user,
            critical,
            request.POST.get("to", ""),
            request.POST.get("method", ""),
            when,
            request.POST.get("read_back") == "on",
        )
    except services.ReportError as exc:
        messages.error(request, str(exc))
    else:
        detail = {"critical_documented": critical.pk}
        record(request, Action.REPORT_CRITICAL, study=report.study, detail=detail)
    return redirect("reports:editor", report.study.study_instance_uid)


@login_required
@require_POST
def acknowledge_critical(request: HttpRequest, pk: int) -> HttpResponse:
    critical = get_object_or_404(CriticalResult.objects.select_related("report"), pk=pk)
    report = _report(request, critical.report_id, "critical_ack")
    if not is_referring_for(request.user, report.study):
        # Receipt is the ordering side's to confirm; readers document their call instead.
        messages.error(request, "Only the referring physician acknowledges a critical result.")
        return redirect("reports:report", report.pk)
    services.acknowledge_critical(request.user, critical)
    detail = {"critical_ack": critical.pk}
    record(request, Action.REPORT_CRITICAL, study=report.study, detail=detail)
    messages.info(request, "Critical result acknowledged.")
    return redirect("reports:portal-report", report.pk)


@login_required
@require_GET
def critical_board(request: HttpRequest) -> HttpResponse:
    studies = visible_studies(request.user)
    rows = CriticalResult.objects.filter(report__study__in=studies).select_related(
        "report__study__patient_record", "flagged_by"
    )[:500]
    record(request, Action.STUDY_SEARCH, detail={"page": "critical_board"})
    return render(request, "reports/critical_board.html", {"rows": rows, "now": timezone.now()})


@login_required
@require_GET
def portal(request: HttpRequest) -> HttpResponse:
    """The referring physician's patients: studies the policy shows them, with report status."""
    studies = (
        visible_studies(request.user)
        .select_related("patient_record", "organization", "report")
        .order_by("-study_date", "-last_received_at")[:200]
    )
    record(request, Action.STUDY_SEARCH, detail={"page": "portal"})
    return render(request, "reports/portal.html", {"studies": studies})
