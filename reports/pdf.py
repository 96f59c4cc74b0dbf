"""The report as a PDF (fpdf2): what the referring physician and the archive receive.

Layout follows ../shared/CLINICAL.md ("Workflow facts"): the status PRELIMINARY / FINAL /
ADDENDED is printed large at the top and in every page header and footer; addenda are
numbered, dated and shown above the unchanged original. Every z-score carries its model name
(the caller builds that text, e.g. `MeasurementRow.from_zscore`).

All text is untrusted. It is drawn with DejaVu Sans when that TrueType font is installed
(Debian `fonts-dejavu-core`), else with the core Helvetica font, which is latin-1 only. In both
cases a character the font cannot draw is first decomposed (é -> e + accent) and, if still not
drawable, replaced by the visible marker "[?]" so a reader knows something is missing; control
characters become spaces. Nothing in the text can make rendering fail.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NamedTuple

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from reports.zscores import ZScore

__all__ = ["DEFAULT_FONT_DIR", "STATUSES", "Addendum", "Exam", "MeasurementRow", "Patient"]
__all__ += ["ReportDocument", "Signature", "render_report_pdf", "safe_text"]

STATUSES = ("PRELIMINARY", "FINAL", "ADDENDED")
MISSING_GLYPH = "[?]"
DEFAULT_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
_STATUS_COLOURS = {"PRELIMINARY": (190, 90, 0), "FINAL": (0, 0, 0), "ADDENDED": (0, 70, 160)}


@dataclass(frozen=True)
class Patient:
    name: str
    age_text: str  # identity.ages.pediatric_age at the study date: "3 mo 12 d"
    sex: str
    mrn: str
    mrn_issuer: str


@dataclass(frozen=True)
class Exam:
    description: str
    date: date | None
    accession: str


class Addendum(NamedTuple):
    author: str
    signed_at: datetime
    text: str


@dataclass(frozen=True)
class Signature:
    signer_name: str
    credentials: str
    signed_at: datetime


@dataclass(frozen=True)
class MeasurementRow:
    name: str
    value: float
    unit: str  # "cm", "mm", "mL", "g", "ms", "bpm", "m2"
    zscore_text: str = ""  # with the model name: "z +2.31 (PHN)"
    range_text: str = ""  # "3.10 cm (±2 SD 2.60-3.60)"
    z: float | None = None
    model_name: str = ""  # "PHN", "Detroit", "Boston"; "" when no z-score

    @classmethod
    def from_zscore(cls, name: str, score: ZScore) -> MeasurementRow:
        """A row whose z-score text names its model: "z +2.31 (PHN)"."""
        return cls(
            name=name,
            value=score.value,
            unit=score.unit,
            zscore_text=score.z_text,
            range_text=score.range_text,
            z=score.z,
            model_name=score.model_name,
        )


@dataclass(frozen=True)
class ReportDocument:
    facility_name: str
    reading_group: str
    patient: Patient
    exam: Exam
    status: str  # one of STATUSES
    impression: str
    clinical_history: str = ""
    sections: Sequence[tuple[str, str]] = ()  # (title, text) in reading order
    measurements: Sequence[MeasurementRow] = ()
    signature: Signature | None = None
    addenda: Sequence[Addendum] = ()  # chronological; shown newest first, numbered 1..n
    key_images: Sequence[bytes] = field(default_factory=tuple)  # PNG or JPEG bytes

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.status != "PRELIMINARY" and self.signature is None:
            raise ValueError(f"a {self.status} report needs a signature")
        if self.status == "ADDENDED" and not self.addenda:
            raise ValueError("an ADDENDED report needs at least one addendum")


def _latin1(ch: str) -> bool:
    return ord(ch) < 256


def safe_text(text: object, can_draw: Callable[[str], bool] = _latin1) -> str:
    """`text` reduced to characters `can_draw` accepts (default: latin-1, the core fonts):
    decomposed when that helps, else the visible marker "[?]"; control characters -> space."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", "" if text is None else str(text)):
        if ch in "\n\t":
            out.append("\n" if ch == "\n" else " ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(" ")
        elif can_draw(ch):
            out.append(ch)
        else:
            base = [c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)]
            if base and all(can_draw(c) for c in base):
                out.extend(base)
            else:
                out.append(MISSING_GLYPH)
    return "".join(out)


def _when(moment: datetime | date | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, datetime):
        return moment.strftime("%Y-%m-%d %H:%M %Z").strip()  # zone named when known
    return moment.strftime("%Y-%m-%d")


class _ReportPdf(FPDF):
    def __init__(self, report: ReportDocument, font_dir: Path | None) -> None:
        super().__init__(format="A4", unit="mm")
        self.report = report
        regular = font_dir / "DejaVuSans.ttf" if font_dir else None
        bold = font_dir / "DejaVuSans-Bold.ttf" if font_dir else None
        if regular and bold and regular.is_file() and bold.is_file():
            self.add_font("Body", "", str(regular))
            self.add_font("Body", "B", str(bold))
            self.body_font = "Body"
            cmap = self.fonts["body"].cmap
            self._can_draw = lambda ch: ord(ch) in cmap
        else:
            self.body_font = "Helvetica"
            self._can_draw = _latin1
        self.set_auto_page_break(auto=True, margin=18)
        self.alias_nb_pages()

    def t(self, text: object) -> str:
        return safe_text(text, self._can_draw)

    def line_text(self, text: object, limit: int) -> str:
        """One line for a header or footer cell: newlines become spaces, then truncated."""
        return self.t(text).replace("\n", " ")[:limit]

    def header(self) -> None:
        self.set_font(self.body_font, "", 8)
        self.set_text_color(80, 80, 80)
        self.cell(0, 5, self.line_text(self.report.facility_name, 90))
        self.set_x(self.l_margin)
        self.set_font(self.body_font, "B", 9)
        self.set_text_color(*_STATUS_COLOURS[self.report.status])
        self.cell(0, 5, self.report.status, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(160, 160, 160)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_text_color(0, 0, 0)
        self.ln(3)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font(self.body_font, "B", 8)
        self.set_text_color(*_STATUS_COLOURS[self.report.status])
        patient = self.report.patient
        text = f"{self.report.status} - {patient.name} - MRN {patient.mrn} ({patient.mrn_issuer})"
        self.cell(0, 5, self.line_text(text, 110))
        self.set_x(self.l_margin)
        self.set_font(self.body_font, "", 8)
        self.cell(0, 5, f"Page {self.page_no()}/{{nb}}", align="R")
        self.set_text_color(0, 0, 0)

    def heading(self, text: str, size: float = 11) -> None:
        self.ln(2)
        self.set_font(self.body_font, "B", size)
        self.multi_cell(0, 6, self.t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(self.body_font, "", 10)

    def paragraph(self, text: str) -> None:
        self.set_font(self.body_font, "", 10)
        self.multi_cell(0, 5, self.t(text) or "-", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def key_value(self, label: str, value: str) -> None:
        self.set_font(self.body_font, "B", 9)
        self.cell(32, 5, self.line_text(label, 40))
        self.set_font(self.body_font, "", 9)
        self.multi_cell(0, 5, self.t(value) or "-", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _numbered_addenda(addenda: Sequence[Addendum]) -> list[tuple[int, Addendum]]:
    """(number, addendum), numbered in signing order, newest first."""
    ordered = sorted(enumerate(addenda), key=lambda pair: (pair[1].signed_at, pair[0]))
    return [(n, a) for n, (_, a) in reversed(list(enumerate(ordered, start=1)))]


def render_report_pdf(
    report: ReportDocument,
    *,
    creation_date: datetime | None = None,
    font_dir: Path | None = DEFAULT_FONT_DIR,
) -> bytes:
    """The PDF bytes of `report`. Pass `creation_date` for byte-identical output (tests,
    re-renders of a signed version); `font_dir=None` forces the latin-1 core font."""
    pdf = _ReportPdf(report, font_dir)
    pdf.set_creation_date(creation_date or datetime.now(UTC))
    pdf.set_producer("ReadingRoom")
    pdf.set_title(pdf.t(f"{report.exam.description} - {report.status}"))
    pdf.set_author(pdf.t(report.facility_name))
    pdf.add_page()

    pdf.set_font(pdf.body_font, "B", 22)
    pdf.set_text_color(*_STATUS_COLOURS[report.status])
    pdf.cell(0, 11, f"{report.status} REPORT", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(pdf.body_font, "", 10)
    pdf.multi_cell(
        0,
        5,
        pdf.t(f"{report.facility_name} - {report.reading_group}"),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(2)
    p, e = report.patient, report.exam
    pdf.key_value("Patient", p.name)
    pdf.key_value("Age / sex", f"{p.age_text or 'unknown'} / {p.sex or 'unknown'}")
    pdf.key_value("MRN", f"{p.mrn} ({p.mrn_issuer})")
    pdf.key_value("Exam", e.description)
    pdf.key_value("Exam date", _when(e.date) or "unknown")
    pdf.key_value("Accession", e.accession)

    if report.addenda:
        for number, addendum in _numbered_addenda(report.addenda):
            pdf.heading(f"Addendum {number} - {addendum.author} - {_when(addendum.signed_at)}")
            pdf.paragraph(addendum.text)
        pdf.heading("Original report (unchanged)", 12)

    if report.clinical_history:
        pdf.heading("Clinical history")
        pdf.paragraph(report.clinical_history)
    for title, text in report.sections:
        pdf.heading(title)
        pdf.paragraph(text)
    if report.measurements:
        _measurements(pdf, report.measurements)
    pdf.heading("Impression")
    pdf.paragraph(report.impression)
    pdf.ln(3)
    if report.signature is None:
        pdf.key_value("Signature", "Not signed: preliminary report")
    else:
        s = report.signature
        signed = f"{s.signer_name}, {s.credentials}" if s.credentials else s.signer_name
        pdf.key_value("Signed by", f"{signed} - {_when(s.signed_at)}")
    if report.key_images:
        _key_images(pdf, report.key_images)
    return bytes(pdf.output())


def _measurements(pdf: _ReportPdf, rows: Sequence[MeasurementRow]) -> None:
    pdf.heading("Measurements")
    pdf.set_font(pdf.body_font, "", 9)
    with pdf.table(
        col_widths=(55, 25, 40, 60), text_align="LEFT", line_height=5, first_row_as_headings=True
    ) as table:
        header = table.row()
        for title in ("Measurement", "Value", "z-score (model)", "Expected (±2 SD)"):
            header.cell(title)
        for row in rows:
            cells = table.row()
            cells.cell(pdf.t(row.name))
            cells.cell(pdf.t(f"{row.value:g} {row.unit}"))
            cells.cell(pdf.t(row.zscore_text or "-"))
            cells.cell(pdf.t(row.range_text or "-"))


def _key_images(pdf: _ReportPdf, images: Sequence[bytes]) -> None:
    pdf.heading("Key images")
    for number, data in enumerate(images, start=1):
        try:
            # fit inside a 120 × 100 mm box: a tall image must not run off the page
            pdf.image(io.BytesIO(data), w=min(120.0, pdf.epw), h=100.0, keep_aspect_ratio=True)
            pdf.ln(2)
        except Exception:  # noqa: BLE001 - an undecodable image must not lose the report
            pdf.paragraph(f"[key image {number} could not be rendered]")
