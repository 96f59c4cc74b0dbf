"""Cases (one reading request each), routing rules, per-group assignment settings, SLA terms
and notification preferences. State changes go through worklist/services.py."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from accounts.models import Organization, Subspecialty


class Priority(models.TextChoices):
    STAT = "stat", "STAT"
    URGENT = "urgent", "Urgent"
    ROUTINE = "routine", "Routine"


# Sorting rank (lower is more urgent) and the weight a case adds to a reader's load.
PRIORITY_RANK = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}
PRIORITY_WEIGHT = {Priority.STAT: 3, Priority.URGENT: 2, Priority.ROUTINE: 1}


class AssignmentMode(models.TextChoices):
    MANUAL = "manual", "Manual (a scheduler assigns; readers may claim)"
    AUTO = "auto", "Automatic (least weighted load)"
    NEXT_CASE = "next_case", "Next-case queue (no picking)"


class GroupSettings(models.Model):
    """How one reading group hands out work."""

    reading_group = models.OneToOneField(
        Organization,
        on_delete=models.CASCADE,
        related_name="worklist_settings",
        limit_choices_to={"kind": Organization.Kind.READING_GROUP},
    )
    assignment_mode = models.CharField(
        max_length=16, choices=AssignmentMode.choices, default=AssignmentMode.MANUAL
    )

    class Meta:
        verbose_name = "reading group worklist settings"
        verbose_name_plural = "reading group worklist settings"

    def __str__(self) -> str:
        return f"{self.reading_group}: {self.get_assignment_mode_display()}"


class AgreementTerms(models.Model):
    """The SLA a reading agreement promises, per priority (minutes; blank: the default)."""

    agreement = models.OneToOneField(
        "accounts.ReadingAgreement", on_delete=models.CASCADE, related_name="worklist_terms"
    )
    stat_minutes = models.PositiveIntegerField(null=True, blank=True)
    urgent_minutes = models.PositiveIntegerField(null=True, blank=True)
    routine_minutes = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "agreement SLA terms"
        verbose_name_plural = "agreement SLA terms"

    def __str__(self) -> str:
        return f"SLA of {self.agreement}"

    def minutes_for(self, priority: str) -> int | None:
        return getattr(self, f"{priority}_minutes")


class RoutingRule(models.Model):
    """Sending facility + modality/procedure/body part -> reading group, subspecialty, priority,
    SLA. Rules are tried in `position` order; the first match wins. Blank criteria match all."""

    position = models.PositiveIntegerField(default=100, help_text="Lower is tried first")
    name = models.CharField(max_length=100)
    active = models.BooleanField(default=True)
    sending_facility = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        limit_choices_to={"kind": Organization.Kind.SENDING_FACILITY},
        help_text="Blank: any facility",
    )
    modality = models.CharField(max_length=16, blank=True, help_text="e.g. CT; blank: any")
    procedure_contains = models.CharField(
        max_length=64, blank=True, help_text="Text in the study description (any case)"
    )
    body_part = models.CharField(max_length=64, blank=True, help_text="Body Part Examined")
    reading_group = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        limit_choices_to={"kind": Organization.Kind.READING_GROUP},
        help_text="Blank: the facility's agreement decides",
    )
    subspecialty = models.CharField(max_length=32, choices=Subspecialty.choices, blank=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.ROUTINE)
    sla_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Blank: the agreement's terms for the priority"
    )

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.reading_group_id and self.reading_group.kind != Organization.Kind.READING_GROUP:
            raise ValidationError("Cases are routed to a reading group.")
        if (
            self.sending_facility_id
            and self.sending_facility.kind != Organization.Kind.SENDING_FACILITY
        ):
            raise ValidationError("Rules match a sending facility.")


class CaseStatus(models.TextChoices):
    NEW = "new", "New"
    ASSIGNED = "assigned", "Assigned"
    IN_PROGRESS = "in_progress", "In progress"
    PRELIMINARY = "preliminary", "Preliminary"
    FINAL = "final", "Final"
    ADDENDED = "addended", "Addended"
    CANCELLED = "cancelled", "Cancelled"


OPEN_STATUSES = (
    CaseStatus.NEW,
    CaseStatus.ASSIGNED,
    CaseStatus.IN_PROGRESS,
    CaseStatus.PRELIMINARY,
)
SIGNED_STATUSES = (CaseStatus.FINAL, CaseStatus.ADDENDED)


class Case(models.Model):
    """One reading request for a study (and any studies merged into it)."""

    study = models.OneToOneField("archive.Study", on_delete=models.PROTECT, related_name="case")
    merged_studies = models.ManyToManyField(
        "archive.Study", blank=True, related_name="merged_into_cases"
    )
    facility = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    reading_group = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="worklist_cases"
    )
    rule = models.ForeignKey(
        RoutingRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subspecialty = models.CharField(max_length=32, choices=Subspecialty.choices, blank=True)
    priority = models.CharField(max_length=8, choices=Priority.choices)
    priority_rank = models.PositiveSmallIntegerField()
    # Where the priority came from: "order" (once orders exist), "rule", "default", "manual".
    priority_source = models.CharField(max_length=16)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="worklist_cases",
    )
    lock_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    locked_at = models.DateTimeField(null=True, blank=True)
    lock_seen_at = models.DateTimeField(null=True, blank=True, help_text="Last lock activity")
    # A study arrived (again) after the report was signed: someone must look.
    arrived_after_signed = models.BooleanField(default=False)
    # Transition timestamps, for turnaround analytics.
    created_at = models.DateTimeField()
    assigned_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    preliminary_at = models.DateTimeField(null=True, blank=True)
    final_at = models.DateTimeField(null=True, blank=True)
    addended_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Notifications already sent (each at most once per case).
    stat_notified_at = models.DateTimeField(null=True, blank=True)
    near_breach_notified_at = models.DateTimeField(null=True, blank=True)
    breach_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "priority_rank", "pk"]
        indexes = [
            models.Index(
                fields=["reading_group", "status", "due_at"], name="case_group_status_due"
            ),
            models.Index(fields=["assignee", "status"], name="case_assignee_status"),
            models.Index(fields=["status", "due_at"], name="case_status_due"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=CaseStatus.values), name="case_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(priority__in=Priority.values), name="case_priority_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"case {self.pk} ({self.get_priority_display()}, {self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class NotificationPreference(models.Model):
    """Which worklist e-mails a user wants. No row: all of those their role gets."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="worklist_preference"
    )
    email_stat = models.BooleanField("E-mail me STAT cases (readers)", default=True)
    email_breach = models.BooleanField("E-mail me SLA breaches (schedulers)", default=True)
    email_near_breach = models.BooleanField(
        "E-mail me unassigned cases near breach (schedulers)", default=True
    )

    def __str__(self) -> str:
        return f"worklist e-mail preferences of {self.user}"
