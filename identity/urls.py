from __future__ import annotations

from django.urls import path

from . import views

app_name = "identity"
urlpatterns = [
    path("review/", views.review_queue, name="review"),
    path("review/<int:pk>/", views.decide_pair, name="decide"),
    path("persons/<int:pk>/", views.person_detail, name="person"),
    path("persons/<int:pk>/link/", views.link, name="link"),
    path("records/<int:pk>/unlink/", views.unlink, name="unlink"),
    path("events/<int:pk>/unmerge/", views.unmerge, name="unmerge"),
]
