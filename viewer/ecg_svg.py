"""12-lead ECG on paper: leads in millivolts (`viewer.ecg`) -> an SVG whose user unit is the
millimetre (CLINICAL.md, "12-lead ECG": speeds, gains, 1/5 mm grid, 3x4 + rhythm strip, 1 mV
calibration pulse). Pure; split from `viewer.ecg` so reading and drawing stay small."""

from __future__ import annotations

import math
import numbers
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from .ecg import (
    _NOT_XML,
    CAL_MV,
    CAL_S,
    COLUMN_S,
    GAINS_MM_MV,
    PAPER_S,
    RHYTHM_LEAD,
    SPEEDS_MM_S,
    STANDARD_LEADS,
    STANDARD_ROWS,
    Annotation,
    BadScale,
    Ecg,
    Lead,
    NotAWaveform,
)
from .errors import guarded

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
