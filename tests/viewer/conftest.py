"""Viewer tests reuse the DICOMweb fixtures: a technologist at Riverside and an outsider."""

from tests.dicomweb.conftest import outsider, tech  # noqa: F401 (fixtures)
