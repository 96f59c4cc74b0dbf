"""Viewer speed in a real browser: time to the first image, time to the prior, cine on time.

Why: a reader judges the viewer by how soon the first image of a case is on screen, how soon
the prior beside it is, and whether a loop plays smoothly. Targets (issue 6): first image of
a 512x512 CT under 500 ms on this machine; a 60-frame loop with no stalls after the first
second.

How: `manage.py serve --demo` (daphne + the DICOM SCP; the demo arrives over a real
association, so arrival pre-rendering has run, as it would for a real case) on embedded
defaults unless --database-url. A 60-frame echo loop (the first 60 frames of pydicom's
color3d_jpeg_baseline.dcm, Frame Time 33.3 ms) is stored with STOW-RS for a demo patient.
Debian's Chromium (Playwright, headless) signs in once as the demo reader (password + TOTP);
every run then opens the page in a fresh browser context (empty HTTP cache). A script
installed before the page's own records, for each viewport, `performance.now()` (ms since
navigation start) when its <img> first finishes loading; the image is then checked not to be
blank (pixel SD of a screenshot). Cine: after the loop has been fetched, stats are reset one
second into playback and read after --cine-seconds: frames due, frames shown, stalls (ticks
where the due frame was not there yet).

No peer: Orthanc has no viewer page to compare with (its Stone/OHIF viewers are not packaged
here), so this benchmark prints ReadingRoom's figures only.

Usage:
    .venv/bin/python bench/viewer.py [--runs 7] [--cine-seconds 4] [--database-url ...] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from PIL import Image  # noqa: E402
from pydicom.encaps import encapsulate, generate_frames  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from bench.common import (  # noqa: E402
    PYTHON,
    ROOT,
    Children,
    HttpClient,
    bench_admin_token,
    find_dicom,
    finish_run,
    free_port,
    http_answers,
    load_average,
    median,
    migrate,
    multipart_related,
    readingroom_env,
    recreate_database,
    terminate_on_signals,
    wait_until,
)

PASSWORD = "bench-viewer-pass"
STOW_TYPE = 'multipart/related; type="application/dicom"'
PAINT_PROBE = """
window.__paint = {};
document.addEventListener('load', (event) => {
  const img = event.target;
  if (!(img instanceof HTMLImageElement) || !img.classList.contains('frame')) return;
  const vp = img.closest('.viewport');
  if (vp && img.naturalWidth && !(vp.dataset.cell in window.__paint)) {
    window.__paint[vp.dataset.cell] = performance.now();
  }
}, true);
"""


def loop_60(patient: pydicom.Dataset) -> bytes:
    """The first 60 frames of the demo echo loop, as a new study of a demo patient."""
    ds = pydicom.dcmread(find_dicom("color3d_jpeg_baseline.dcm"))
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))[:60]
    ds.PixelData = encapsulate(frames)
    ds.NumberOfFrames = 60
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, keyword, getattr(patient, keyword))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyDescription = "ECHO BENCH LOOP 60"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def blank(page, cell: str) -> bool:
    shot = page.locator(f".viewport[data-cell='{cell}'] img.frame").screenshot()
    return float(np.asarray(Image.open(io.BytesIO(shot)).convert("L")).std()) < 5


def sign_in(browser, base: str, secret: str):
    from django_otp.oath import totp

    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "reader")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/mfa/verify/**")
    key = __import__("base64").b32decode(secret + "=" * (-len(secret) % 8))
    page.fill("input[name=code]", f"{totp(key):06d}")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/")
    state = context.storage_state()
    context.close()
    return state


def time_open(browser, state, url: str, cells: tuple[str, ...]) -> dict[str, float]:
    context = browser.new_context(storage_state=state, viewport={"width": 1400, "height": 900})
    context.add_init_script(PAINT_PROBE)
    page = context.new_page()
    page.goto(url, wait_until="commit")
    deadline = time.monotonic() + 30
    paint: dict = {}
    while time.monotonic() < deadline:
        paint = page.evaluate("() => window.__paint || {}")
        if all(c in paint for c in cells):
            break
        time.sleep(0.01)
    missing = [c for c in cells if c not in paint]
    if missing:
        raise RuntimeError(f"no image in viewport(s) {missing} of {url}")
    for cell in cells:
        if blank(page, cell):
            raise RuntimeError(f"viewport {cell} of {url} is blank")
    context.close()
    return {c: float(paint[c]) for c in cells}


def cine(browser, state, url: str, seconds: float) -> dict[str, float]:
    context = browser.new_context(storage_state=state, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector(
        ".viewport[data-playing=true][data-loaded='60']", state="attached", timeout=60000
    )
    cell = page.locator(".viewport[data-playing=true]").first.get_attribute("data-cell")
    page.wait_for_timeout(1000)
    reset = "{expected: 0, shown: 0, late: 0}"
    page.evaluate(f"() => {{ window.ReadingRoom.viewports[{cell}].stats = {reset}; }}")
    page.wait_for_timeout(seconds * 1000)
    stats = page.evaluate(f"() => window.ReadingRoom.viewports[{cell}].stats")
    context.close()
    return stats


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="page opens per case (7)")
    parser.add_argument("--cine-seconds", type=float, default=4.0)
    parser.add_argument("--database-url", help="PostgreSQL URL (dropped, recreated)")
    parser.add_argument("--keep", action="store_true", help="keep temp dir and database")
    parser.add_argument("--tmpdir", help="base folder for the server's data")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from playwright.sync_api import sync_playwright

    args = parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="readingroom-viewer-", dir=args.tmpdir))
    print(f"working in {base}; load average {load_average()}", flush=True)
    children = Children()
    clients: list[HttpClient] = []
    try:
        with terminate_on_signals():
            if args.database_url:
                recreate_database(args.database_url)
            data_dir = base / "readingroom"
            data_dir.mkdir()
            env = readingroom_env(data_dir, args.database_url)
            env["DEMO_PASSWORD"] = PASSWORD
            migrate(env)
            token = bench_admin_token(env)
            port, dicom_port = free_port(), free_port()
            log = base / "serve.log"
            serve_env = {
                **env,
                "HTTP_HOST": "127.0.0.1",
                "HTTP_PORT": str(port),
                "DICOM_PORT": str(dicom_port),
            }
            proc = children.start(
                [PYTHON, str(ROOT / "manage.py"), "serve", "--demo"], serve_env, log, ROOT
            )
            wait_until(
                lambda: (
                    "demo instances sent" in log.read_text()
                    and http_answers(f"http://127.0.0.1:{port}/login/")
                ),
                "serve --demo",
                proc,
                log,
            )
            secret = re.search(r"reader / \S+ \([^)]*\), TOTP secret (\w+)", log.read_text()).group(
                1
            )
            rr = HttpClient(port, {"Authorization": f"Bearer {token}"})
            clients.append(rr)
            patient = pydicom.dcmread(find_dicom("CT_small.dcm"), stop_before_pixels=True)
            patient.PatientName, patient.PatientID = "NGUYEN^LIAM", "RCH-100871"
            patient.PatientBirthDate, patient.PatientSex = "20240802", "M"
            boundary = "benchviewer"
            reply = rr.request(
                "POST",
                "/dicomweb/studies?organization=riverside",
                multipart_related([loop_60(patient)], boundary),
                {"Content-Type": f"{STOW_TYPE}; boundary={boundary}"},
            )
            if reply.status != 200:
                raise RuntimeError(f"STOW of the loop failed: {reply.status} {reply.body[:200]!r}")
            found = rr.request("GET", "/dicomweb/studies?includefield=00081030&limit=100")
            studies = {
                s["00081030"]["Value"][0]: s["0020000D"]["Value"][0] for s in json.loads(found.body)
            }
            web = f"http://127.0.0.1:{port}"
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    headless=True,
                    args=["--no-sandbox", "--disable-gpu"],
                )
                state = sign_in(browser, web, secret)
                ct = f"{web}/viewer/studies/{studies['CT CHEST WO CONTRAST']}/"
                firsts = [time_open(browser, state, ct, ("0",))["0"] for _ in range(args.runs)]
                mr = [
                    s["0020000D"]["Value"][0]
                    for s in json.loads(found.body)
                    if s["00081030"]["Value"][0] == "MR BRAIN WO CONTRAST"
                ]
                pairs = []
                for uid in mr:
                    try:
                        pairs = [
                            time_open(browser, state, f"{web}/viewer/studies/{uid}/", ("0", "1"))
                            for _ in range(args.runs)
                        ]
                        break
                    except RuntimeError:
                        continue  # the older MR has no prior to open beside it
                loop = f"{web}/viewer/studies/{studies['ECHO BENCH LOOP 60']}/"
                stats = cine(browser, state, loop, args.cine_seconds)
                browser.close()
            print(
                "\nviewer, Chromium headless, navigation start -> image loaded (ms), "
                f"median of {args.runs} fresh browser contexts"
            )
            print(
                f"  first image, 512x512 CT (J2K lossless):   median {median(firsts):7.1f}"
                f"  min {min(firsts):7.1f}  max {max(firsts):7.1f}  target < 500"
            )
            if pairs:
                cur = [p["0"] for p in pairs]
                pri = [p["1"] for p in pairs]
                print(f"  MR current image:                         median {median(cur):7.1f}")
                print(f"  MR prior (other hospital) beside it:      median {median(pri):7.1f}")
            shown = stats["shown"] / stats["expected"] if stats["expected"] else 0.0
            print(
                f"  cine 60-frame loop at 30 fps, {args.cine_seconds:g} s after the first second: "
                f"{stats['shown']} of {stats['expected']} due frames shown ({shown:.1%}), "
                f"stalls {stats['late']}"
            )
    finally:
        finish_run(clients, children, args, base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
