"""The access policy: the one place that decides who sees which studies.

Every view, DICOMweb endpoint, consumer and export asks here. Until roles and reading
agreements exist, only platform superusers see patient data; everyone else sees nothing.
"""

from __future__ import annotations

from django.db.models import QuerySet


def visible_studies(user) -> QuerySet:
    from archive.models import Study

    if user.is_authenticated and user.is_active and user.is_superuser:
        return Study.objects.all()
    return Study.objects.none()


def can_view_study(user, study) -> bool:
    return visible_studies(user).filter(pk=study.pk).exists()
