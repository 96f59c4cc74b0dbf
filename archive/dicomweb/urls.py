"""DICOMweb routes (PS3.18 Table 10.4.1-1, 10.6.1-1, 10.7.1-1 resources)."""

from __future__ import annotations

from django.urls import path, register_converter

from . import views


class UIDConverter:
    regex = r"[0-9][0-9.]{0,63}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(UIDConverter, "uid")

app_name = "dicomweb"
S = "studies/<uid:study_uid>"
SE = f"{S}/series/<uid:series_uid>"
IN = f"{SE}/instances/<uid:sop_uid>"

urlpatterns = [
    path("studies", views.studies_root, name="studies"),
    path("series", views.search_series, name="all-series"),
    path("instances", views.search_instances, name="all-instances"),
    path(S, views.study_root, name="study"),
    path(f"{S}/metadata", views.retrieve_metadata, name="study-metadata"),
    path(f"{S}/thumbnail", views.thumbnail, name="study-thumbnail"),
    path(f"{S}/series", views.search_series, name="study-series"),
    path(f"{S}/instances", views.search_instances, name="study-instances"),
    path(SE, views.retrieve, name="series"),
    path(f"{SE}/metadata", views.retrieve_metadata, name="series-metadata"),
    path(f"{SE}/thumbnail", views.thumbnail, name="series-thumbnail"),
    path(f"{SE}/instances", views.search_instances, name="series-instances"),
    path(IN, views.retrieve, name="instance"),
    path(f"{IN}/metadata", views.retrieve_metadata, name="instance-metadata"),
    path(f"{IN}/thumbnail", views.thumbnail, name="instance-thumbnail"),
    path(f"{IN}/rendered", views.rendered, name="instance-rendered"),
    path(f"{IN}/frames/<str:frames>", views.retrieve_frames, name="frames"),
    path(f"{IN}/frames/<int:frame>/rendered", views.rendered, name="frame-rendered"),
    path(f"{IN}/bulkdata/<str:tag>", views.retrieve_bulkdata, name="bulkdata"),
]
