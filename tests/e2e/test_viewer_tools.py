"""Viewer behaviour on purpose-built studies: stacks sharing a Frame of Reference scroll in
sync by slice position (and a coronal stack does not), window/level by drag lands on the last
requested window, a frame that cannot be decoded says why, and hostile DICOM text runs
nothing."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from pydicom import dcmread
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import generate_uid

from accounts.models import Membership, Role
from tests.dicomweb.conftest import ingest, part10
from tests.e2e.conftest import sign_in
from viewer.models import HangingProtocol

pytestmark = pytest.mark.e2e
AXIAL = [1, 0, 0, 0, 1, 0]
CORONAL = [1, 0, 0, 0, 0, -1]


@pytest.fixture
def tech(transactional_db, riverside, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = get_user_model().objects.create_user("tech", password="tech-password-1")
    Membership.objects.create(user=user, organization=riverside, role=Role.TECHNOLOGIST)
    return user


def series(study, frame_of_reference, number, description, iop, positions, riverside):
    uid = generate_uid()
    for n, position in enumerate(positions, start=1):
        ingest(
            part10(
                "CT_small.dcm",
                StudyInstanceUID=study,
                SeriesInstanceUID=uid,
                PatientID="SYNC-1",
                SeriesNumber=number,
                SeriesDescription=description,
                InstanceNumber=n,
                FrameOfReferenceUID=frame_of_reference,
                ImageOrientationPatient=iop,
                ImagePositionPatient=position,
            ),
            riverside,
        )


def open_page(browser, live_server, study):
    page = browser.new_page(viewport={"width": 1500, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, live_server.url, "tech", "tech-password-1")
    page.goto(f"{live_server.url}/viewer/studies/{study}/")
    page.wait_for_selector("#viewer[data-ready=true]")
    return page, errors


def test_stacks_sync_by_slice_position_only_with_the_same_orientation(
    browser, live_server, tech, riverside
):
    HangingProtocol.objects.create(
        name="Three CT stacks",
        modality="CT",
        priority=1,
        columns=3,
        viewports=[{"index": 0}, {"index": 1}, {"index": 2}],
    )
    study, frame_of_reference = generate_uid(), generate_uid()
    series(
        study,
        frame_of_reference,
        1,
        "AX 5mm",
        AXIAL,
        [[0, 0, z] for z in range(0, 25, 5)],
        riverside,
    )
    thin = [[0, 0, z / 2] for z in range(0, 45, 5)]  # 0, 2.5, ... 20 mm
    series(study, frame_of_reference, 2, "AX 2.5mm", AXIAL, thin, riverside)
    series(
        study,
        frame_of_reference,
        3,
        "COR",
        CORONAL,
        [[0, y, 0] for y in range(0, 25, 5)],
        riverside,
    )
    page, errors = open_page(browser, live_server, study)
    for cell in range(3):
        # Geometry arrives after the first image: wait until the page knows the positions.
        page.wait_for_selector(
            f".viewport[data-cell='{cell}'][data-image-state=ready][data-geometry=ready]"
        )
    page.click(".viewport[data-cell='0'] .overlay.bl", force=True)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # AX 5mm slice 3: z = 10 mm
    page.wait_for_selector(".viewport[data-cell='0'][data-frame='3']")
    page.wait_for_selector(".viewport[data-cell='1'][data-frame='5']")  # z = 10 mm of 2.5 mm
    assert page.locator(".viewport[data-cell='2']").get_attribute("data-frame") == "1"
    assert "Im 5/9" in page.locator(".viewport[data-cell='1'] .overlay.bl").inner_text()
    markers = page.locator(".viewport[data-cell='2'] .marker.bottom").inner_text()
    assert markers == "F"  # coronal: feet at the bottom
    assert errors == []


def test_window_drag_shows_the_last_requested_window(browser, live_server, tech, riverside):
    study = generate_uid()
    series(study, generate_uid(), 1, "AX", AXIAL, [[0, 0, 0]], riverside)
    page, errors = open_page(browser, live_server, study)
    page.wait_for_selector(".viewport[data-cell='0'][data-image-state=ready]")
    box = page.locator(".viewport[data-cell='0']").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 16):
        page.mouse.move(x + step * 6, y + step * 3)
    page.mouse.up()
    final = page.locator(".viewport[data-cell='0']").get_attribute("data-window")
    assert final, "dragging set no window"
    encoded = final.replace(",", "%2C")
    page.wait_for_selector(f".viewport[data-cell='0'][data-painted*='window={encoded}']")
    page.wait_for_timeout(500)  # late responses of older windows must not replace it
    assert f"window={encoded}" in page.locator(".viewport[data-cell='0'] img.frame").get_attribute(
        "src"
    )
    page.keyboard.press("i")
    assert "inverted" in page.locator(".viewport[data-cell='0'] img.frame").get_attribute("class")
    page.keyboard.press(" ")  # reset: window from the image, not inverted
    page.wait_for_selector(".viewport[data-cell='0'][data-window='']")
    assert "inverted" not in page.locator(".viewport[data-cell='0'] img.frame").get_attribute(
        "class"
    )
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    assert "bone W2500/L480" in page.locator("#help").inner_text()
    assert errors == []


def test_undecodable_frame_says_why(browser, live_server, tech, riverside):
    ds = dcmread(io.BytesIO(part10("693_J2KR.dcm", PatientID="BAD-1", SeriesNumber=1)))
    frames = list(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frames[0][: len(frames[0]) // 2]])
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    ingest(out.getvalue(), riverside)
    page, _ = open_page(browser, live_server, ds.StudyInstanceUID)
    page.wait_for_selector(".viewport[data-cell='0'][data-image-state=error]")
    message = page.locator(".viewport[data-cell='0'] .message")
    message.wait_for()
    assert message.inner_text().startswith("This frame cannot be displayed: ")
    assert "decode" in message.inner_text()


HOSTILE = {
    "PatientName": "<script>alert('name')</script>^MIA",
    "StudyDescription": "\"><img src=x onerror=alert('desc')>",
    "InstitutionName": "<svg onload=alert('inst')>",
    "SeriesDescription": "<b onmouseover=alert('se')>S</b>",
    "PatientID": "RCH-<i>1</i>",
}


def test_hostile_dicom_text_in_the_viewer_runs_nothing(browser, live_server, tech, riverside):
    study = generate_uid()
    ingest(part10("CT_small.dcm", StudyInstanceUID=study, **HOSTILE), riverside)
    page, errors = open_page(browser, live_server, study)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.wait_for_selector(".viewport[data-cell='0'][data-image-state=ready]")
    overlay = page.locator(".viewport[data-cell='0']").inner_text()
    assert "<script>alert('name')</script>" in overlay
    assert "RCH-<i>1</i>" in overlay
    assert HOSTILE["InstitutionName"] in overlay
    side = page.locator(".viewer-side").inner_text()
    assert HOSTILE["SeriesDescription"] in side and HOSTILE["StudyDescription"] in side
    assert page.locator("#viewer script, #viewer svg[onload], #viewer b, #viewer i").count() == 0
    assert page.locator("#viewer img[src='x']").count() == 0
    page.mouse.move(300, 300)
    page.wait_for_timeout(300)
    assert dialogs == [] and errors == []


def test_manual_link_moves_stacks_together_from_the_current_slices(
    browser, live_server, tech, riverside
):
    HangingProtocol.objects.create(
        name="Two CT stacks",
        modality="CT",
        priority=1,
        columns=3,
        viewports=[{"index": 0}, {"index": 1}, {"index": 2}],
    )
    study = generate_uid()
    axial = [[0, 0, z] for z in range(0, 30, 5)]
    series(study, generate_uid(), 1, "AX today", AXIAL, axial, riverside)
    series(study, generate_uid(), 2, "AX other frame", AXIAL, axial, riverside)  # no shared FoR
    series(
        study, generate_uid(), 3, "COR", CORONAL, [[0, y, 0] for y in range(0, 30, 5)], riverside
    )
    page, errors = open_page(browser, live_server, study)
    for cell in range(3):
        page.wait_for_selector(f".viewport[data-cell='{cell}'][data-geometry=ready]")
    page.click(".viewport[data-cell='1'] .overlay.bl", force=True)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector(".viewport[data-cell='1'][data-frame='3']")
    assert page.locator(".viewport[data-cell='0']").get_attribute("data-frame") == "1"  # unlinked
    page.keyboard.press("l")  # link the axial stacks at their current slices (1 and 3)
    assert page.locator("#viewer").get_attribute("data-linked") == "1"  # not the coronal one
    page.keyboard.press("ArrowDown")
    page.wait_for_selector(".viewport[data-cell='1'][data-frame='4']")
    page.wait_for_selector(".viewport[data-cell='0'][data-frame='2']")
    assert page.locator(".viewport[data-cell='2']").get_attribute("data-frame") == "1"
    assert errors == []
