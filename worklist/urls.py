from __future__ import annotations

from django.urls import path

from . import views

app_name = "worklist"

urlpatterns = [
    path("", views.page, name="page"),
    path("table/", views.table, name="table"),
    path("rows/<int:case_id>/", views.row, name="row"),
    path("load/", views.load, name="load"),
    path("next/", views.next_case, name="next"),
    path("bulk-assign/", views.bulk_assign, name="bulk_assign"),
    path("preferences/", views.preferences, name="preferences"),
    path("cases/<int:case_id>/readers/", views.readers, name="readers"),
    path("cases/<int:case_id>/assign/", views.assign, name="assign"),
    path("cases/<int:case_id>/claim/", views.claim, name="claim"),
    path("cases/<int:case_id>/lock/", views.lock, name="lock"),
    path("cases/<int:case_id>/heartbeat/", views.heartbeat, name="heartbeat"),
    path("cases/<int:case_id>/unlock/", views.unlock, name="unlock"),
    path("cases/<int:case_id>/break-lock/", views.break_lock, name="break_lock"),
]
