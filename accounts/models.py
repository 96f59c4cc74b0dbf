"""Tenants and the DICOM peers that speak for them."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Upper

_STATE_CODES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR"
)
US_STATES = [(code, code) for code in _STATE_CODES.split()]

# PS3.5 AE: 1-16 characters of the default repertoire, no backslash or control characters,
# not all spaces.
ae_title_validator = RegexValidator(
    r"^(?! *$)[\x20-\x5b\x5d-\x7e]{1,16}$", "An AE title is 1-16 printable characters, no '\\'."
)


class Organization(models.Model):
    class Kind(models.TextChoices):
        SENDING_FACILITY = "sending_facility", "Sending facility"
        READING_GROUP = "reading_group", "Reading group"

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    us_state = models.CharField("US state", max_length=2, choices=US_STATES, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["sending_facility", "reading_group"]),
                name="organization_kind_valid",
            )
        ]

    def __str__(self) -> str:
        return self.name


class DicomNode(models.Model):
    """A remote DICOM application entity allowed to associate with us on behalf of an org."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="nodes")
    ae_title = models.CharField("AE title", max_length=16, validators=[ae_title_validator])
    host = models.CharField(max_length=255, blank=True, help_text="Used for outbound C-MOVE.")
    port = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["ae_title"]
        constraints = [
            # One calling AE title maps to exactly one organisation, whatever its case/padding.
            models.UniqueConstraint(Upper("ae_title"), name="dicomnode_ae_title_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.ae_title} ({self.organization})"

    def clean(self) -> None:
        self.ae_title = self.ae_title.strip()
        if self.organization_id and self.organization.kind != Organization.Kind.SENDING_FACILITY:
            raise ValidationError("DICOM nodes belong to sending facilities.")
