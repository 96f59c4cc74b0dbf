"""Pages of the archive: for now the signed-in home page listing received studies."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.policy import visible_studies


@login_required
def home(request: HttpRequest) -> HttpResponse:
    studies = (
        visible_studies(request.user)
        .select_related("organization", "patient_record")
        .annotate(
            num_series=Count("series", distinct=True),
            num_instances=Count("series__instances"),
        )
        .order_by("-last_received_at")[:200]
    )
    return render(request, "archive/home.html", {"studies": studies})
