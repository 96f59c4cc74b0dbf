"""12-lead ECG: a DICOM Waveform data set -> leads in millivolts -> an SVG on ECG paper.

Pure functions, no database and no Django, like `rendering`: views, reports and tests share
one code path. Sources: DICOM PS3.3 C.10.9 (Waveform module: multiplex groups, channels,
sample interpretation) and C.10.10 (Waveform Annotation, table C.10-11); the amplitude
formula, speeds, gains, grid and layout are from ../shared/CLINICAL.md ("12-lead ECG").

The SVG's user unit is the millimetre, so a caliper (or a test) measures directly: at
25 mm/s one second is 25 user units, at 10 mm/mV one millivolt is 10.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .errors import _CodedError, guarded

__all__ = ["Annotation", "BadScale", "Ecg", "GAINS_MM_MV", "Lead", "NotAWaveform"]
__all__ += ["SPEEDS_MM_S", "lead_label", "read_ecg", "render_svg"]

SPEEDS_MM_S = (12.5, 25.0, 50.0)
GAINS_MM_MV = (5.0, 10.0, 20.0)
STANDARD_ROWS = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
STANDARD_LEADS = frozenset(label for row in STANDARD_ROWS for label in row)
COLUMN_S = 2.5  # each column of the 3x4 shows 2.5 s, from successive windows as on paper
PAPER_S = 4 * COLUMN_S  # 10 s: the width of the paper and of the rhythm strip
RHYTHM_LEAD = "II"
CAL_MV, CAL_S = 1.0, 0.2  # the 1 mV, 0.2 s calibration pulse

# Sample interpretations (PS3.3 C.10.9) that are linear integers. MB and AB are
# companded (mu-law / A-law audio) and never carry ECG voltages, so they are refused.
_DTYPES = {(8, "SB"): "i1", (8, "UB"): "u1", (16, "SS"): "i2"}
_DTYPES |= {(16, "US"): "u2", (32, "SL"): "i4", (32, "UL"): "u4"}
# UCUM is case-sensitive ("MV" would be megavolt), so codes are matched exactly; the code
# meanings are a fallback for senders that fill only those.
_UNITS_TO_MV = {"nV": 1e-6, "uV": 1e-3, "µV": 1e-3, "mV": 1.0, "V": 1e3}
_UNITS_TO_MV |= {"nanovolt": 1e-6, "microvolt": 1e-3, "millivolt": 1.0, "volt": 1e3}
_LEAD_NAMES = ("I", "II", "III", "aVR", "aVL", "aVF", "V3R", "V4R", "V5R", "V6R", "V7R")
_CANONICAL = {name.upper(): name for name in (*_LEAD_NAMES, *(f"V{i}" for i in range(1, 10)))}
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LEAD_RE = re.compile(r"^\s*(?:lead\s+)?(\w+)\s*(?:\(.*\))?\s*$", re.IGNORECASE)


class NotAWaveform(_CodedError):
    code = "not_a_waveform"


class BadScale(_CodedError):
    code = "bad_scale"


@dataclass(frozen=True, eq=False)
class Lead:
    label: str  # normalised ("I", "aVR", "V1") when recognised, else the raw text
    raw_label: str  # Channel Source code meaning as sent
    millivolts: np.ndarray  # float64; NaN where the sender padded (no data)


@dataclass(frozen=True)
class Annotation:
    text: str  # Unformatted Text Value (free text)
    concept: str  # Concept Name code meaning ("QT Interval", "P Onset")
    value: float | None  # Numeric Value
    units: str  # Measurement Units code value ("ms", "deg")
    channels: tuple[tuple[int, int], ...]  # (multiplex group, channel), 1-based; channel 0 = all
    times_s: tuple[float, ...]  # positions in the displayed group, seconds from its start
    sample_positions: tuple[int, ...] = ()  # Referenced Sample Positions as sent (1-based)
    range_type: str = ""  # Temporal Range Type: POINT, SEGMENT, MULTIPOINT...

    def caption(self) -> str:
        """One line for the reader: what the file says, with its unit and positions."""
        parts = [p for p in (self.text, self.concept) if p]
        line = " · ".join(parts) or "annotation"
        if self.value is not None:
            line += f": {self.value:g} {self.units}".rstrip()
        if self.times_s:
            line += " @ " + ", ".join(f"{t * 1000:g} ms" for t in self.times_s)
        return line


@dataclass(frozen=True, eq=False)
class Ecg:
    leads: list[Lead]
    sampling_hz: float
    duration_s: float
    annotations: list[Annotation]

    def lead(self, label: str) -> Lead | None:
        return next((lead for lead in self.leads if lead.label == label), None)


def lead_label(raw: str) -> str:
    """Normalise a Channel Source code meaning: "Lead I (Einthoven)" -> "I", "Lead aVR" ->
    "aVR", "lead v1" -> "V1". Text that is not a known lead is kept as sent, so an unusual
    montage is labelled honestly."""
    match = _LEAD_RE.match(raw)
    if match and match.group(1).upper() in _CANONICAL:
        return _CANONICAL[match.group(1).upper()]
    return raw.strip()


# --- reading -------------------------------------------------------------------------------


@guarded
def read_ecg(ds: Dataset) -> Ecg:
    """The rhythm multiplex group of `ds` as leads in millivolts, with the file's annotations.

    Raises NotAWaveform when there is nothing drawable; any other malformation becomes a
    RenderError through `guarded`, never a 500.
    """
    groups = ds.get("WaveformSequence")
    if not groups:
        raise NotAWaveform("the data set has no Waveform Sequence (5400,0100)")
    index = _rhythm_group(groups)
    group = groups[index]
    fs = float(group.get("SamplingFrequency") or 0)
    if not math.isfinite(fs) or fs <= 0:
        raise NotAWaveform(f"multiplex group {index + 1} has no valid Sampling Frequency")
    little_endian = ds.original_encoding[1] is not False  # in-memory data sets: little
    raw = _samples(group, little_endian)
    channels = group.get("ChannelDefinitionSequence") or []
    if len(channels) != raw.shape[1]:
        raise NotAWaveform(
            f"{len(channels)} channel definitions for {raw.shape[1]} waveform channels"
        )
    leads = [_lead(ch, raw[:, j], j + 1) for j, ch in enumerate(channels)]
    notes = ds.get("WaveformAnnotationSequence") or []
    annotations = [_annotation(item, index + 1, fs) for item in notes]
    return Ecg(leads, fs, raw.shape[0] / fs, annotations)


def _rhythm_group(groups: list[Dataset]) -> int:
    """The group labelled RHYTHM; else the biggest one. Resting ECGs often also carry a
    MEDIAN BEAT group (1.2 s) that must not be mistaken for the recording."""
    for i, group in enumerate(groups):
        if str(group.get("MultiplexGroupLabel", "")).strip().upper() == "RHYTHM":
            return i
    sizes = [
        (int(g.get("NumberOfWaveformChannels") or 0), int(g.get("NumberOfWaveformSamples") or 0))
        for g in groups
    ]
    return max(range(len(groups)), key=sizes.__getitem__)


def _samples(group: Dataset, little_endian: bool) -> np.ndarray:
    """(samples, channels) as float64, with the sender's padding value as NaN.

    Decoded here rather than by pydicom's `waveform_array`, which assumes the machine's byte
    order, reshapes without checking the length (a truncated file raises a bare ValueError)
    and applies sensitivity without converting units.
    """
    n_channels = int(group.get("NumberOfWaveformChannels") or 0)
    n_samples = int(group.get("NumberOfWaveformSamples") or 0)
    if n_channels < 1 or n_samples < 1:
        raise NotAWaveform("the multiplex group declares no channels or no samples")
    key = (group.get("WaveformBitsAllocated"), str(group.get("WaveformSampleInterpretation")))
    if key not in _DTYPES:
        raise NotAWaveform(f"unsupported Waveform Bits Allocated / Sample Interpretation {key}")
    dtype = np.dtype(("<" if little_endian else ">") + _DTYPES[key])
    data = group.get("WaveformData") or b""
    expected = n_samples * n_channels * dtype.itemsize
    if len(data) < expected:
        raise NotAWaveform(f"Waveform Data holds {len(data)} bytes, {expected} declared")
    stored = np.frombuffer(data, dtype, n_samples * n_channels).reshape(n_samples, n_channels)
    values = stored.astype(np.float64)
    padding = group.get("WaveformPaddingValue")
    if padding is not None and len(padding) >= dtype.itemsize:
        values[stored == np.frombuffer(padding, dtype, 1)[0]] = np.nan
    return values


def _lead(channel: Dataset, stored: np.ndarray, number: int) -> Lead:
    """value = stored × Channel Sensitivity × Correction Factor + Channel Baseline, in the
    Channel Sensitivity Units (PS3.3 C.10.9, CLINICAL.md), then converted to mV."""
    sources = channel.get("ChannelSourceSequence") or []
    raw_label = str(sources[0].get("CodeMeaning", "")) if sources else ""
    raw_label = raw_label or f"Channel {number}"
    sensitivity = channel.get("ChannelSensitivity")
    if sensitivity is None:
        raise NotAWaveform(f"channel {number} ({raw_label}) has no Channel Sensitivity")
    correction = float(channel.get("ChannelSensitivityCorrectionFactor", 1.0))
    baseline = float(channel.get("ChannelBaseline", 0.0))
    to_mv = _units_to_mv(channel, number, raw_label)
    millivolts = (stored * (float(sensitivity) * correction) + baseline) * to_mv
    return Lead(lead_label(raw_label), raw_label, millivolts)


def _units_to_mv(channel: Dataset, number: int, raw_label: str) -> float:
    units = channel.get("ChannelSensitivityUnitsSequence") or []
    code = units[0] if units else Dataset()
    for key in (str(code.get("CodeValue", "")), str(code.get("CodeMeaning", "")).lower()):
        if key in _UNITS_TO_MV:
            return _UNITS_TO_MV[key]
    raise NotAWaveform(
        f"channel {number} ({raw_label}) is not in volts: units {code.get('CodeValue')!r}"
    )


def _annotation(item: Dataset, displayed_group: int, fs: float) -> Annotation:
    """Text, coded measurement and time positions of one Waveform Annotation item.

    Positions are kept only when the item references the displayed multiplex group (or no
    group at all): Referenced Sample Positions count from 1 (PS3.3 table C.10-11), Referenced
    Time Offsets are seconds from the start of the group.
    """
    concept_seq = item.get("ConceptNameCodeSequence") or []
    units_seq = item.get("MeasurementUnitsCodeSequence") or []
    numeric = _as_list(item.get("NumericValue"))
    refs = [int(v) for v in _as_list(item.get("ReferencedWaveformChannels"))]
    channels = tuple(zip(refs[0::2], refs[1::2], strict=False))
    positions = tuple(int(p) for p in _as_list(item.get("ReferencedSamplePositions")))
    offsets = tuple(float(t) for t in _as_list(item.get("ReferencedTimeOffsets")))
    times: tuple[float, ...] = ()
    if not channels or any(group == displayed_group for group, _ in channels):
        times = tuple((p - 1) / fs for p in positions) + offsets
    return Annotation(
        text=str(item.get("UnformattedTextValue", "")).strip(),
        concept=str(concept_seq[0].get("CodeMeaning", "")) if concept_seq else "",
        value=float(numeric[0]) if numeric else None,
        units=str(units_seq[0].get("CodeValue", "")) if units_seq else "",
        channels=channels,
        times_s=times,
        sample_positions=positions,
        range_type=str(item.get("TemporalRangeType", "")),
    )


def _as_list(value: object) -> list:
    """pydicom gives a single value or a MultiValue: always a list."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, MultiValue | list | tuple) else [value]


# Drawing lives in viewer.ecg_svg; imported last because it uses the definitions above.
from .ecg_svg import render_svg  # noqa: E402
