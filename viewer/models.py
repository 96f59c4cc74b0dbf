"""What the viewer keeps: hanging protocols (data, admin-editable) and the reader's
measurements and key images (saved with the study, so the report can use them)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class HangingProtocol(models.Model):
    """A rule choosing how a study is hung: the first enabled protocol (lowest `priority`)
    whose modality/body part/description match the study wins.

    `viewports` is a list, in reading order, of what each viewport shows:
    {"source": "current" | "prior", "modality": "CT", "description_contains": "AX",
     "orientation": "axial" | "coronal" | "sagittal", "preset": "1", "index": 0}
    (every key optional; `index` takes the n-th matching series). Unfilled viewports take the
    next series not yet shown.
    """

    name = models.CharField(max_length=100, unique=True)
    modality = models.CharField(max_length=16, blank=True, help_text="Empty: any modality")
    body_part = models.CharField(max_length=64, blank=True, help_text="Empty: any body part")
    description_contains = models.CharField(
        max_length=64, blank=True, help_text="Case-insensitive text in the study description"
    )
    priority = models.PositiveIntegerField(default=100, help_text="Lower wins")
    rows = models.PositiveSmallIntegerField(default=1)
    columns = models.PositiveSmallIntegerField(default=1)
    viewports = models.JSONField(default=list, blank=True)
    compare_prior = models.BooleanField(
        default=False, help_text="Open the most relevant prior beside the current study"
    )
    autoplay = models.BooleanField(default=False, help_text="Play multi-frame loops on open")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rows__gte=1, rows__lte=4, columns__gte=1, columns__lte=4),
                name="hangingprotocol_layout_1_to_4",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from .hanging import validate_viewports

        try:
            validate_viewports(self.viewports)
        except ValueError as exc:
            raise ValidationError({"viewports": str(exc)}) from exc


class Measurement(models.Model):
    """One measurement a reader drew. The value is computed by the server from the points and
    the image's calibration (never trusted from the browser), with its unit: mm only when the
    image is calibrated, otherwise px."""

    class Kind(models.TextChoices):
        DISTANCE = "distance"
        ANGLE = "angle"
        ELLIPSE = "ellipse"
        INTERVAL = "interval"  # ECG caliper: points in mm on the paper, value in ms

    study = models.ForeignKey(
        "archive.Study", on_delete=models.CASCADE, related_name="measurements"
    )
    instance = models.ForeignKey(
        "archive.Instance", on_delete=models.CASCADE, related_name="measurements"
    )
    frame = models.PositiveIntegerField(default=1)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    points = models.JSONField(help_text="Image pixel coordinates [[x, y], ...]")
    value = models.FloatField()
    unit = models.CharField(max_length=8)
    calibration = models.CharField(max_length=32, help_text="Which calibration gave the unit")
    stats = models.JSONField(default=dict, blank=True, help_text="Ellipse: mean, sd, area, ...")
    label = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["study", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.value:.1f} {self.unit}"


class KeyImage(models.Model):
    """A frame the reader marked as key: it leads in the report and the referring portal."""

    study = models.ForeignKey("archive.Study", on_delete=models.CASCADE, related_name="key_images")
    instance = models.ForeignKey(
        "archive.Instance", on_delete=models.CASCADE, related_name="key_images"
    )
    frame = models.PositiveIntegerField(default=1)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "instance", "frame", "created_by"], name="keyimage_once"
            )
        ]

    def __str__(self) -> str:
        return f"key image {self.instance_id} frame {self.frame}"
