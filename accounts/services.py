"""Verbs on organisations and DICOM nodes."""

from __future__ import annotations

from .models import DicomNode


def enabled_calling_ae_titles() -> list[str]:
    return list(DicomNode.objects.filter(enabled=True).values_list("ae_title", flat=True))


def node_for_calling_ae(ae_title: str) -> DicomNode | None:
    """The enabled node for a calling AE title (AE titles are compared trimmed, as sent)."""
    return (
        DicomNode.objects.select_related("organization")
        .filter(enabled=True, ae_title__iexact=ae_title.strip())
        .first()
    )
