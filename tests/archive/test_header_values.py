"""read_header converts the indexed attributes itself (once each, with the data set's character
set) instead of through Dataset attribute access: the values must be exactly pydicom's."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pytest
from pydicom.data import get_charset_files
from pydicom.filereader import read_dataset
from pydicom.uid import UID

from archive.dicomfile import _KEYWORDS, _values, read_header, split_part10
from tests.factories import PYDICOM_DATA_DIRS

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


def _files() -> list[Path]:
    files = {p for folder in PYDICOM_DATA_DIRS for p in folder.glob("*.dcm")}
    files |= {Path(p) for p in get_charset_files("*.dcm")}
    if CORPUS.is_dir():
        files |= set(CORPUS.glob("*.dcm"))
    return sorted(files)


def _dataset(data: bytes):
    """The data set as read_header reads it."""
    ts, body = split_part10(data)
    syntax = UID(ts)
    if syntax.is_deflated:
        body = zlib.decompress(body, -zlib.MAX_WBITS)
    return read_dataset(io.BytesIO(body), syntax.is_implicit_VR, syntax.is_little_endian)


def _pydicoms(ds) -> dict[str, object]:
    return {keyword: ds.get(keyword) for keyword in _KEYWORDS if keyword in ds}


def test_every_file_gives_pydicoms_values():
    compared = charsets = 0
    for path in _files():
        data = path.read_bytes()
        try:
            ours, theirs = _values(_dataset(data)), _pydicoms(_dataset(data))
        except Exception:
            continue  # not Part 10, or pydicom itself cannot read it: read_header refuses it
        assert ours == theirs, path.name
        assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}
        compared += 1
        charsets += "SpecificCharacterSet" in _dataset(data)
    assert compared > 150 and charsets > 15


@pytest.mark.parametrize(
    "name, patient_name",
    [
        ("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        ("chrRuss.dcm", "Люкceмбypг"),
        ("chrX1.dcm", "Wang^XiaoDong=王^小東"),
    ],
)
def test_patient_names_are_decoded_with_the_files_character_set(name, patient_name):
    path = Path(get_charset_files(name)[0])
    ts, body = split_part10(path.read_bytes())
    assert read_header(body, ts).patient_name == patient_name
