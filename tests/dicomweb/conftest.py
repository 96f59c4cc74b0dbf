"""DICOMweb fixtures: uploaders with API tokens at two hospitals, and test studies built from
real pydicom files with chosen identifiers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from pydicom import dcmread
from pydicom.uid import generate_uid

from accounts.models import Membership, Role
from accounts.tokens import issue_token
from archive import services
from archive.dicomfile import split_part10
from tests.factories import pydicom_file


class ApiUser:
    def __init__(self, user, token: str) -> None:
        self.user = user
        self.token = token
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def get(self, path: str, data=None, **kwargs):
        return self.client.get(path, data, **kwargs)


def api_user(username: str, org, role: str = Role.TECHNOLOGIST) -> ApiUser:
    user = get_user_model().objects.create_user(username, password="x" * 20)
    Membership.objects.create(user=user, organization=org, role=role)
    _, token = issue_token(user, "tests")
    return ApiUser(user, token)


@pytest.fixture
def tech(riverside) -> ApiUser:
    return api_user("tech", riverside)


@pytest.fixture
def outsider(lakeview) -> ApiUser:
    return api_user("outsider", lakeview)


def part10(source: str, **attributes) -> bytes:
    """A pydicom test file with some attributes replaced (UIDs fresh unless given)."""
    ds = dcmread(pydicom_file(source))
    ds.SOPInstanceUID = attributes.pop("SOPInstanceUID", generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = attributes.pop("StudyInstanceUID", generate_uid())
    ds.SeriesInstanceUID = attributes.pop("SeriesInstanceUID", generate_uid())
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def ingest(data: bytes, org) -> services.IngestOutcome:
    ts, dataset = split_part10(data)
    outcome = services.ingest_instance(dataset, ts, services.IngestSource(org, "tests"))
    assert outcome.accepted, outcome
    return outcome


def write(tmp_path: Path, data: bytes, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path
