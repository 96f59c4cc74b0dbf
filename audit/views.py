"""The privacy officer's page: search the audit trail and export what was found.

Only platform admins and holders of `audit.view_auditevent` get in; everyone else gets 404,
like any other page they may not see. The trail names patients, so it also asks for the second
factor from everyone (the sign-in middleware asks it only of some roles), API tokens excepted
as everywhere. Looking at the trail is itself recorded (audit.view, audit.export): who watches
the watchers is a question the trail must answer too.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from accounts.mfa import has_confirmed_device, is_verified
from accounts.policy import is_platform_admin

from . import exporting
from .forms import AuditFilterForm
from .models import Action, AuditEvent, Outcome
from .services import record

PAGE_SIZE = 50
EXPORT_FORMATS = {
    "xml": ("application/xml; charset=utf-8", "xml"),
    "syslog": ("text/plain; charset=utf-8", "log"),
}


def can_view_audit(user) -> bool:
    return is_platform_admin(user) or (
        user.is_authenticated and user.is_active and user.has_perm("audit.view_auditevent")
    )


def _gate(request: HttpRequest) -> HttpResponse | None:
    """404 for non-auditors; for auditors without a verified second factor, the MFA page."""
    if not can_view_audit(request.user):
        raise Http404("No such page")
    if getattr(request, "api_token", None) is None and not is_verified(request.user):
        page = "mfa-verify" if has_confirmed_device(request.user) else "mfa-enrol"
        return redirect(f"{reverse(page)}?{urlencode({'next': request.get_full_path()})}")
    return None


@login_required
def events(request: HttpRequest) -> HttpResponse:
    if (detour := _gate(request)) is not None:
        return detour
    form = AuditFilterForm(request.GET)
    record(request, Action.AUDIT_VIEW, detail={"filters": form.used_filters()})
    matching = (
        form.filter(AuditEvent.objects.all()) if form.is_valid() else AuditEvent.objects.none()
    )
    page = Paginator(matching, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "audit/events.html", {"form": form, "page": page})


@login_required
def export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The filtered events as DICOM audit messages or syslog lines, in one download."""
    if (detour := _gate(request)) is not None:
        return detour
    if fmt not in EXPORT_FORMATS:
        raise Http404("No such format")
    form = AuditFilterForm(request.GET)
    filters = form.used_filters()
    if not form.is_valid():
        record(request, Action.AUDIT_EXPORT, Outcome.FAILURE, detail={"reason": "bad filter"})
        return HttpResponse(
            "Bad filter: " + "; ".join(e for errs in form.errors.values() for e in errs),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    matching = form.filter(AuditEvent.objects.all())
    limit = getattr(settings, "AUDIT_EXPORT_MAX_EVENTS", 50_000)
    count = matching.count()
    if count > limit:
        record(
            request,
            Action.AUDIT_EXPORT,
            Outcome.FAILURE,
            detail={"reason": "too many events", "format": fmt, "count": count, "filters": filters},
        )
        return HttpResponse(
            f"{count} events match; an export holds at most {limit}. Narrow the time range.",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    record(
        request,
        Action.AUDIT_EXPORT,
        detail={"format": fmt, "count": count, "filters": filters},
    )
    rows = matching.iterator(chunk_size=2000)
    if fmt == "xml":
        body: bytes | str = exporting.dicom_audit_messages(rows)
    else:
        body = exporting.syslog_lines(rows)
    content_type, extension = EXPORT_FORMATS[fmt]
    response = HttpResponse(body, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{extension}"'
    return response
