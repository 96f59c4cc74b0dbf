"""Finding one study for a page: through the access policy, with unknown and invisible
answering the same 404 and the attempt on the audit trail."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from accounts.policy import visible_studies
from audit.models import Action, Outcome
from audit.services import record

from .models import Study


def visible_study_or_404(
    request: HttpRequest, study_uid: str, page: str, queryset: QuerySet | None = None
) -> Study:
    """The study if the user may see it; else Http404 (a guessed UID tells nothing)."""
    visible = queryset if queryset is not None else visible_studies(request.user)
    study = (
        visible.select_related(
            "organization", "patient_record__person", "patient_record__organization"
        )
        .filter(study_instance_uid=study_uid)
        .first()
    )
    if study is None:
        record(
            request,
            Action.ACCESS_DENIED,
            Outcome.DENIED,
            object_type="study",
            object_id=study_uid[:64],
            detail={"page": page},
        )
        raise Http404("No such study")
    return study


def priors_of(study: Study, visible: QuerySet) -> list[Study]:
    """The same enterprise person's other studies among `visible` (what the user may see),
    newest first: the priors every page that shows a study lists."""
    person = study.person_id  # the record's person, as the filter below reads it
    if person is None:
        return []
    return list(
        visible.filter(person_id=person)
        .exclude(pk=study.pk)
        .select_related("organization", "patient_record__organization")
        .order_by("-study_date", "-last_received_at")
    )
