from django.contrib import admin

from .models import DicomNode, Membership, Organization, ReadingAgreement


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


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "active"]
    list_filter = ["role", "organization", "active"]
    filter_horizontal = ["credentialed_facilities"]


@admin.register(ReadingAgreement)
class ReadingAgreementAdmin(admin.ModelAdmin):
    list_display = ["reading_group", "sending_facility", "active"]
    list_filter = ["active"]
