"""Audit events in the Django admin: to read, never to add, change or delete."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from .models import Action, AuditEvent
from .services import record


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "time",
        "username",
        "role",
        "organization_name",
        "action",
        "outcome",
        "patient_id",
        "study_uid",
        "source_ip",
    ]
    list_filter = ["action", "outcome"]
    search_fields = ["=username", "=patient_id", "=study_uid"]
    date_hierarchy = "time"
    list_select_related = False
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if any("\x00" in key + value for key, values in request.GET.lists() for value in values):
            # PostgreSQL refuses NUL in a query: a 400, not a 500 from the search or a filter.
            return HttpResponseBadRequest("NUL characters in the query.")
        response = super().changelist_view(request, extra_context)
        if response.status_code == 200:
            record(request, Action.AUDIT_VIEW, detail={"via": "admin", "query": request.GET.dict()})
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200:
            record(request, Action.AUDIT_VIEW, detail={"via": "admin", "event": object_id})
        return response
