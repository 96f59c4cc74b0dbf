"""Reports: versioned templates, the report of a study, its signed versions (append-only),
critical results and deliveries.

A report is edited as a draft (autosaved) by its author; signing (preliminary or final) takes
an immutable snapshot, a ReportVersion. After final, the report's content can never change
(service, ORM and database triggers: `reports.guard`); later words are addenda, each its own
signed version, shown above the original.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .guard import ImmutableError


class ReportTemplate(models.Model):
    """A structured template, in the spirit of IHE MRRT / RSNA RadReport, stored as data.

    `definition`: {"sections": [{"key", "title", "default": "normal text", "fields": [
        {"key", "label", "type": "text"|"number"|"choice"|"yesno", "unit", "choices",
         "required", "zscore": "<structure key>", "ecg": "hr"|"pr"|"qrs"|"qt"|"rr"}]}],
     "macros": {"keyword": "text"}}
    A template row is never edited once a report used it: the admin saves a new version.
    """

    key = models.SlugField(max_length=40)
    version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=100)
    modality = models.CharField(max_length=16, blank=True, help_text="Empty: any modality")
    description_contains = models.CharField(max_length=64, blank=True)
    priority = models.PositiveIntegerField(default=100, help_text="Lower wins when choosing")
    definition = models.JSONField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["priority", "key", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="reporttemplate_version")
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"

    def fields(self) -> list[dict]:
        return [f for s in self.definition.get("sections", []) for f in s.get("fields", [])]


class Report(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PRELIMINARY = "preliminary", "Preliminary"
        FINAL = "final", "Final"
        ADDENDED = "addended", "Addended"

    SIGNED_FINAL = (Status.FINAL, Status.ADDENDED)

    study = models.OneToOneField("archive.Study", on_delete=models.PROTECT, related_name="report")
    template = models.ForeignKey(ReportTemplate, on_delete=models.PROTECT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reports"
    )
    values = models.JSONField(default=dict, blank=True, help_text="Field key -> value")
    clinical_history = models.TextField(blank=True)
    comparison = models.TextField(blank=True)
    height_cm = models.FloatField(null=True, blank=True)
    weight_kg = models.FloatField(null=True, blank=True)
    bsa_formula = models.CharField(max_length=16, default="haycock")
    zscore_model = models.CharField(max_length=16, default="PHN")
    draft_saved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"report {self.pk} ({self.status})"

    def save(self, *args, **kwargs) -> None:
        """The ORM half of immutability: a final report's content never changes."""
        if self.pk:
            stored = Report.objects.filter(pk=self.pk).values(*CONTENT_FIELDS, "status").first()
            if stored and stored["status"] in self.SIGNED_FINAL:
                changed = [f for f in CONTENT_FIELDS if getattr(self, _attr(f)) != stored[f]]
                if changed or self.status not in self.SIGNED_FINAL:
                    raise ImmutableError(
                        f"a final report cannot be changed ({', '.join(changed) or 'status'}): "
                        "write an addendum"
                    )
        super().save(*args, **kwargs)

    @property
    def is_final(self) -> bool:
        return self.status in self.SIGNED_FINAL


# The fields of a draft the author edits besides its values (reports.services.save_draft).
EDITABLE_FIELDS = (
    "clinical_history",
    "comparison",
    "height_cm",
    "weight_kg",
    "bsa_formula",
    "zscore_model",
)
# What a signature keeps of the draft (its snapshot, reports.outputs.as_signed).
SIGNED_FIELDS = ("values", *EDITABLE_FIELDS)
CONTENT_FIELDS = ("study", "template", "author", *SIGNED_FIELDS)


def _attr(field: str) -> str:
    return f"{field}_id" if field in ("study", "template", "author") else field


class ReportVersion(models.Model):
    """One signature: a preliminary or final report, or an addendum. Append-only."""

    class Kind(models.TextChoices):
        PRELIMINARY = "preliminary", "Preliminary"
        FINAL = "final", "Final"
        ADDENDUM = "addendum", "Addendum"

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    content = models.JSONField(help_text="What was signed: values, texts, calculations")
    text = models.TextField(help_text="The signed text as read (addendum: its text)")
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    signer_name = models.CharField(max_length=200)
    signed_at = models.DateTimeField()
    content_sha256 = models.CharField(max_length=64)
    pdf = models.BinaryField(help_text="The PDF as delivered for this version")

    class Meta:
        ordering = ["report", "number"]
        constraints = [
            models.UniqueConstraint(fields=["report", "number"], name="reportversion_number")
        ]

    def __str__(self) -> str:
        return f"{self.report_id} v{self.number} {self.kind}"

    def save(self, *args, **kwargs) -> None:
        if self.pk:
            raise ImmutableError("a signed report version cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("a signed report version cannot be deleted")


class CriticalResult(models.Model):
    """A critical finding: final sign-off waits until its communication is documented (or the
    referring physician acknowledged it in the portal); unacknowledged ones escalate."""

    class Urgency(models.TextChoices):
        IMMEDIATE = "immediate", "Immediate (minutes)"
        URGENT = "urgent", "Urgent (hours)"
        NON_URGENT = "non_urgent", "Non-urgent (days)"

    class Method(models.TextChoices):
        PHONE = "phone", "Telephone"
        IN_PERSON = "in_person", "In person"
        SECURE_MESSAGE = "secure_message", "Secure message"

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="critical_results")
    category = models.CharField(max_length=100)
    urgency = models.CharField(max_length=16, choices=Urgency.choices)
    finding = models.TextField()
    flagged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    flagged_at = models.DateTimeField(auto_now_add=True)
    communicated_to = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=16, choices=Method.choices, blank=True)
    communicated_at = models.DateTimeField(null=True, blank=True)
    read_back = models.BooleanField(default=False)
    documented_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-flagged_at"]

    def __str__(self) -> str:
        return f"critical {self.category} ({self.urgency})"

    @property
    def closed(self) -> bool:
        documented = bool(self.communicated_at and self.communicated_to and self.read_back)
        return documented or self.acknowledged_at is not None


class Delivery(models.Model):
    """One signed version to one destination (the portal now; HL7 ORU plugs in later)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (retrying)"

    version = models.ForeignKey(ReportVersion, on_delete=models.PROTECT, related_name="deliveries")
    destination = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "destination"], name="delivery_once")
        ]

    def __str__(self) -> str:
        return f"{self.version} -> {self.destination}: {self.status}"
