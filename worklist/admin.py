"""Admin: routing rules, per-group assignment mode and agreement SLA terms are edited here;
cases are shown read-only (they change only through the worklist's services)."""

from __future__ import annotations

from django.contrib import admin

from .models import AgreementTerms, Case, GroupSettings, NotificationPreference, RoutingRule


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = (
        "position",
        "name",
        "active",
        "sending_facility",
        "modality",
        "procedure_contains",
        "body_part",
        "reading_group",
        "subspecialty",
        "priority",
        "sla_minutes",
    )
    list_display_links = ("name",)
    list_editable = ("position", "active")
    list_filter = ("active", "priority", "reading_group")


@admin.register(GroupSettings)
class GroupSettingsAdmin(admin.ModelAdmin):
    list_display = ("reading_group", "assignment_mode")


@admin.register(AgreementTerms)
class AgreementTermsAdmin(admin.ModelAdmin):
    list_display = ("agreement", "stat_minutes", "urgent_minutes", "routine_minutes")


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ("user", "email_stat", "email_breach", "email_near_breach")


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("pk", "priority", "status", "reading_group", "facility", "assignee", "due_at")
    list_filter = ("status", "priority", "reading_group")
    readonly_fields = [f.name for f in Case._meta.fields] + ["merged_studies"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
