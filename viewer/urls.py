"""Viewer routes. Images themselves come from /dicomweb/ (rendered, thumbnail)."""

from __future__ import annotations

from django.urls import path

import archive.dicomweb.urls  # noqa: F401  (registers the "uid" path converter)

from . import views

app_name = "viewer"
S = "studies/<uid:study_uid>"
IN = f"{S}/series/<uid:series_uid>/instances/<uid:sop_uid>"

urlpatterns = [
    path(f"{S}/", views.study_page, name="study"),
    path(f"{S}/series/<uid:series_uid>/geometry", views.stack_geometry, name="geometry"),
    path(f"{IN}/ecg.svg", views.ecg_svg, name="ecg"),
    path(f"{IN}/document", views.document, name="document"),
    path(f"{S}/measurements", views.measurements, name="measurements"),
    path(f"{S}/measurements/<int:pk>/delete", views.delete_measurement, name="measurement-delete"),
    path(f"{S}/key-images", views.key_image, name="key-image"),
]
