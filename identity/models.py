"""Patient records as each issuer knows them, and the enterprise person they belong to."""

from __future__ import annotations

from django.db import models


def search_name_of(name: str) -> str:
    """A DICOM PN as QIDO matches it: the alphabetic group, upper case, no trailing empty parts.

    PS3.4 C.2.2.2.1 leaves case sensitivity of PN matching to the implementation; people type
    names in any case, so matching is case-insensitive through this indexed column.
    """
    return name.split("=")[0].rstrip("^ ").upper()


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
    patient_id = models.CharField(max_length=64, db_index=True)
    name = models.CharField(max_length=324, blank=True, help_text="DICOM PN, as received")
    # What QIDO matches PatientName against: case-insensitive, indexed (see search_name_of).
    search_name = models.CharField(max_length=324, blank=True, db_index=True, editable=False)
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

    def save(self, *args, **kwargs) -> None:
        self.search_name = search_name_of(self.name)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "name" in update_fields:
            kwargs["update_fields"] = {*update_fields, "search_name"}
        super().save(*args, **kwargs)

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
