"""dicomweb-client, a real DICOMweb client, against a live ReadingRoom: store, search (each
matching rule), retrieve instances, metadata, frames and rendered images, for pydicom's test
files and, when present, every well-formed file of ../shared/corpus/."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.uid import generate_uid

from tests.dicomweb.conftest import api_user
from tests.factories import pydicom_file

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
MALFORMED = {
    "MR_truncated.dcm",
    "no_meta.dcm",
    "bad_sequence.dcm",
    "CTImageStorage_bad_meta.dcm",
    "emri_small_jpeg_2k_lossless_too_short.dcm",
}
PYDICOM_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEG2000.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "US1_J2KR.dcm",
    "emri_small.dcm",
    "waveform_ecg.dcm",
]


@pytest.fixture
def client(live_server, riverside) -> DICOMwebClient:
    tech = api_user("tech", riverside)
    # Bodies over chunk_size go out with chunked transfer encoding, which Django's test server
    # (wsgiref) cannot read; daphne, which serves ReadingRoom, can (test_serve_stow.py).
    return DICOMwebClient(
        url=f"{live_server.url}/dicomweb",
        headers={"Authorization": f"Bearer {tech.token}"},
        chunk_size=1 << 30,
    )


def fresh(path: Path, **attributes) -> pydicom.Dataset:
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def stored_uids(response: pydicom.Dataset) -> list[str]:
    assert "FailedSOPSequence" not in response, response
    return [item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence]


def test_store_search_and_retrieve_with_dicomweb_client(client):
    study = generate_uid()
    datasets = [
        fresh(
            pydicom_file(name),
            StudyInstanceUID=study,
            PatientID="MRN-77",
            PatientName="Tester^Tina",
            StudyDate="20250301",
            StudyTime="091500",
            AccessionNumber="ACC77",
        )
        for name in PYDICOM_FILES
    ]
    assert len(stored_uids(client.store_instances(datasets))) == len(PYDICOM_FILES)

    def found(**search) -> list[str]:
        return [r["0020000D"]["Value"][0] for r in client.search_for_studies(**search)]

    assert found(search_filters={"PatientID": "MRN-77"}) == [study]
    assert found(search_filters={"PatientID": "MRN-7*"}) == [study]
    assert found(search_filters={"PatientID": "MRN-7?"}) == [study]
    assert found(search_filters={"PatientName": "tester^tina"}) == [study]
    assert found(search_filters={"PatientName": "tina"}, fuzzymatching=True) == [study]
    assert found(search_filters={"StudyDate": "20250101-20250331"}) == [study]
    assert found(search_filters={"StudyDate": "20250302-"}) == []
    assert found(search_filters={"StudyTime": "0900-1000"}) == [study]
    assert found(search_filters={"StudyInstanceUID": [study, generate_uid()]}) == [study]
    assert found(search_filters={"AccessionNumber": "ACC77"}) == [study]
    assert found(search_filters={"ModalitiesInStudy": "ECG"}) == [study]
    assert found(search_filters={"PatientID": "MRN-77"}, limit=1, offset=1) == []
    (result,) = client.search_for_studies(
        search_filters={"PatientID": "MRN-77"}, fields=["StudyDescription"]
    )
    assert "00081030" in result

    series = client.search_for_series(study)
    assert sum(s["00201209"]["Value"][0] for s in series) == len(PYDICOM_FILES)
    instances = client.search_for_instances(study)
    assert {i["00080018"]["Value"][0] for i in instances} == {d.SOPInstanceUID for d in datasets}

    for original in datasets:
        uids = (study, original.SeriesInstanceUID, original.SOPInstanceUID)
        as_stored = client.retrieve_instance(*uids, media_types=(("application/dicom", "*"),))
        assert as_stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert as_stored.PatientID == "MRN-77"
        metadata = client.retrieve_instance_metadata(*uids)
        assert metadata["00080018"]["Value"] == [original.SOPInstanceUID]
        if "PixelData" not in original:
            continue
        assert "BulkDataURI" in metadata["7FE00010"]
        # No transfer-syntax parameter: as stored (see README: a deliberate choice).
        default = client.retrieve_instance(*uids)
        assert default.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        explicit = client.retrieve_instance(
            *uids, media_types=(("application/dicom", "1.2.840.10008.1.2.1"),)
        )
        assert explicit.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        expected = original.pixel_array
        assert (
            np.array_equal(explicit.pixel_array, expected)
            or original.file_meta.TransferSyntaxUID.is_compressed
        )
        (frame,) = client.retrieve_instance_frames(*uids, frame_numbers=[1])
        assert len(frame) > 0
        jpeg = client.retrieve_instance_rendered(*uids, media_types=("image/jpeg",))
        image = Image.open(io.BytesIO(jpeg))
        assert image.size == (original.Columns, original.Rows)
        png = client.retrieve_instance_frames_rendered(
            *uids, frame_numbers=[1], media_types=("image/png",), params={"viewport": "32,32"}
        )
        assert max(Image.open(io.BytesIO(png)).size) == 32


def test_decoded_frames_equal_pydicoms_pixels(client):
    """Native frames of compressed instances, decoded by the server, match pydicom's decode."""
    for name in ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm"):
        ds = fresh(pydicom_file(name))
        stored_uids(client.store_instances([ds]))
        uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        (frame,) = client.retrieve_instance_frames(
            *uids,
            frame_numbers=[1],
            media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
        )
        expected = ds.pixel_array
        assert frame == expected.astype(expected.dtype.newbyteorder("<")).tobytes(), name


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not on this machine")
def test_every_corpus_file_round_trips(client):
    files = sorted(p for p in CORPUS.glob("*.dcm") if p.name not in MALFORMED)
    assert len(files) >= 40
    for path in files:
        # Several corpus files lack the identifiers ingest insists on (PatientID, study UID).
        ds = fresh(path, PatientID="CORPUS-1")
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
            if not ds.get(keyword):
                setattr(ds, keyword, generate_uid())
        stored_uids(client.store_instances([ds]))
        uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        back = client.retrieve_instance(*uids, media_types=(("application/dicom", "*"),))
        assert back.SOPInstanceUID == ds.SOPInstanceUID, path.name
        client.retrieve_instance_metadata(*uids)
        if "PixelData" in ds:
            frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
            image = client.retrieve_instance_frames_rendered(
                *uids, frame_numbers=[frames], media_types=("image/jpeg",)
            )
            assert Image.open(io.BytesIO(image)).size[0] > 0, path.name
