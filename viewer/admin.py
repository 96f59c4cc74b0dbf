from __future__ import annotations

from django.contrib import admin

from .models import HangingProtocol, KeyImage, Measurement


@admin.register(HangingProtocol)
class HangingProtocolAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "priority",
        "modality",
        "body_part",
        "description_contains",
        "rows",
        "columns",
        "compare_prior",
        "autoplay",
        "enabled",
    )
    list_editable = ("priority", "enabled")
    list_filter = ("modality", "enabled")


@admin.register(Measurement)
class MeasurementAdmin(admin.ModelAdmin):
    list_display = ("study", "kind", "value", "unit", "calibration", "created_by", "created_at")
    readonly_fields = [f.name for f in Measurement._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # values are computed by the server from the image, never typed


@admin.register(KeyImage)
class KeyImageAdmin(admin.ModelAdmin):
    list_display = ("study", "instance", "frame", "created_by", "created_at")
