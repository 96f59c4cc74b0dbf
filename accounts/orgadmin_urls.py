from __future__ import annotations

from django.urls import path

from . import orgadmin

app_name = "orgadmin"
urlpatterns = [
    path("", orgadmin.index, name="index"),
    path("<slug:slug>/", orgadmin.organization, name="organization"),
    path("<slug:slug>/members/", orgadmin.add_member, name="add_member"),
    path(
        "<slug:slug>/members/<int:membership_id>/active/",
        orgadmin.set_member_active,
        name="set_member_active",
    ),
    path("<slug:slug>/nodes/", orgadmin.add_node, name="add_node"),
    path(
        "<slug:slug>/nodes/<int:node_id>/enabled/",
        orgadmin.set_node_enabled,
        name="set_node_enabled",
    ),
]
