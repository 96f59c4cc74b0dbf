from django.contrib import admin

from .models import DicomNode, Organization


class DicomNodeInline(admin.TabularInline):
    model = DicomNode
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "us_state"]
    list_filter = ["kind", "us_state"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [DicomNodeInline]


@admin.register(DicomNode)
class DicomNodeAdmin(admin.ModelAdmin):
    list_display = ["ae_title", "organization", "host", "port", "enabled"]
    list_filter = ["enabled"]
