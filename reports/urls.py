from __future__ import annotations

from django.urls import path

import archive.dicomweb.urls  # noqa: F401  (registers the "uid" path converter)

from . import views

app_name = "reports"

urlpatterns = [
    path("studies/<uid:study_uid>/", views.editor, name="editor"),
    path("studies/<uid:study_uid>/heartbeat", views.heartbeat, name="heartbeat"),
    path("<int:pk>/", views.report_page, name="report"),
    path("<int:pk>/draft", views.autosave, name="autosave"),
    path("<int:pk>/import-measurements", views.import_measurements, name="import-measurements"),
    path("<int:pk>/sign", views.sign, name="sign"),
    path("<int:pk>/addendum", views.addendum, name="addendum"),
    path("<int:pk>/versions/<int:number>.pdf", views.version_pdf, name="version-pdf"),
    path("<int:pk>/critical", views.flag_critical, name="flag-critical"),
    path("critical/<int:pk>/document", views.document_critical, name="document-critical"),
    path("critical/<int:pk>/acknowledge", views.acknowledge_critical, name="acknowledge-critical"),
    path("critical/", views.critical_board, name="critical-board"),
    path("portal/", views.portal, name="portal"),
    path("portal/<int:pk>/", views.report_page, name="portal-report"),
]
