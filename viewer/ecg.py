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
import numbers
import re
import xml.etree.ElementTree as ET
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


# --- rendering -----------------------------------------------------------------------------

SVG_NS = "http://www.w3.org/2000/svg"
MARGIN = 5.0  # mm around the paper
HEADER = 10.0  # mm above the grid for the title and the scale label
CAL_LEAD_IN, CAL_TAIL = 2.0, 3.0  # mm of baseline before and after the calibration pulse
NOTE_SIZE, NOTE_LINE = 2.8, 3.5  # mm: annotation list font size and line height
MINOR_COLOUR, MAJOR_COLOUR, INK = "#f6c3c3", "#e07a7a", "#000"


@dataclass(frozen=True)
class _Paper:
    """Where everything goes, in mm, for one speed and gain."""

    speed: float
    gain: float
    trace_x0: float  # x of t = 0 in every row; on a major grid line
    row_height: float
    grid_top: float

    def row_top(self, row: int) -> float:
        return self.grid_top + row * self.row_height

    def baseline(self, row: int) -> float:
        """0 mV sits on a major line 60 % down the row: R waves need more room than S."""
        return self.row_top(row) + 5 * round(0.6 * self.row_height / 5)


@dataclass(frozen=True)
class _Cell:
    lead: Lead
    row: int
    t0_s: float  # start of the recording window shown
    length_s: float
    column: int  # 0..3 in the 3×4; full-width rows use 0
    rhythm: bool = False


def _paper(speed: float, gain: float) -> _Paper:
    trace_x0 = 5 * math.ceil((MARGIN + CAL_LEAD_IN + CAL_S * speed + CAL_TAIL) / 5)
    row_height = 5 * math.ceil(3.5 * gain / 5)  # 35 mm at 10 mm/mV: 2 mV up, 1.5 mV down
    return _Paper(speed, gain, trace_x0, row_height, MARGIN + HEADER)


def _checked(value: float, allowed: tuple[float, ...], what: str) -> float:
    """Only the paper settings readers know: a trace at an unusual scale misleads."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value not in allowed:
        choices = ", ".join(f"{a:g}" for a in allowed)
        raise BadScale(f"{what} must be one of {choices}, got {value!r}")
    return float(value)


@guarded
def render_svg(ecg: Ecg, speed_mm_s: float = 25, gain_mm_mv: float = 10) -> str:
    """The ECG on millimetre paper: 3×4 leads (2.5 s each, successive windows) plus a lead II
    rhythm strip, calibration pulses, the scale label and the file's annotations."""
    speed = _checked(speed_mm_s, SPEEDS_MM_S, "speed (mm/s)")
    paper = _paper(speed, _checked(gain_mm_mv, GAINS_MM_MV, "gain (mm/mV)"))
    if not ecg.leads:
        raise NotAWaveform("the ECG has no leads")
    cells = _layout(ecg)
    rows = cells[-1].row + 1
    notes = _captions(ecg.annotations)
    width = paper.trace_x0 + PAPER_S * paper.speed + MARGIN
    grid_bottom = paper.row_top(rows)
    column_width = min(width - 2 * MARGIN, 0.55 * NOTE_SIZE * max(map(len, notes), default=0) + 5)
    note_columns = max(1, int((width - 2 * MARGIN) // column_width))
    note_rows = math.ceil(len(notes) / note_columns)
    height = grid_bottom + (note_rows * NOTE_LINE + 3 if notes else 0) + MARGIN
    root = _svg_root(ecg, paper, width, height)
    _grid(root, paper, width - MARGIN, grid_bottom)
    for row in range(rows):
        _calibration(root, paper, row)
    for cell in cells:
        _trace(root, ecg.sampling_hz, paper, cell)
    _markers(root, ecg, paper, cells[-1].row)
    per_column = math.ceil(len(notes) / note_columns) if notes else 1
    for i, note in enumerate(notes):
        y = grid_bottom + 2.2 + (i % per_column + 1) * NOTE_LINE
        x = MARGIN + (i // per_column) * column_width
        _text(root, x, y, note, "annotation", NOTE_SIZE)
    return ET.tostring(root, encoding="unicode")


def _layout(ecg: Ecg) -> list[_Cell]:
    """Standard 3×4 when the 12 leads are all there; leads beyond them (V3R, V7...) get a
    full-width row each. Without the 12, every lead gets a full row in file order, so no
    lead sits where a reader expects another. Last: the rhythm strip (II, else the first)."""
    first_of: dict[str, Lead] = {}
    for lead in ecg.leads:
        first_of.setdefault(lead.label, lead)
    cells: list[_Cell] = []
    if STANDARD_LEADS.issubset(first_of):
        for r, labels in enumerate(STANDARD_ROWS):
            cells += [
                _Cell(first_of[lbl], r, c * COLUMN_S, COLUMN_S, c) for c, lbl in enumerate(labels)
            ]
    used = {id(cell.lead) for cell in cells}
    extras = [lead for lead in ecg.leads if id(lead) not in used]  # a second "II" is kept too
    first = len(STANDARD_ROWS) if cells else 0
    cells += [_Cell(lead, first + i, 0.0, PAPER_S, 0) for i, lead in enumerate(extras)]
    rhythm = ecg.lead(RHYTHM_LEAD) or ecg.leads[0]
    return [*cells, _Cell(rhythm, first + len(extras), 0.0, PAPER_S, 0, rhythm=True)]


def _captions(annotations: list[Annotation]) -> list[str]:
    """One line per annotation, except that position-only marks of one concept (a P onset
    per beat...) share a line listing their times: the reader gets a list, not a scroll."""
    lines: list[str] = []
    times: dict[str, list[float]] = {}
    for note in annotations:
        if note.times_s and not note.text and note.value is None:
            if note.concept not in times:
                times[note.concept] = []
                lines.append(note.concept)  # placeholder, filled below
            times[note.concept].extend(note.times_s)
        else:
            lines.append(note.caption())
    for concept, ts in times.items():
        grouped = Annotation("", concept, None, "", (), tuple(ts)).caption()
        lines[lines.index(concept)] = grouped
    return lines


def _num(value: float) -> str:
    """Millimetres to 0.01, without trailing zeros (and never in exponent notation)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _el(parent: ET.Element, tag: str, attrs: dict[str, object], text: str = "") -> ET.Element:
    """A child element; numbers become mm strings rounded to 0.01. Text from the file goes
    through ElementTree, which escapes &, < and quotes, so a label cannot inject markup;
    control characters, which ElementTree would write as is, are dropped first because a
    single one makes the whole document unparseable."""
    values = {k: _num(v) if isinstance(v, float | int) else _xml(str(v)) for k, v in attrs.items()}
    element = ET.SubElement(parent, tag, values)
    if text:
        element.text = _xml(text)
    return element


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


def _text(parent: ET.Element, x: float, y: float, text: str, cls: str, size: float = 3.5,
          anchor: str = "start") -> ET.Element:  # fmt: skip
    attrs = {"class": cls, "x": x, "y": y, "font-size": size, "text-anchor": anchor}
    return _el(parent, "text", attrs, text)


def _scale_text(paper: _Paper) -> str:
    return f"{paper.speed:g} mm/s · {paper.gain:g} mm/mV"


def _svg_root(ecg: Ecg, paper: _Paper, width: float, height: float) -> ET.Element:
    """The root in mm, the white paper, the title and the scale label (always visible)."""
    root = ET.Element("svg", {"xmlns": SVG_NS, "class": "ecg", "role": "img"})
    root.attrib.update(
        {
            "viewBox": f"0 0 {_num(width)} {_num(height)}",
            "width": f"{_num(width)}mm",
            "height": f"{_num(height)}mm",
            "data-mm-per-s": f"{paper.speed:g}",
            "data-mm-per-mv": f"{paper.gain:g}",
            "data-sampling-hz": f"{ecg.sampling_hz:g}",
            "data-duration-s": f"{ecg.duration_s:g}",
            "font-family": "sans-serif",
        }
    )
    summary = f"{len(ecg.leads)}-lead ECG · {ecg.sampling_hz:g} Hz · {ecg.duration_s:g} s"
    _el(root, "title", {}, f"{summary} · {_scale_text(paper)}")
    _el(root, "rect", {"class": "paper", "width": "100%", "height": "100%", "fill": "#fff"})
    y = MARGIN + HEADER - 3
    _text(root, MARGIN, y, summary, "title")
    right = paper.trace_x0 + PAPER_S * paper.speed
    _text(root, right, y, _scale_text(paper), "scale-label", anchor="end")
    return root


def _grid(root: ET.Element, paper: _Paper, right: float, bottom: float) -> None:
    """1 mm minor and 5 mm major lines as two patterns anchored at the paper's corner, so
    every trace start and baseline falls on a major line."""
    defs = _el(root, "defs", {})
    box = {"x": MARGIN, "y": paper.grid_top, "width": right - MARGIN}
    box["height"] = bottom - paper.grid_top
    for kind, step, colour, stroke in (
        ("minor", 1, MINOR_COLOUR, 0.05),
        ("major", 5, MAJOR_COLOUR, 0.15),
    ):
        tile = {"id": f"ecg-grid-{kind}", "class": f"grid-{kind}", "x": MARGIN}
        tile |= {"y": paper.grid_top, "width": step, "height": step}
        pattern = _el(defs, "pattern", tile | {"patternUnits": "userSpaceOnUse"})
        line = {"d": f"M {step} 0 L 0 0 0 {step}", "fill": "none", "stroke": colour}
        _el(pattern, "path", line | {"stroke-width": stroke})
        fill = {"class": f"grid-{kind}", "fill": f"url(#ecg-grid-{kind})"}
        _el(root, "rect", box | fill | {"data-spacing-mm": step})
    border = {"class": "grid-border", "fill": "none", "stroke": MAJOR_COLOUR}
    _el(root, "rect", box | border | {"stroke-width": 0.15})


def _calibration(root: ET.Element, paper: _Paper, row: int) -> None:
    """The 1 mV × 0.2 s pulse that shows the row's gain and speed to the eye."""
    base = paper.baseline(row)
    x1 = MARGIN + CAL_LEAD_IN
    x2 = x1 + CAL_S * paper.speed
    top = base - CAL_MV * paper.gain
    points = [(MARGIN, base), (x1, base), (x1, top), (x2, top), (x2, base), (x2 + CAL_TAIL, base)]
    attrs = {"class": "calibration", "fill": "none", "stroke": INK, "stroke-width": 0.25}
    attrs |= {"points": " ".join(f"{x:.2f},{y:.2f}" for x, y in points)}
    _el(root, "polyline", attrs | {"data-height-mm": paper.gain, "data-width-mm": x2 - x1})


def _trace(root: ET.Element, sampling_hz: float, paper: _Paper, cell: _Cell) -> None:
    """One lead from t0 for length_s; the window's end sample is drawn when it exists, so
    2.5 s spans exactly 2.5 × speed mm and adjacent columns meet."""
    x0 = paper.trace_x0 + cell.column * COLUMN_S * paper.speed
    base = paper.baseline(cell.row)
    attrs = {"class": "lead rhythm" if cell.rhythm else "lead", "data-lead": cell.lead.label}
    attrs |= {"data-raw-label": cell.lead.raw_label, "data-t0-ms": f"{cell.t0_s * 1000:g}"}
    group = _el(root, "g", attrs | {"data-x0-mm": x0, "data-baseline-y-mm": base})
    _text(group, x0 + 1, paper.row_top(cell.row) + 4, cell.lead.label, "lead-label")
    if cell.column:
        tick = {"class": "column-marker", "stroke": INK, "stroke-width": 0.25}
        _el(group, "line", tick | {"x1": x0, "x2": x0, "y1": base - 3, "y2": base + 3})
    mv = cell.lead.millivolts
    first = round(cell.t0_s * sampling_hz)
    last = min(round((cell.t0_s + cell.length_s) * sampling_hz), len(mv) - 1)
    if last <= first:
        return  # the recording ended before this window: the cell stays empty, labelled
    xs = x0 + np.arange(last + 1 - first) * (paper.speed / sampling_hz)
    ys = base - mv[first : last + 1] * paper.gain
    style = {"class": "trace", "fill": "none", "stroke": INK, "stroke-width": 0.2}
    for start, stop in _finite_runs(ys):
        pairs = map("{:.2f},{:.2f}".format, xs[start:stop].tolist(), ys[start:stop].tolist())
        points = " ".join(pairs)  # str.format over lists: the fastest pure-Python route
        _el(group, "polyline", style | {"stroke-linejoin": "round", "points": points})


def _finite_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) runs without NaN (padding): a gap is drawn as a gap, not a line."""
    edges = np.diff(np.concatenate(([0], np.isfinite(values).astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b - a >= 2]


def _markers(root: ET.Element, ecg: Ecg, paper: _Paper, rhythm_row: int) -> None:
    """A line on the rhythm strip at each time position an annotation references; its
    <title> (tooltip) carries the annotation's caption."""
    top = paper.row_top(rhythm_row)
    end = min(PAPER_S, ecg.duration_s)
    style = {"class": "annotation-marker", "stroke": "#1f5fbf", "stroke-width": 0.2}
    for note in ecg.annotations:
        for t in (t for t in note.times_s if 0 <= t <= end):
            x = paper.trace_x0 + t * paper.speed
            span = {"x1": x, "x2": x, "y1": top + 5, "y2": top + 9}  # a tick: traces stay clear
            line = _el(root, "line", style | span | {"data-t-ms": f"{t * 1000:g}"})
            _el(line, "title", {}, note.caption())
