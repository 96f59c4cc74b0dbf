from django.contrib import admin

from .models import LinkEvent, PairDecision, PatientRecord, Person, RecordHistory


@admin.register(PatientRecord)
class PatientRecordAdmin(admin.ModelAdmin):
    list_display = ["patient_id", "issuer", "organization", "name", "birth_date", "sex", "person"]
    list_filter = ["organization", "match_pending"]
    search_fields = ["patient_id", "name"]


@admin.register(PairDecision)
class PairDecisionAdmin(admin.ModelAdmin):
    list_display = ["record_a", "record_b", "score", "status", "decided_by", "updated_at"]
    list_filter = ["status"]


@admin.register(LinkEvent)
class LinkEventAdmin(admin.ModelAdmin):
    list_display = ["kind", "source", "target", "automatic", "by", "created_at"]
    readonly_fields = [f.name for f in LinkEvent._meta.fields]


admin.site.register(Person)
admin.site.register(RecordHistory)
