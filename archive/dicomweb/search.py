"""QIDO-RS searches: a parsed Query run over the studies the access policy lets a user see.

Three queries per search whatever the page size: the matching rows (with their study and
patient record joined) and, for the page only, the related series and instance counts.
"""

from __future__ import annotations

from django.db.models import Count, QuerySet

from archive.models import Instance, Series, Study
from identity.models import enterprise_id_for

from .attributes import Level, as_json, value_of
from .query import Query

TAG_RETRIEVE_URL = "00081190"
TAG_AVAILABILITY = "00080056"
TAG_STUDY_SERIES = "00201206"
TAG_STUDY_INSTANCES = "00201208"
TAG_SERIES_INSTANCES = "00201209"
TAG_OTHER_PATIENT_IDS = "00101002"
ENTERPRISE_ISSUER = "READINGROOM"


def study_url(base: str, study: Study) -> str:
    return f"{base}/studies/{study.study_instance_uid}"


def series_url(base: str, series: Series) -> str:
    return f"{study_url(base, series.study)}/series/{series.series_instance_uid}"


def instance_url(base: str, instance: Instance) -> str:
    return f"{series_url(base, instance.series)}/instances/{instance.sop_instance_uid}"


def search_studies(visible: QuerySet, query: Query, base: str) -> list[dict]:
    rows = list(
        query.apply(visible)
        .select_related("patient_record")
        .order_by("-study_date", "-study_time", "-id")[query.offset : query.offset + query.limit]
    )
    ids = [s.pk for s in rows]
    series = _counts(Series.objects.filter(study_id__in=ids), "study_id")
    instances = _counts(Instance.objects.filter(series__study_id__in=ids), "series__study_id")
    results = []
    for study in rows:
        item = _attributes(query, {Level.STUDY: study})
        item[TAG_STUDY_SERIES] = {"vr": "IS", "Value": [series.get(study.pk, 0)]}
        item[TAG_STUDY_INSTANCES] = {"vr": "IS", "Value": [instances.get(study.pk, 0)]}
        item[TAG_RETRIEVE_URL] = {"vr": "UR", "Value": [study_url(base, study)]}
        if study.patient_record.person_id:
            item[TAG_OTHER_PATIENT_IDS] = _enterprise_identity(study.patient_record.person_id)
        results.append(_sorted(item))
    return results


def _enterprise_identity(person_id: int) -> dict:
    """The child's enterprise identity beside the sending hospital's own PatientID, which stays
    as it was received: Other Patient IDs Sequence with ReadingRoom as the issuer."""
    item = {
        "00100020": {"vr": "LO", "Value": [enterprise_id_for(person_id)]},
        "00100021": {"vr": "LO", "Value": [ENTERPRISE_ISSUER]},
        "00100022": {"vr": "CS", "Value": ["TEXT"]},
    }
    return {"vr": "SQ", "Value": [item]}


def search_series(visible: QuerySet, query: Query, base: str, study_uid: str | None) -> list[dict]:
    matches = Series.objects.filter(study__in=visible)
    if study_uid is not None:
        matches = matches.filter(study__study_instance_uid=study_uid)
    rows = list(
        query.apply(matches)
        .select_related("study__patient_record")
        .order_by("study_id", "series_number", "id")[query.offset : query.offset + query.limit]
    )
    counts = _counts(Instance.objects.filter(series_id__in=[s.pk for s in rows]), "series_id")
    results = []
    for series in rows:
        item = _attributes(query, {Level.STUDY: series.study, Level.SERIES: series})
        item[TAG_SERIES_INSTANCES] = {"vr": "IS", "Value": [counts.get(series.pk, 0)]}
        item[TAG_RETRIEVE_URL] = {"vr": "UR", "Value": [series_url(base, series)]}
        results.append(_sorted(item))
    return results


def search_instances(
    visible: QuerySet,
    query: Query,
    base: str,
    study_uid: str | None,
    series_uid: str | None,
) -> list[dict]:
    matches = Instance.objects.filter(series__study__in=visible)
    if study_uid is not None:
        matches = matches.filter(series__study__study_instance_uid=study_uid)
    if series_uid is not None:
        matches = matches.filter(series__series_instance_uid=series_uid)
    rows = query.apply(matches).select_related("series__study__patient_record")
    rows = rows.order_by("series__study_id", "series_id", "instance_number", "id")
    results = []
    for instance in rows[query.offset : query.offset + query.limit]:
        levels = {
            Level.STUDY: instance.series.study,
            Level.SERIES: instance.series,
            Level.INSTANCE: instance,
        }
        item = _attributes(query, levels)
        item[TAG_RETRIEVE_URL] = {"vr": "UR", "Value": [instance_url(base, instance)]}
        results.append(_sorted(item))
    return results


def _attributes(query: Query, rows: dict[Level, object]) -> dict:
    item = {TAG_AVAILABILITY: {"vr": "CS", "Value": ["ONLINE"]}}
    for attribute in query.include:
        item[attribute.tag] = as_json(attribute, value_of(attribute, rows[attribute.level]))
    return item


def _counts(queryset: QuerySet, group_by: str) -> dict[int, int]:
    return {
        row[group_by]: row["n"]
        for row in queryset.order_by().values(group_by).annotate(n=Count("id"))
    }


def _sorted(item: dict) -> dict:
    return dict(sorted(item.items()))
