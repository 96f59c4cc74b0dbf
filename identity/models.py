"""Patient records as each issuer knows them, and the enterprise person they belong to."""

from __future__ import annotations

from django.conf import settings
from django.db import models


def search_name_of(name: str) -> str:
    """A DICOM PN as QIDO matches it: the alphabetic group, upper case, no trailing empty parts.

    PS3.4 C.2.2.2.1 leaves case sensitivity of PN matching to the implementation; people type
    names in any case, so matching is case-insensitive through this indexed column.
    """
    return name.split("=")[0].rstrip("^ ").upper()


def enterprise_id_for(person_id: int) -> str:
    """The identifier shown and exported for the child across organisations."""
    return f"RR-{person_id:08d}"


class Person(models.Model):
    """One child across enterprises: the group of patient records the index says are them.

    A person emptied by a link is kept (not deleted) so that unmerging the link can give its
    records back to the very same person.
    """

    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.enterprise_id

    @property
    def enterprise_id(self) -> str:
        return enterprise_id_for(self.pk)


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
    family_name = models.CharField(max_length=64, blank=True)
    given_name = models.CharField(max_length=64, blank=True)
    middle_name = models.CharField(max_length=64, blank=True)
    mother_maiden_name = models.CharField(max_length=64, blank=True)
    parent_name = models.CharField(max_length=200, blank=True, help_text="Parent or guardian")
    postcode = models.CharField(max_length=16, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    multiple_birth = models.BooleanField(null=True, blank=True)
    birth_order = models.PositiveSmallIntegerField(null=True, blank=True)
    person = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.SET_NULL, related_name="records"
    )
    # Set when demographics are new or changed; the matcher clears it (a sweep re-drives).
    match_pending = models.BooleanField(default=True, db_index=True)
    matched_at = models.DateTimeField(null=True, blank=True)
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


# Demographic fields of a record, in the order the history and the review page show them.
DEMOGRAPHIC_FIELDS = (
    "name",
    "birth_date",
    "sex",
    "mother_maiden_name",
    "parent_name",
    "postcode",
    "phone",
    "multiple_birth",
    "birth_order",
)


class RecordHistory(models.Model):
    """Earlier demographic values of a record: later DICOM or ADT replace them, never erase."""

    record = models.ForeignKey(PatientRecord, on_delete=models.CASCADE, related_name="history")
    changed_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=64)
    changes = models.JSONField(help_text="{field: [old, new]}")

    class Meta:
        ordering = ["-changed_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.record_id} changed {self.changed_at:%Y-%m-%d}"


class BlockingKey(models.Model):
    """Blocking keys of a record (identity.matching.blocking_keys): a candidate search reads
    the records sharing a key, a handful out of millions, through this index."""

    record = models.ForeignKey(PatientRecord, on_delete=models.CASCADE, related_name="keys")
    key = models.CharField(max_length=80, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["record", "key"], name="blockingkey_unique"),
        ]

    def __str__(self) -> str:
        return self.key


class PairDecision(models.Model):
    """What the index concluded about one pair of records, with the evidence and score.

    One row per unordered pair (record_a has the lower id). A steward's decision is final for
    the pair: the matcher never re-opens a pair a person decided.
    """

    class Status(models.TextChoices):
        AUTO_LINKED = "auto_linked", "Linked automatically"
        PENDING = "pending", "Awaiting review"
        LINKED = "linked", "Linked by a steward"
        KEPT_APART = "kept_apart", "Kept apart by a steward"
        SEPARATE = "separate", "Below the review threshold"

    record_a = models.ForeignKey(PatientRecord, on_delete=models.CASCADE, related_name="+")
    record_b = models.ForeignKey(PatientRecord, on_delete=models.CASCADE, related_name="+")
    score = models.FloatField()
    evidence = models.JSONField(default=list)
    veto = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-score", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["record_a", "record_b"], name="pairdecision_unique"),
            models.CheckConstraint(
                condition=models.Q(record_a__lt=models.F("record_b")), name="pairdecision_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.record_a_id}/{self.record_b_id}: {self.status}"

    @property
    def by_person(self) -> bool:
        return self.status in (self.Status.LINKED, self.Status.KEPT_APART)


class LinkEvent(models.Model):
    """One change of grouping, kept so it can be explained and undone exactly.

    LINK: every record of `source` moved to `target` (listed in `records`); unmerging moves
    exactly those back to `source`. SPLIT: `records` moved from `source` to the new `target`.
    """

    class Kind(models.TextChoices):
        LINK = "link", "Link"
        SPLIT = "split", "Unlink"
        UNMERGE = "unmerge", "Unmerge"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    source = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+")
    target = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+")
    records = models.JSONField(help_text="ids of the records that moved")
    decision = models.ForeignKey(
        PairDecision, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    automatic = models.BooleanField(default=False)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="undoes"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.source_id} -> {self.target_id}"
