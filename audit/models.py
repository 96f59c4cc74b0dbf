"""The audit trail: one append-only row per access to patient data or security-relevant event.

An audit event is evidence, so it is written once and never changed. Every reference to another
row (user, organisation, patient record, study) is doubled by a text copy taken at write time:
when the referenced row is deleted the reference is cleared (SET_NULL) and the copy keeps
saying who and what it was. Clearing such a reference is the only change the ORM guard here
and the database triggers (see `audit.guard`) accept; everything else is refused.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """An attempt to change or remove an audit event: a programming error, never user input."""


class Action(models.TextChoices):
    """What happened. Extend freely; `audit.exporting` maps each value to DICOM codes."""

    STUDY_VIEW = "study.view", "Study viewed"
    IMAGE_VIEW = "image.view", "Image viewed"
    STUDY_SEARCH = "study.search", "Studies searched"
    DICOMWEB_RETRIEVE = "dicomweb.retrieve", "DICOMweb retrieve"
    DICOMWEB_STORE = "dicomweb.store", "DICOMweb store"
    REPORT_OPEN = "report.open", "Report opened"
    REPORT_DRAFT = "report.draft", "Report draft saved (autosave or measurements imported)"
    REPORT_SIGN = "report.sign", "Report signed"
    REPORT_ADDEND = "report.addend", "Report addendum"
    REPORT_CRITICAL = "report.critical", "Critical result flagged, communicated or acknowledged"
    EXPORT = "export", "Export"
    ANNOTATE = "viewer.annotate", "Measurement or key image saved"
    IDENTITY_LINK = "identity.link", "Patient records linked"
    IDENTITY_UNLINK = "identity.unlink", "Patient records unlinked"
    IDENTITY_KEEP_APART = "identity.keep_apart", "Patient records kept apart"
    IDENTITY_REVIEW = "identity.review", "Patient identity reviewed"
    LOGIN_SUCCESS = "login.success", "Login"
    LOGIN_FAILURE = "login.failure", "Login failed"
    LOGIN_LOCKOUT = "login.lockout", "Account locked out"
    LOGOUT = "logout", "Logout"
    MFA_VERIFY = "mfa.verify", "Second factor checked"
    MFA_ENROL = "mfa.enrol", "Second factor enrolled"
    MFA_RECOVERY_CODES = "mfa.recovery_codes", "Recovery codes issued"
    ACCESS_DENIED = "access.denied", "Access denied"
    TOKEN_USE = "token.use", "API token used"
    TOKEN_CREATE = "token.create", "API token created"
    TOKEN_REVOKE = "token.revoke", "API token revoked"
    ADMIN_CHANGE = "admin.change", "Administrative change"
    AUDIT_VIEW = "audit.view", "Audit trail viewed"
    AUDIT_EXPORT = "audit.export", "Audit trail exported"
    WORKLIST_VIEW = "worklist.view", "Worklist viewed"
    CASE_CREATE = "case.create", "Case opened"
    CASE_UPDATE = "case.update", "Case updated"
    CASE_ASSIGN = "case.assign", "Case assigned"
    CASE_LOCK = "case.lock", "Case locked for reporting"
    CASE_UNLOCK = "case.unlock", "Case lock released"
    CASE_LOCK_BREAK = "case.lock_break", "Case lock broken"
    CASE_CANCEL = "case.cancel", "Case cancelled"


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    DENIED = "denied", "Denied"


# Foreign keys that deleting the referenced row may clear (on_delete=SET_NULL). The ORM guard
# and the database triggers allow exactly one kind of change: one of these set to NULL.
CLEARABLE_REFERENCES = ("user", "organization", "patient_record", "study")


class AuditEventQuerySet(models.QuerySet):
    """Refuses bulk changes; the one exception is Django clearing a deleted row's reference."""

    def update(self, **kwargs: Any) -> int:
        if kwargs and all(
            _clearable_name(name) and value is None for name, value in kwargs.items()
        ):
            # Collector.delete() of a referenced user/organisation/record/study (SET_NULL).
            return super().update(**kwargs)
        raise AppendOnlyError("audit events are append-only: update() refused")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        raise AppendOnlyError("audit events are append-only: bulk_update() refused")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("audit events are append-only: delete() refused")

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]

    def _raw_delete(self, using: str) -> int:
        raise AppendOnlyError("audit events are append-only: delete() refused")

    _raw_delete.alters_data = True  # type: ignore[attr-defined]


def _clearable_name(name: str) -> bool:
    return name in CLEARABLE_REFERENCES or name in {f"{n}_id" for n in CLEARABLE_REFERENCES}


AuditEventManager = models.Manager.from_queryset(AuditEventQuerySet)


class AuditEvent(models.Model):
    """Who did what to which patient data, when, from where, and how it ended."""

    time = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
    )
    # For login failures: the username that was tried (no account may exist).
    username = models.CharField(max_length=150, blank=True, db_index=True)
    role = models.CharField(max_length=32, blank=True)
    organization = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    organization_name = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=64, choices=Action.choices, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    patient_record = models.ForeignKey(
        "identity.PatientRecord",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    patient_issuer = models.CharField(
        max_length=200, blank=True, help_text="Issuer of the patient ID, or the organisation"
    )
    study = models.ForeignKey(
        "archive.Study",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    study_uid = models.CharField(max_length=64, blank=True, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=255, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    objects = AuditEventManager()

    class Meta:
        ordering = ["-time", "-id"]
        # Related-object updates during deletes (SET_NULL) go through the guarded queryset too.
        base_manager_name = "objects"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(outcome__in=["success", "failure", "denied"]),
                name="auditevent_outcome_valid",
            )
        ]

    def __str__(self) -> str:
        who = self.username or "-"
        return f"{self.time:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.outcome}"

    def save(self, **kwargs: Any) -> None:
        """Insert only: saving a row that already exists would rewrite evidence."""
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise AppendOnlyError("audit events are append-only: save() of an existing event")
        kwargs["force_insert"] = True
        super().save(**kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """Never: an audit event outlives everything it mentions."""
        raise AppendOnlyError("audit events are append-only: delete() refused")

    @property
    def detail_json(self) -> str:
        return json.dumps(self.detail, sort_keys=True, cls=DjangoJSONEncoder, ensure_ascii=False)

    @property
    def object_label(self) -> str:
        return f"{self.object_type}:{self.object_id}" if self.object_type else ""
