"""The study page shows a thumbnail per image series, fetched over DICOMweb with the session."""

from __future__ import annotations

import io

from PIL import Image

from tests.accounts.helpers import login_verified
from tests.dicomweb.conftest import ingest, part10


def test_study_page_thumbnails_load_with_the_session(client, tech, riverside):
    study = "1.2.826.0.1.3680043.8.498.77"
    ingest(
        part10("CT_small.dcm", StudyInstanceUID=study, SeriesNumber=1, PatientID="P1"), riverside
    )
    ingest(
        part10("waveform_ecg.dcm", StudyInstanceUID=study, SeriesNumber=2, PatientID="P1"),
        riverside,
    )
    login_verified(client, tech.user)
    page = client.get(f"/studies/{study}/").content.decode()
    assert page.count('class="thumb"><img src="/dicomweb/studies/') == 1  # the ECG has no image
    src = page.split('class="thumb"><img src="')[1].split('"')[0]
    response = client.get(src)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(response.content)).size) <= 128
