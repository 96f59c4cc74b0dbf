from __future__ import annotations

from django.contrib import admin
from django.db.models import Max

from .models import CriticalResult, Delivery, Report, ReportTemplate, ReportVersion


@admin.register(ReportTemplate)
class ReportTemplateAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "key",
        "version",
        "modality",
        "description_contains",
        "priority",
        "active",
    )
    list_filter = ("active", "modality")

    def save_model(self, request, obj, form, change) -> None:
        """A template a report used is never edited in place: the change becomes the next
        version, and the old one is retired (reports keep pointing at what they used)."""
        if change and Report.objects.filter(template_id=obj.pk).exists():
            top = ReportTemplate.objects.filter(key=obj.key).aggregate(v=Max("version"))["v"]
            ReportTemplate.objects.filter(pk=obj.pk).update(active=False)
            obj.pk = None
            obj.version = (top or 0) + 1
        super().save_model(request, obj, form, change)


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


admin.site.register(Report, ReadOnly)
admin.site.register(ReportVersion, ReadOnly)
admin.site.register(CriticalResult, ReadOnly)
admin.site.register(Delivery, ReadOnly)
