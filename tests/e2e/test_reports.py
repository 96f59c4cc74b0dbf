"""Reporting in a real browser against a live server with the demo data: the reader measures
in the viewer, the measurement fills the echo template, the report is signed final with
password and TOTP; the referring physician of that hospital reads it and downloads the PDF,
one of another hospital cannot. Autosave survives a closed page and a lost connection."""

from __future__ import annotations

import io

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from pypdf import PdfReader

from reports.models import Report
from tests.conftest import wait_for
from tests.e2e.conftest import sign_in
from worklist.models import Case

pytestmark = pytest.mark.e2e


def fresh_code(username: str) -> str:
    """The demo reader's current code, as if in the next time step (a code is good once)."""
    device = TOTPDevice.objects.get(user__username=username)
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    return f"{totp(device.bin_key):06d}"


def test_measure_report_sign_and_deliver(browser, live_server, demo_world):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, live_server.url, "reader", demo_world.password)
    uid = demo_world.uid("liam-echo")
    page.goto(f"{live_server.url}/viewer/studies/{uid}/")
    page.wait_for_selector("#viewer[data-ready=true]")
    page.wait_for_selector(".viewport[data-cell='0'][data-geometry=ready][data-image-state=ready]")
    page.click(".viewport[data-cell='0'] .overlay.bl", force=True)
    page.keyboard.press("c")  # pause the loop
    region = page.evaluate(
        "() => window.ReadingRoom.viewports[0].describe().calibration.regions"
        ".find(r => r.delta_x_mm)"
    )
    x0, y0 = region["x0"] + 20, (region["y0"] + region["y1"]) / 2
    page.select_option("#measure-label", "lv_edd")
    page.keyboard.press("d")
    box = page.locator(".viewport[data-cell='0'] img.frame").bounding_box()

    def client(x, y):
        return box["x"] + x / 640 * box["width"], box["y"] + y / 480 * box["height"]

    with page.expect_response(lambda r: "/measurements" in r.url and r.status == 201) as saved:
        page.mouse.move(*client(x0, y0))
        page.mouse.down()
        page.mouse.move(*client(x0 + 60, y0), steps=3)
        page.mouse.up()
    measurement = saved.value.json()
    assert measurement["unit"] == "mm" and measurement["label"] == "lv_edd"

    # The reader claims the case on the worklist: the lock is taken, the editor opens.
    page.goto(f"{live_server.url}/worklist/")
    row = page.locator(f"tr[data-study-uid='{uid}']")
    row.locator("button[data-action=lock]").click()
    page.wait_for_url(f"**/reports/studies/{uid}/")
    page.wait_for_selector("#editor[data-ready=true]")
    case = Case.objects.get(study__study_instance_uid=uid)
    assert case.lock_holder.username == "reader" and case.status == "in_progress"
    page.click("text=Fill 1 field(s) from the viewer")
    page.wait_for_selector("#editor[data-ready=true]")
    expected_cm = round(measurement["value"] / 10, 2)
    assert float(page.input_value("[name=lv_edd]")) == pytest.approx(expected_cm)
    # No weight or height in the demo's header: the reader enters them, the z-score follows.
    page.fill("[name=height_cm]", "84")
    page.fill("[name=weight_kg]", "11.5")
    page.wait_for_selector("[data-z=lv_edd]:has-text('(PHN)')")
    assert "BSA" not in page.locator("#calc-bsa").inner_text()  # the value, with its formula
    assert "(Haycock)" in page.locator("#calc-bsa").inner_text()
    page.fill("[name=impression]", "Normal biventricular size and function.")
    page.wait_for_selector("#save-state:has-text('saved ')")
    page.fill("#sign-form [name=password]", demo_world.password)
    page.fill("#sign-form [name=code]", fresh_code("reader"))
    page.click("#sign-form button[value=final]")
    page.wait_for_selector("#report-status:has-text('FINAL')")
    report = Report.objects.get(study__study_instance_uid=uid)
    assert report.status == "final"
    case.refresh_from_db()
    assert case.status == "final" and case.lock_holder is None  # signing released the lock
    context.close()
    assert errors == []

    referrer = browser.new_context()
    page = referrer.new_page()
    sign_in(page, live_server.url, "referrer", demo_world.password)
    page.goto(f"{live_server.url}/reports/portal/")
    page.click(f"a[href='/reports/portal/{report.pk}/']")
    assert "Normal biventricular size and function." in page.inner_text("main")
    with page.expect_download() as download:
        page.click("#pdf-link")
    with open(download.value.path(), "rb") as fh:
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(fh.read())).pages)
    assert "FINAL" in text and "Normal biventricular size and function." in text and "PHN" in text
    referrer.close()

    other = browser.new_context()
    page = other.new_page()
    sign_in(page, live_server.url, "referrer2", demo_world.password)
    assert page.goto(f"{live_server.url}/reports/portal/{report.pk}/").status == 404
    assert page.goto(f"{live_server.url}/reports/{report.pk}/versions/1.pdf").status == 404
    other.close()


def test_autosave_survives_a_closed_page_and_a_lost_connection(browser, live_server, demo_world):
    uid = demo_world.uid("arjun-ct")
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, live_server.url, "reader", demo_world.password)
    page.goto(f"{live_server.url}/reports/studies/{uid}/")
    page.wait_for_selector("#editor[data-ready=true]")
    page.fill("[name=impression]", "Typed before closing the page.")
    page.wait_for_timeout(2000)  # "a few seconds"
    page.close()
    page = context.new_page()
    page.goto(f"{live_server.url}/reports/studies/{uid}/")
    assert page.input_value("[name=impression]") == "Typed before closing the page."

    # The connection drops: what is typed stays in the browser and is sent when back.
    page.route("**/draft", lambda route: route.abort())
    page.fill("[name=clinical_history]", "Typed while offline.")
    page.wait_for_selector("#save-state:has-text('offline')")
    page.unroute("**/draft")
    page.reload()
    assert page.input_value("[name=clinical_history]") == "Typed while offline."
    page.wait_for_selector("#save-state:has-text('saved ')")
    wait_for(
        lambda: (
            Report.objects.get(study__study_instance_uid=uid).clinical_history
            == "Typed while offline."
        ),
        timeout=10,
    )
    report = Report.objects.get(study__study_instance_uid=uid)
    assert report.values["impression"] == "Typed before closing the page."
    context.close()


def test_ecg_calipers_fill_the_ecg_report(browser, live_server, demo_world):
    uid = demo_world.uid("baby-ecg")
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    sign_in(page, live_server.url, "reader", demo_world.password)
    page.goto(f"{live_server.url}/viewer/studies/{uid}/")
    page.wait_for_selector(".viewport[data-ecg-ready=true] svg.ecg")
    for name, width_mm in (("QT", 10), ("RR", 25)):  # 400 ms and 1000 ms at 25 mm/s
        page.select_option(".ecg-tools select[name=caliper]", name)
        points = page.evaluate(
            f"""() => {{
              const svg = document.querySelector('svg.ecg');
              const m = svg.getScreenCTM();
              const at = (x, y) => {{ const p = svg.createSVGPoint(); p.x = x; p.y = y;
                                     const q = p.matrixTransform(m); return [q.x, q.y]; }};
              return [at(40, 30), at({40 + width_mm}, 30)];
            }}"""
        )
        with page.expect_response(lambda r: "/measurements" in r.url and r.status == 201) as saved:
            for x, y in points:
                page.mouse.click(x, y)
        assert saved.value.json()["value"] == pytest.approx(width_mm / 25 * 1000, abs=15)
    page.goto(f"{live_server.url}/reports/studies/{uid}/")
    page.wait_for_selector("#editor[data-ready=true]")
    page.click("text=Fill 2 field(s) from the viewer")
    page.wait_for_selector("#editor[data-ready=true]")
    qt, rr = float(page.input_value("[name=qt]")), float(page.input_value("[name=rr]"))
    assert abs(qt - 400) <= 15 and abs(rr - 1000) <= 15
    calc = page.locator("#calc-ecg").inner_text()
    assert "qtc_bazett" in calc and "qtc_fridericia" in calc
    context.close()
