"""Tenants and the DICOM peers that speak for them."""

from __future__ import annotations

from django.conf import settings
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
        PLATFORM = "platform", "Platform operator"

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    us_state = models.CharField("US state", max_length=2, choices=US_STATES, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["sending_facility", "reading_group", "platform"]),
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
            models.UniqueConstraint(
                Upper("ae_title"),
                name="dicomnode_ae_title_unique",
                violation_error_message="That AE title is already in use.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ae_title} ({self.organization})"

    def clean(self) -> None:
        self.ae_title = self.ae_title.strip()
        if self.organization_id and self.organization.kind != Organization.Kind.SENDING_FACILITY:
            raise ValidationError("DICOM nodes belong to sending facilities.")


class Subspecialty(models.TextChoices):
    PEDIATRIC_RADIOLOGY = "pediatric_radiology", "Pediatric radiology"
    PEDIATRIC_CARDIOLOGY = "pediatric_cardiology", "Pediatric cardiology"
    NEURORADIOLOGY = "neuroradiology", "Pediatric neuroradiology"
    GENERAL = "general", "General"


class Role(models.TextChoices):
    READER = "reader", "Reader"
    SCHEDULER = "scheduler", "Scheduler"
    REFERRING = "referring", "Referring physician"
    TECHNOLOGIST = "technologist", "Technologist"
    ORG_ADMIN = "org_admin", "Organisation admin"
    STEWARD = "steward", "Identity steward"
    ADMIN = "admin", "Platform admin"


# Which organisation kind each role lives in.
ROLE_ORG_KINDS = {
    Role.READER: {Organization.Kind.READING_GROUP},
    Role.SCHEDULER: {Organization.Kind.READING_GROUP},
    Role.REFERRING: {Organization.Kind.SENDING_FACILITY},
    Role.TECHNOLOGIST: {Organization.Kind.SENDING_FACILITY},
    Role.ORG_ADMIN: {Organization.Kind.READING_GROUP, Organization.Kind.SENDING_FACILITY},
    Role.STEWARD: {Organization.Kind.READING_GROUP, Organization.Kind.PLATFORM},
    Role.ADMIN: {Organization.Kind.PLATFORM},
}


class Membership(models.Model):
    """A user's role in one organisation. A user may hold several memberships."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    # Readers: what they read, where they are licensed, where they are credentialed.
    subspecialties = models.JSONField(default=list, blank=True)
    licensed_states = models.JSONField(default=list, blank=True)
    credentialed_facilities = models.ManyToManyField(
        Organization,
        blank=True,
        related_name="credentialed_members",
        limit_choices_to={"kind": Organization.Kind.SENDING_FACILITY},
    )
    # Referring physicians: the provider identifiers their facility uses in DICOM
    # (Referring Physician's Name) and HL7 (ORC-12/OBR-16), to find "their" patients.
    provider_ids = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization", "role"], name="membership_unique_role"
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=[r.value for r in Role]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} at {self.organization}"

    def clean(self) -> None:
        if self.organization_id and self.organization.kind not in ROLE_ORG_KINDS[self.role]:
            raise ValidationError(
                f"A {self.get_role_display()} belongs to a "
                + " or ".join(sorted(k.label for k in ROLE_ORG_KINDS[self.role]))
            )
        bad_states = set(self.licensed_states) - {code for code, _ in US_STATES}
        if bad_states:
            raise ValidationError(f"Unknown US states: {', '.join(sorted(bad_states))}")
        bad_subs = set(self.subspecialties) - set(Subspecialty.values)
        if bad_subs:
            raise ValidationError(f"Unknown subspecialties: {', '.join(sorted(bad_subs))}")


class ReadingAgreement(models.Model):
    """A reading group reads for a sending facility (optionally limited by modality/specialty)."""

    reading_group = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="agreements_as_reader",
        limit_choices_to={"kind": Organization.Kind.READING_GROUP},
    )
    sending_facility = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="agreements_as_sender",
        limit_choices_to={"kind": Organization.Kind.SENDING_FACILITY},
    )
    modalities = models.JSONField(default=list, blank=True, help_text="Empty: all modalities")
    subspecialties = models.JSONField(default=list, blank=True, help_text="Empty: all")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reading_group", "sending_facility"], name="agreement_unique_pair"
            )
        ]

    def __str__(self) -> str:
        return f"{self.reading_group} reads for {self.sending_facility}"

    def clean(self) -> None:
        if self.reading_group_id and self.reading_group.kind != Organization.Kind.READING_GROUP:
            raise ValidationError("The reader side must be a reading group.")
        if (
            self.sending_facility_id
            and self.sending_facility.kind != Organization.Kind.SENDING_FACILITY
        ):
            raise ValidationError("The sender side must be a sending facility.")


class ApiToken(models.Model):
    """A per-user credential for API clients (DICOMweb, FHIR, scripts): `Authorization: Bearer`.

    Only the SHA-256 of the token is stored, so a database leak does not hand out working
    credentials; `prefix` is a non-secret lookup key so verifying a token is one indexed read
    plus a constant-time comparison. Tokens expire and can be revoked; rows are kept (not
    deleted) so the audit trail can still name the token that was used.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField("SHA-256 of the token", max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) of {self.user}"

    @property
    def is_usable(self) -> bool:
        from django.utils import timezone

        return self.revoked_at is None and self.expires_at > timezone.now()
