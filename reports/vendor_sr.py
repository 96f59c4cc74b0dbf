"""Measurements an ultrasound machine already made, read from the vendor's DICOM SR in the
study (NUM content items), so the reader does not retype them.

An item is recognised by its concept: a LOINC code commonly used for these echo dimensions,
or else its code meaning (vendors differ in codes more than in words). Only lengths in cm or
mm are taken, converted to the field's unit; anything unrecognised is left alone.
"""

from __future__ import annotations

import logging
import re

import pydicom
from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

# structure key -> (LOINC codes, words that must all appear in the code meaning)
CONCEPTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lv_edd": (("29436-3",), ("left ventricle", "internal", "diastolic")),
    "lv_esd": (("29438-9",), ("left ventricle", "internal", "systolic")),
    "ivs_d": (("18154-5",), ("septum", "diastolic", "thickness")),
    "lvpw_d": (("18152-9",), ("posterior wall", "diastolic", "thickness")),
    "aortic_root": (("18015-8",), ("aortic root",)),
    "aortic_annulus": ((), ("aortic", "annulus")),
    "mpa": ((), ("main pulmonary artery",)),
}
TO_MM = {"mm": 1.0, "cm": 10.0}
MAX_DEPTH = 20


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower())


def structure_of(concept: Dataset) -> str | None:
    code = str(concept.get("CodeValue", ""))
    meaning = _words(str(concept.get("CodeMeaning", "")))
    for key, (codes, words) in CONCEPTS.items():
        if code in codes or (words and all(w in meaning for w in words)):
            return key
    return None


def _numbers(items, depth: int, found: dict[str, float]) -> None:
    if depth > MAX_DEPTH:
        return
    for item in items or []:
        if item.get("ValueType") == "NUM" and item.get("ConceptNameCodeSequence"):
            key = structure_of(item.ConceptNameCodeSequence[0])
            measured = (item.get("MeasuredValueSequence") or [None])[0]
            if key and measured is not None and key not in found:
                units = measured.get("MeasurementUnitsCodeSequence") or []
                unit = str(units[0].get("CodeValue", "")) if units else ""
                try:
                    value = float(measured.NumericValue)
                except (AttributeError, TypeError, ValueError):
                    value = None
                if unit in TO_MM and value is not None and value > 0:
                    found[key] = value * TO_MM[unit]
        _numbers(item.get("ContentSequence"), depth + 1, found)


def measurements_mm(ds: Dataset) -> dict[str, float]:
    """Structure key -> length in mm, the first of each found in the SR's content tree."""
    found: dict[str, float] = {}
    _numbers(ds.get("ContentSequence"), 1, found)
    return found


def study_measurements_mm(study) -> dict[str, float]:
    """From every SR in the study that did not come from ReadingRoom's own reports."""
    from archive.models import Instance
    from archive.storage import get_storage

    found: dict[str, float] = {}
    srs = Instance.objects.filter(
        series__study=study, sop_class_uid__startswith="1.2.840.10008.5.1.4.1.1.88."
    ).exclude(source="reports")
    for instance in srs.order_by("received_at"):
        try:
            ds = pydicom.dcmread(get_storage().path(instance.storage_key))
        except Exception:  # an unreadable vendor SR is skipped, never fatal
            log.warning("vendor SR %s unreadable", instance.sop_instance_uid)
            continue
        for key, value in measurements_mm(ds).items():
            found.setdefault(key, value)
    return found
