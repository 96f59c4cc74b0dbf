"""The archive index: what the worklist and DICOMweb query without opening files."""

from __future__ import annotations

from django.db import models


class Study(models.Model):
    study_instance_uid = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="studies"
    )
    patient_record = models.ForeignKey(
        "identity.PatientRecord", on_delete=models.PROTECT, related_name="studies"
    )
    # The record's enterprise person, copied by the database itself (triggers of migration
    # 0006) whenever a study is filed or its record is linked, unlinked or unmerged, so it can
    # never disagree with patient_record.person. Why a copy: the access policy asks of every
    # study a reader's search walks past "is another study of this child one I read?", and
    # reaching the child through the record cost three index lookups per study more.
    person = models.ForeignKey(
        "identity.Person",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        editable=False,
        db_index=False,
        related_name="+",
    )
    accession_number = models.CharField(max_length=16, blank=True, db_index=True)
    study_id = models.CharField(max_length=16, blank=True)
    study_date = models.DateField(null=True, blank=True, db_index=True)
    study_time = models.TimeField(null=True, blank=True)
    study_description = models.CharField(max_length=64, blank=True)
    referring_physician = models.CharField(max_length=324, blank=True)
    institution_name = models.CharField(max_length=64, blank=True)
    modalities_in_study = models.CharField(max_length=200, blank=True, help_text="'\\'-separated")
    body_parts = models.CharField(max_length=200, blank=True, help_text="'\\'-separated")
    patient_age = models.CharField(max_length=4, blank=True)
    patient_weight_kg = models.DecimalField(max_digits=7, decimal_places=3, null=True, blank=True)
    patient_size_m = models.DecimalField(max_digits=5, decimal_places=3, null=True, blank=True)
    first_received_at = models.DateTimeField()
    last_received_at = models.DateTimeField(db_index=True)
    # Arrival: pending from the first instance until a study_received event is recorded.
    arrival_pending = models.BooleanField(default=True, db_index=True)
    arrived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-last_received_at"]
        indexes = [
            # QIDO answers newest studies first and pages through them.
            models.Index(fields=["study_date", "study_time", "id"], name="study_qido_order"),
            # A child's studies, whose they are and their modalities, without reading the rows:
            # the policy's prior probe asks this for every study a reader's search walks past.
            models.Index(
                fields=["person", "organization", "modalities_in_study"], name="study_person_org"
            ),
        ]

    def __str__(self) -> str:
        return self.study_instance_uid

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities_in_study.split("\\") if m]


class StudyModality(models.Model):
    """One modality code of a study, with the study's date and time: the index a
    ModalitiesInStudy search walks newest first.

    Kept beside Study.modalities_in_study (the value QIDO returns) and written in the same
    statement of ingest that adds a code to it. The date and time are the study's own, copied
    once: ingest never changes them after the study row exists. Why a table: a search for a
    rare modality walked the whole study-date index testing each row's codes (at 100,000
    studies, ~3,000 rows for an admin's NM search and ~11,000 for a reader who sees NM only as
    priors); here it walks only that modality's entries, in the order QIDO answers.
    """

    # Indexed by the unique constraint, which starts with it.
    study = models.ForeignKey(
        Study, on_delete=models.CASCADE, related_name="modality_entries", db_index=False
    )
    modality = models.CharField(max_length=16)
    study_date = models.DateField(null=True, blank=True)
    study_time = models.TimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "study modalities"
        constraints = [
            models.UniqueConstraint(fields=["study", "modality"], name="studymodality_unique")
        ]
        indexes = [
            models.Index(
                fields=["modality", "study_date", "study_time", "study"],
                name="studymodality_qido_order",
            )
        ]

    def __str__(self) -> str:
        return f"{self.modality} of study {self.study_id}"


class Series(models.Model):
    series_instance_uid = models.CharField(max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=64, blank=True)
    body_part_examined = models.CharField(max_length=64, blank=True)
    frame_of_reference_uid = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name_plural = "series"
        ordering = ["series_number", "pk"]
        indexes = [
            # ModalitiesInStudy matching: does this study have a series of modality X?
            models.Index(fields=["study", "modality"], name="series_study_modality"),
        ]

    def __str__(self) -> str:
        return self.series_instance_uid


class Instance(models.Model):
    """The current copy of one SOP instance. Earlier copies live on as InstanceVersion rows."""

    sop_instance_uid = models.CharField(max_length=64, unique=True)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_class_uid = models.CharField(max_length=64, db_index=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(null=True, blank=True)
    bits_allocated = models.PositiveSmallIntegerField(null=True, blank=True)
    size = models.PositiveBigIntegerField(help_text="Bytes of the stored Part 10 file")
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the data set as received")
    storage_key = models.CharField(max_length=255, unique=True)
    source_node = models.ForeignKey(
        "accounts.DicomNode", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=64, help_text="How it came: AE title or entry point")
    received_at = models.DateTimeField()
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["instance_number", "pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(version__gte=1), name="instance_version_pos")
        ]

    def __str__(self) -> str:
        return self.sop_instance_uid


class InstanceVersion(models.Model):
    """An earlier copy of a SOP instance that a re-send with different bytes superseded."""

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    transfer_syntax_uid = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Content-addressed: a copy re-sent after being superseded shares its file with this row.
    storage_key = models.CharField(max_length=255, db_index=True)
    source = models.CharField(max_length=64)
    received_at = models.DateTimeField()
    superseded_at = models.DateTimeField()

    class Meta:
        ordering = ["instance", "version"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "version"], name="instanceversion_unique")
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} v{self.version}"


class StudyArrival(models.Model):
    """The durable record of one study_received event (an outbox row).

    Written in the same transaction that clears Study.arrival_pending; the event is dispatched
    after commit and marked processed only once every receiver has run, so a crash in between
    leaves a row the sweep re-drives.
    """

    class Reason(models.TextChoices):
        ASSOCIATION_END = "association_end", "Association ended"
        QUIET_PERIOD = "quiet_period", "Quiet period elapsed"
        IMPORT = "import", "Import finished"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="arrivals")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    instance_count = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"arrival {self.pk} of study {self.study_id} ({self.reason})"
