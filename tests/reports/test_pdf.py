"""The report PDF, read back with pypdf: status everywhere, addenda above the original,
z-scores with their model, untrusted text that never breaks rendering."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pypdf
import pytest
from PIL import Image

from reports.pdf import (
    DEFAULT_FONT_DIR,
    Addendum,
    Exam,
    MeasurementRow,
    Patient,
    ReportDocument,
    Signature,
    render_report_pdf,
    safe_text,
)
from reports.zscores import zscore

FIXED = datetime(2026, 1, 5, 12, 0, 0)
HAS_DEJAVU = (Path(DEFAULT_FONT_DIR) / "DejaVuSans.ttf").is_file()


def make_report(**overrides) -> ReportDocument:
    fields = dict(
        facility_name="Northside Children's Hospital",
        reading_group="Pediatric Cardiology",
        patient=Patient("Doe^Jane", "4 y", "F", "MRN123", "NORTHSIDE"),
        exam=Exam("Transthoracic echocardiogram", date(2026, 1, 5), "ACC-77"),
        status="FINAL",
        impression="Mildly dilated left ventricle with normal systolic function.",
        clinical_history="Murmur on routine examination.",
        sections=[("Findings", "Normal segmental anatomy. LV dilated.")],
        measurements=[
            MeasurementRow.from_zscore(
                "LV end-diastolic dimension", zscore("PHN", "lv_edd", 4.55, 1.0)
            ),
            MeasurementRow("Heart rate", 96, "bpm"),
        ],
        signature=Signature("Alice Smith", "MD", datetime(2026, 1, 5, 11, 30)),
    )
    fields.update(overrides)
    return ReportDocument(**fields)


def pages_text(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


@pytest.mark.parametrize("font_dir", [DEFAULT_FONT_DIR, None], ids=["dejavu", "core"])
def test_contains_impression_status_and_model(font_dir):
    if font_dir and not HAS_DEJAVU:
        pytest.skip("DejaVu Sans not installed")
    data = render_report_pdf(make_report(), creation_date=FIXED, font_dir=font_dir)
    assert data.startswith(b"%PDF-")
    text = "\n".join(pages_text(data))
    assert "Mildly dilated left ventricle with normal systolic function." in text
    assert "FINAL REPORT" in text
    assert "z +2.00 (PHN)" in text
    assert "3.89 cm" in text  # PHN predicted mean at BSA 1
    assert "Alice Smith, MD" in text
    assert "MRN123 (NORTHSIDE)" in text


def test_addenda_numbered_newest_first_above_the_original():
    report = make_report(
        status="ADDENDED",
        addenda=[
            Addendum(
                "Bob Jones", datetime(2026, 1, 6, 9, 0), "Coronary arteries re-reviewed: normal."
            ),
            Addendum("Alice Smith", datetime(2026, 1, 7, 8, 15), "Called Dr Ray with the result."),
        ],
    )
    text = "\n".join(pages_text(render_report_pdf(report, creation_date=FIXED)))
    second = text.index("Addendum 2 - Alice Smith - 2026-01-07 08:15")
    first = text.index("Addendum 1 - Bob Jones - 2026-01-06 09:00")
    original = text.index("Original report (unchanged)")
    impression = text.index("Mildly dilated left ventricle")
    assert second < first < original < impression
    assert text.index("Called Dr Ray") < text.index("Coronary arteries re-reviewed")
    assert "ADDENDED REPORT" in text


def test_status_on_every_page_header_and_footer():
    long_text = " ".join(["The quick brown fox measured the aortic root."] * 400)
    report = make_report(status="PRELIMINARY", signature=None, sections=[("Findings", long_text)])
    pages = pages_text(render_report_pdf(report, creation_date=FIXED))
    assert len(pages) >= 3
    for number, page in enumerate(pages, start=1):
        assert page.count("PRELIMINARY") >= 2, number  # header and footer
        assert f"Page {number}/{len(pages)}" in page
    assert "Not signed: preliminary report" in pages[-1]


def test_deterministic_with_a_fixed_creation_date():
    report = make_report()
    assert render_report_pdf(report, creation_date=FIXED) == render_report_pdf(
        report, creation_date=FIXED
    )


def test_non_latin1_text_never_crashes_core_font_marks_what_is_missing():
    report = make_report(
        patient=Patient("Łukasz Zoë 张伟 \u202eevil", "3 mo 2 d", "M", "M\x00RN", "ISS"),
        impression="Normal ✓ heart 💓 — see note\x07",
    )
    text = "\n".join(pages_text(render_report_pdf(report, creation_date=FIXED, font_dir=None)))
    assert "Zoë" in text  # latin-1 kept
    assert "[?]ukasz" in text  # Ł has no latin-1 form: visible marker, not silence
    assert "[?][?]" in text  # the two Chinese characters
    assert "Normal [?] heart [?] [?] see note" in text


@pytest.mark.skipif(not HAS_DEJAVU, reason="DejaVu Sans not installed")
def test_dejavu_keeps_european_names_and_marks_cjk():
    report = make_report(patient=Patient("Łukasz Ødegård 张伟", "2 y", "M", "1", "ISS"))
    text = "\n".join(pages_text(render_report_pdf(report, creation_date=FIXED)))
    assert "Łukasz Ødegård [?][?]" in text


def test_safe_text_decomposes_before_marking():
    assert safe_text("Dvořák") == "Dvorák"  # ř -> r + caron (r is latin-1); á is latin-1
    assert safe_text("a\tb\nc\x00d") == "a b\nc d"
    assert safe_text(None) == ""


def test_key_images_png_and_broken_bytes():
    png = io.BytesIO()
    Image.new("L", (64, 48), 128).save(png, format="PNG")
    report = make_report(key_images=[png.getvalue(), b"not an image"])
    data = render_report_pdf(report, creation_date=FIXED)
    reader = pypdf.PdfReader(io.BytesIO(data))
    images = [img for page in reader.pages for img in page.images]
    assert len(images) == 1
    assert "[key image 2 could not be rendered]" in "\n".join(pages_text(data))


def test_report_document_validation():
    with pytest.raises(ValueError, match="status 'DRAFT'"):
        make_report(status="DRAFT")
    with pytest.raises(ValueError, match="FINAL report needs a signature"):
        make_report(signature=None)
    with pytest.raises(ValueError, match="ADDENDED report needs at least one addendum"):
        make_report(status="ADDENDED")


HOSTILE = "A\x00B\ud800C\u202eD\ufeffE\u200bF\n\nG💓H张I" + "W" * 3000 + "\r\n\x1b[31m"


@pytest.mark.parametrize("font_dir", [DEFAULT_FONT_DIR, None], ids=["dejavu", "core"])
def test_hostile_text_in_every_field_renders_without_missing_glyphs(font_dir, caplog):
    if font_dir and not HAS_DEJAVU:
        pytest.skip("DejaVu Sans not installed")
    report = make_report(
        facility_name=HOSTILE,
        reading_group=HOSTILE,
        patient=Patient(HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE),
        exam=Exam(HOSTILE, None, HOSTILE),
        impression=HOSTILE,
        clinical_history=HOSTILE,
        sections=[(HOSTILE, HOSTILE)] * 2,
        measurements=[MeasurementRow(HOSTILE[:300], -1e12, "cm", HOSTILE[:80], HOSTILE[:80])] * 20,
        signature=Signature(HOSTILE, HOSTILE, datetime(2026, 1, 5, 11, 30)),
    )
    data = render_report_pdf(report, creation_date=FIXED, font_dir=font_dir)
    text = "\n".join(pages_text(data))
    assert "FINAL REPORT" in text and "[?]" in text
    assert "missing the following glyphs" not in caplog.text


def test_tall_key_image_stays_on_the_page():
    png = io.BytesIO()
    Image.new("L", (50, 2000), 200).save(png, format="PNG")
    data = render_report_pdf(make_report(key_images=[png.getvalue()]), creation_date=FIXED)
    assert sum(len(page.images) for page in pypdf.PdfReader(io.BytesIO(data)).pages) == 1


def test_aware_signature_time_names_its_zone():
    report = make_report(
        signature=Signature("Alice Smith", "MD", datetime(2026, 1, 5, 16, 30, tzinfo=UTC))
    )
    text = "\n".join(pages_text(render_report_pdf(report, creation_date=FIXED)))
    assert "2026-01-05 16:30 UTC" in text
