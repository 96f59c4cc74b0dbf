"""Datasets for the pure viewer tests (geometry, calibration, cine): small builders and the
real files from pydicom / pydicom-data."""

from __future__ import annotations

import math

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.factories import pydicom_file

AXIAL = [1, 0, 0, 0, 1, 0]
CORONAL = [1, 0, 0, 0, 0, -1]
SAGITTAL = [0, 1, 0, 0, 0, -1]
DEMO_FILES = (
    "CT_small.dcm",
    "MR_small.dcm",
    "color3d_jpeg_baseline.dcm",
    "US1_UNCR.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "eCT_Supplemental.dcm",
    "OBXXXX1A.dcm",
)


def read(name: str, **kwargs) -> Dataset:
    return pydicom.dcmread(pydicom_file(name), **kwargs)


def rotated_axial(degrees: float, axis: str = "x") -> list[float]:
    """Axial IOP rotated about x (tilts the column toward z) or z (in-plane rotation)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == "x":
        return [1, 0, 0, 0, c, s]
    return [c, s, 0, -s, c, 0]


def image(**elements) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns = 4, 4
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def item(**elements) -> Dataset:
    ds = Dataset()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def enhanced(positions, shared_iop=AXIAL, per_frame_iop=None) -> Dataset:
    ds = image(NumberOfFrames=len(positions))
    frames = []
    for index, position in enumerate(positions):
        group = Dataset()
        if position is not None:
            group.PlanePositionSequence = Sequence([item(ImagePositionPatient=position)])
        if per_frame_iop and per_frame_iop[index] is not None:
            orientation = item(ImageOrientationPatient=per_frame_iop[index])
            group.PlaneOrientationSequence = Sequence([orientation])
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    shared = Dataset()
    if shared_iop is not None:
        shared.PlaneOrientationSequence = Sequence([item(ImageOrientationPatient=shared_iop)])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    return ds
