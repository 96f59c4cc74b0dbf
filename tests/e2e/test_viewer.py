"""The reading viewer in a real browser (Debian Chromium via Playwright) against a live server
holding the demo data: images appear and are not blank, presets re-render on the server,
priors from two hospitals hang side by side, loops play at their native rate, the ECG is on a
true grid, measurements are in mm only when calibrated, and hostile DICOM text runs nothing."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def open_viewer(browser, live_server, demo_world, seed: str, user: str = "reader", query=""):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, live_server.url, user, demo_world.password)
    page.goto(f"{live_server.url}/viewer/studies/{demo_world.uid(seed)}/{query}")
    page.wait_for_selector("#viewer[data-ready=true]")
    return page, errors


def pixels(page, selector: str) -> np.ndarray:
    shot = page.locator(selector).screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float64)


def image_ready(page, cell: int = 0) -> None:
    """The requested frame has loaded and the <img> has painted it (the page's script marks
    both; wait_for_function cannot be used: the page's CSP forbids eval)."""
    page.wait_for_selector(f".viewport[data-cell='{cell}'][data-image-state=ready][data-painted]")


def test_ct_opens_not_blank_and_bone_preset_rerenders(browser, live_server, demo_world):
    page, errors = open_viewer(browser, live_server, demo_world, "arjun-ct")
    image_ready(page)
    before = pixels(page, ".viewport[data-cell='0'] img.frame")
    assert before.std() > 10, "the CT image is blank"
    assert (
        page.locator(".viewport[data-cell='0'] .overlay.tl").inner_text().startswith("PATEL, ARJUN")
    )
    assert "13 y" in page.locator(".viewport[data-cell='0'] .overlay.tl").inner_text()

    with page.expect_request(lambda r: "window=480%2C2500" in r.url) as bone:
        page.keyboard.press("3")
    assert "/frames/1/rendered" in bone.value.url
    page.wait_for_selector(".viewport[data-cell='0'][data-window='480,2500']")
    page.wait_for_selector(".viewport[data-cell='0'][data-painted*='480%2C2500']")
    image_ready(page)
    after = pixels(page, ".viewport[data-cell='0'] img.frame")
    assert after.shape == before.shape
    assert np.abs(after - before).mean() > 5, "the bone window did not change the image"
    assert "W 2500 L 480" in page.locator(".viewport[data-cell='0'] .overlay.br").inner_text()
    markers = [
        page.locator(f".viewport[data-cell='0'] .marker.{side}").inner_text()
        for side in ("left", "right", "top", "bottom")
    ]
    assert markers == ["R", "L", "A", "P"]  # axial, patient supine: radiological convention
    assert errors == []


def test_priors_from_two_hospitals_side_by_side(browser, live_server, demo_world):
    page, errors = open_viewer(browser, live_server, demo_world, "mia-mr")
    priors = page.locator("#priors .prior")
    assert priors.count() == 2
    text = page.locator("#priors").inner_text()
    assert "Riverside Community Hospital" in text
    # Newest first: the CT of 2026-10-02, then the MR of 2026-06-15.
    assert priors.nth(0).inner_text().startswith("2026-10-02")
    assert priors.nth(1).inner_text().startswith("2026-06-15")
    # The most relevant prior (same modality) opens beside the current study.
    assert "open" in (priors.nth(1).get_attribute("class") or "")
    image_ready(page, 0)
    image_ready(page, 1)
    assert "prior-cell" in page.locator(".viewport[data-cell='1']").get_attribute("class")
    assert "PRIOR" in page.locator(".viewport[data-cell='1'] .overlay.tr").inner_text()
    for cell in (0, 1):
        assert pixels(page, f".viewport[data-cell='{cell}'] img.frame").std() > 5
    assert "Lakeview" in page.locator(".viewport[data-cell='0'] .overlay.tr").inner_text()
    assert "Riverside" in page.locator(".viewport[data-cell='1'] .overlay.tr").inner_text()
    assert errors == []


def test_echo_loop_plays_at_native_rate(browser, live_server, demo_world):
    page, errors = open_viewer(browser, live_server, demo_world, "liam-echo")
    page.wait_for_selector(".viewport[data-playing=true]", state="attached")
    cell = page.locator(".viewport[data-playing=true]").first.get_attribute("data-cell")
    page.wait_for_selector(f".viewport[data-cell='{cell}'][data-loaded='120']", timeout=30000)
    sample = (
        f"() => [Number(document.querySelector(\".viewport[data-cell='{cell}']\")"
        ".dataset.position || 0), performance.now()]"
    )
    position0, t0 = page.evaluate(sample)
    page.wait_for_timeout(2000)
    position1, t1 = page.evaluate(sample)
    rate = (position1 - position0) / ((t1 - t0) / 1000)
    native = 1000 / 33.333  # Frame Time (0018,1063) of the file
    assert abs(rate - native) / native < 0.10, f"played {rate:.1f} fps, native {native:.1f}"
    assert "30.0 fps" in page.locator(f".viewport[data-cell='{cell}'] .overlay.bl").inner_text()
    page.click(f".viewport[data-cell='{cell}'] .overlay.bl", force=True)
    page.keyboard.press("c")  # pause, then step frame by frame
    page.wait_for_selector(f".viewport[data-cell='{cell}'][data-playing=false]")
    frame = int(page.locator(f".viewport[data-cell='{cell}']").get_attribute("data-frame"))
    page.keyboard.press("ArrowRight")
    stepped = frame % 120 + 1
    page.wait_for_selector(f".viewport[data-cell='{cell}'][data-frame='{stepped}']")
    assert errors == []


def test_ecg_grid_leads_and_caliper(browser, live_server, demo_world):
    page, errors = open_viewer(browser, live_server, demo_world, "baby-ecg")
    page.wait_for_selector(".viewport[data-ecg-ready=true] svg.ecg")
    svg = page.locator("svg.ecg")
    assert svg.get_attribute("data-mm-per-s") == "25"
    assert svg.get_attribute("data-mm-per-mv") == "10"
    labels = page.eval_on_selector_all(
        "svg.ecg g.lead:not(.rhythm)", "gs => gs.map(g => g.dataset.lead)"
    )
    assert sorted(labels) == sorted(
        ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    )
    assert page.locator("svg.ecg g.lead.rhythm").count() == 1
    assert "25 mm/s" in page.locator("svg.ecg .scale-label").first.text_content()
    # The grid in the SVG's millimetre units: 1 mm minor, 5 mm major squares.
    assert page.locator("svg.ecg pattern.grid-minor").get_attribute("width") == "1"
    assert page.locator("svg.ecg pattern.grid-major").get_attribute("width") == "5"
    # ... drawn at true size: one SVG unit is one CSS millimetre (96 px per 25.4 mm).
    scale = page.evaluate("() => document.querySelector('svg.ecg').getScreenCTM().a")
    assert scale == pytest.approx(96 / 25.4, rel=0.01)
    # A caliper 25 mm wide at 25 mm/s is one second.
    points = page.evaluate(
        """() => {
          const svg = document.querySelector('svg.ecg');
          const m = svg.getScreenCTM();
          const at = (x, y) => { const p = svg.createSVGPoint(); p.x = x; p.y = y;
                                 const q = p.matrixTransform(m); return [q.x, q.y]; };
          return [at(40, 30), at(65, 30)];
        }"""
    )
    for x, y in points:
        page.mouse.click(x, y)
    ms = float(page.locator(".viewport[data-ecg-ready=true]").get_attribute("data-caliper-ms"))
    assert abs(ms - 1000) < 15, ms
    assert "60 bpm" in page.locator(".caliper-readout").inner_text()
    # The cart's PDF printout in the same study opens in the viewport.
    with page.expect_response(lambda r: r.url.endswith("/document")) as doc:
        page.click(".stack-button:has-text('DOC')")
    page.locator(".viewport[data-cell='0'] iframe.document").wait_for()
    assert doc.value.status == 200
    assert doc.value.headers["content-type"] == "application/pdf"
    assert errors == []


def _drag(page, cell: int, start, end) -> None:
    box = page.locator(f".viewport[data-cell='{cell}'] img.frame").bounding_box()
    cols, rows = page.evaluate(
        f"() => {{ const vp = window.ReadingRoom.viewports[{cell}]; "
        "return [vp.stack.columns, vp.stack.rows]; }"
    )

    def client(p):
        return box["x"] + p[0] / cols * box["width"], box["y"] + p[1] / rows * box["height"]

    page.mouse.move(*client(start))
    page.mouse.down()
    page.mouse.move(*client(end), steps=4)
    page.mouse.up()


def test_distance_in_mm_when_calibrated_and_px_when_not(browser, live_server, demo_world):
    page, errors = open_viewer(browser, live_server, demo_world, "arjun-ct")
    image_ready(page)
    page.keyboard.press("d")
    with page.expect_response(lambda r: "/measurements" in r.url and r.status == 201) as resp:
        _drag(page, 0, (100, 100), (300, 180))
    saved = resp.value.json()
    (x0, y0), (x1, y1) = saved["points"]
    spacing = 0.478516  # Pixel Spacing (0028,0030) of the CT, both directions
    expected = math.hypot((x1 - x0) * spacing, (y1 - y0) * spacing)
    assert saved["unit"] == "mm" and saved["calibration"] == "pixel_spacing"
    assert saved["value"] == pytest.approx(expected, rel=1e-6)
    shown = page.locator(".viewport[data-cell='0']").get_attribute("data-last-measurement")
    assert shown == f"{expected:.1f} mm"

    page.goto(f"{live_server.url}/viewer/studies/{demo_world.uid('liam-echo')}/")
    page.wait_for_selector("#viewer[data-ready=true]")
    cell = page.evaluate(
        "() => window.ReadingRoom.viewports.findIndex(v => v.stack && v.stack.kind === 'image'"
        " && !v.stack.multiframe)"
    )
    image_ready(page, cell)
    page.click(f".viewport[data-cell='{cell}'] .overlay.bl", force=True)
    page.keyboard.press("d")
    with page.expect_response(lambda r: "/measurements" in r.url and r.status == 201) as resp:
        _drag(page, cell, (100, 100), (200, 100))
    saved = resp.value.json()
    assert saved["unit"] == "px" and saved["calibration"] == "none"
    assert saved["value"] == pytest.approx(math.dist(*saved["points"]), rel=1e-6)
    assert errors == []
