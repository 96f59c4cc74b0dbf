from django.contrib import admin

from .models import PatientRecord, Person


@admin.register(PatientRecord)
class PatientRecordAdmin(admin.ModelAdmin):
    list_display = ["patient_id", "issuer", "organization", "name", "birth_date", "sex", "person"]
    list_filter = ["organization"]
    search_fields = ["patient_id", "name"]


admin.site.register(Person)
