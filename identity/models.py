"""Patient records as each issuer knows them, and the enterprise person they belong to."""

from __future__ import annotations

from django.db import models


class Person(models.Model):
    """One child across enterprises. Created 1:1 with a record until matching links records."""

    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Person {self.pk}"


class PatientRecord(models.Model):
    """A patient as one issuer identifies them.

    The scope is the sending organisation plus the Issuer of Patient ID it sent ("" when it
    sent none, meaning the organisation's own MRNs). A value in (0010,0021) never reaches into
    another organisation's records: linking across organisations is the matcher's job.
    """

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="patient_records"
    )
    issuer = models.CharField(max_length=64, blank=True, help_text="Issuer of Patient ID, if sent")
    patient_id = models.CharField(max_length=64)
    name = models.CharField(max_length=324, blank=True, help_text="DICOM PN, as received")
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=1, blank=True)
    person = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="records"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "issuer", "patient_id"], name="patientrecord_unique_id"
            ),
            models.CheckConstraint(
                condition=~models.Q(patient_id=""), name="patientrecord_patient_id_present"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} @ {self.issuer_label}"

    @property
    def issuer_label(self) -> str:
        return self.issuer or self.organization.name

    @property
    def display_name(self) -> str:
        """PN components (family^given^middle^prefix^suffix) as 'FAMILY, Given Middle'."""
        parts = self.name.split("=")[0].split("^")
        family = parts[0].strip()
        rest = " ".join(p.strip() for p in parts[1:3] if p.strip())
        return f"{family}, {rest}" if rest else family
