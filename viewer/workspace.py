"""What the viewer page shows for one study: the stacks of the current study and the chosen
prior, the hanging protocol's layout, the overlays and the priors list.

Built from the archive index; the only file reads are one header per series (cached by
content hash) to learn a stack's orientation and cine rate. Per-image geometry for sync and
measurement comes later from `stack_geometry`, so the first image is not kept waiting.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlencode

import pydicom
from django.db.models import Prefetch, QuerySet
from django.urls import reverse

from archive.lookup import priors_of
from archive.models import Instance, Series, Study
from archive.storage import get_storage
from identity.ages import pediatric_age

from . import geometry, hanging
from .errors import RenderError
from .hanging_defaults import DEFAULTS
from .models import HangingProtocol
from .presets import presets_for
from .rendering import RenderParams, Window

ECG_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.9."
DOCUMENT_CLASS_PREFIXES = ("1.2.840.10008.5.1.4.1.1.104.", "1.2.840.10008.5.1.4.1.1.88.")
MAX_DESCRIBE_CACHE = 4096


def kind_of(instance: Instance) -> str:
    if instance.sop_class_uid.startswith(ECG_CLASS_PREFIX):
        return "ecg"
    if instance.sop_class_uid.startswith(DOCUMENT_CLASS_PREFIXES):
        return "document"
    return "image" if instance.number_of_frames else "other"


@functools.lru_cache(maxsize=MAX_DESCRIBE_CACHE)
def _describe_file(storage_key: str, sha256: str) -> dict[str, Any]:
    """Header description of a stored file. Keyed by content hash too: a replaced instance
    gets a new description."""
    path = get_storage().path(storage_key)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return geometry.describe_instance(ds)
    except RenderError as exc:
        return {"error": exc.message}
    except Exception as exc:  # a malformed header must not take the page down
        return {"error": f"unreadable header: {type(exc).__name__}"}


def describe(instance: Instance) -> dict[str, Any]:
    return _describe_file(instance.storage_key, instance.sha256)


def overlay(study: Study) -> dict[str, Any]:
    """The text overlays of a study. Plain values: the template and the page's JavaScript
    insert them as text, never as HTML."""
    record = study.patient_record
    return {
        "study_uid": study.study_instance_uid,
        "patient": record.display_name,
        "age": pediatric_age(record.birth_date, study.study_date),
        "sex": record.sex,
        "mrn": record.patient_id,
        "issuer": record.issuer_label,
        "study_date": study.study_date.isoformat() if study.study_date else "",
        "institution": study.institution_name or study.organization.name,
        "organization": study.organization.name,
        "description": study.study_description,
        "modalities": study.modality_list,
    }


def summary(study: Study) -> hanging.StudySummary:
    return hanging.StudySummary(
        id=study.pk,
        study_date=study.study_date,
        modalities=tuple(m.upper() for m in study.modality_list),
        body_parts=tuple(p.upper() for p in study.body_parts.split("\\") if p),
        description=study.study_description,
    )


def _series_of(study: Study) -> QuerySet:
    ordered = Instance.objects.order_by("instance_number", "pk")
    return (
        Series.objects.filter(study=study)
        .order_by("series_number", "pk")
        .prefetch_related(Prefetch("instances", queryset=ordered))
    )


def _stack(
    stack_id: str, source: str, study: Study, series: Series, kind: str, items: list[Instance]
) -> dict[str, Any]:
    head = describe(items[0]) if kind == "image" else {}
    frames = [
        [i.sop_instance_uid, n] for i in items for n in range(1, (i.number_of_frames or 1) + 1)
    ]
    return {
        "id": stack_id,
        "source": source,
        "kind": kind,
        "study_uid": study.study_instance_uid,
        "series_uid": series.series_instance_uid,
        "series_number": series.series_number,
        "modality": series.modality,
        "description": series.series_description,
        "frames": frames,
        "multiframe": kind == "image" and len(items) == 1 and (items[0].number_of_frames or 0) > 1,
        "orientation": hanging.orientation_of(head.get("orientation")),
        "frame_time_ms": head.get("frame_time_ms"),
        "columns": items[0].columns,
        "rows": items[0].rows,
    }


def stacks_of(study: Study, source: str) -> list[dict[str, Any]]:
    """Single-frame images of a series form one stack; each multi-frame object (a loop, an
    enhanced MR) is its own stack; each ECG and document is a stack of one."""
    stacks = []
    for series in _series_of(study):
        instances = list(series.instances.all())
        singles = [i for i in instances if kind_of(i) == "image" and i.number_of_frames == 1]
        if singles:
            stacks.append(_stack(f"{source}:{series.pk}", source, study, series, "image", singles))
        for instance in instances:
            kind = kind_of(instance)
            if kind == "other" or (kind == "image" and instance.number_of_frames == 1):
                continue
            stack_id = f"{source}:{series.pk}:{instance.pk}"
            stacks.append(_stack(stack_id, source, study, series, kind, [instance]))
    return stacks


def protocols() -> list[hanging.Protocol]:
    """The enabled protocols by priority. With no rows at all (never configured, or the
    shipped ones deleted) the shipped defaults apply, as data; once an admin keeps any row,
    the table alone decides."""
    rows = list(HangingProtocol.objects.filter(enabled=True).order_by("priority", "name"))
    if not rows and not HangingProtocol.objects.exists():
        rows = [HangingProtocol(**row) for row in DEFAULTS]
        rows.sort(key=lambda p: (p.priority, p.name))
    return [
        hanging.Protocol(
            name=p.name,
            modality=p.modality,
            body_part=p.body_part,
            description_contains=p.description_contains,
            rows=p.rows,
            columns=p.columns,
            viewports=p.viewports,
            compare_prior=p.compare_prior,
            autoplay=p.autoplay,
        )
        for p in rows
    ]


def workspace(study: Study, visible: QuerySet, prior_uid: str | None) -> dict[str, Any]:
    """Everything the page needs. `prior_uid` picks the prior to compare ("" for none);
    without it the most relevant prior opens when the protocol compares."""
    priors = priors_of(study, visible)
    protocol = hanging.choose_protocol(protocols(), summary(study))
    if prior_uid:
        prior = next((p for p in priors if p.study_instance_uid == prior_uid), None)
    elif prior_uid is None and protocol.compare_prior:
        best = hanging.relevant_prior(summary(study), [summary(p) for p in priors])
        prior = next((p for p in priors if best and p.pk == best.id), None)
    else:
        prior = None
    stacks = stacks_of(study, "current") + (stacks_of(prior, "prior") if prior else [])
    summaries = [
        hanging.StackSummary(
            id=s["id"],
            source=s["source"],
            modality=s["modality"],
            description=s["description"],
            orientation=s["orientation"],
            multiframe=s["multiframe"],
        )
        for s in stacks
        if s["kind"] != "other"
    ]
    layout = hanging.arrange(protocol, summaries, has_prior=prior is not None)
    keys = key_image_positions(study, stacks)
    if keys and layout["cells"]:
        # Key images first: the first viewport opens at the first key image.
        layout["cells"][0] = {**layout["cells"][0], "stack": keys[0][0], "index": keys[0][1]}
    modalities = {s["modality"] for s in stacks}
    return {
        "current": overlay(study),
        "prior": overlay(prior) if prior else None,
        "stacks": stacks,
        "layout": layout,
        "presets": {m: presets_for(m) for m in sorted(modalities) if m},
        "priors": [
            {
                "study_uid": p.study_instance_uid,
                "study_date": p.study_date.isoformat() if p.study_date else "",
                "modalities": p.modality_list,
                "description": p.study_description,
                "institution": p.institution_name or p.organization.name,
                "organization": p.organization.name,
                "open": prior is not None and p.pk == prior.pk,
            }
            for p in priors
        ],
    }


def key_image_positions(study: Study, stacks: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(stack id, frame index) of the study's key images, in the order they were marked."""
    from .models import KeyImage

    where = {
        (sop, frame): (s["id"], i)
        for s in stacks
        if s["source"] == "current"
        for i, (sop, frame) in enumerate(s["frames"])
    }
    marks = KeyImage.objects.filter(study=study).select_related("instance").order_by("created_at")
    found = [where.get((k.instance.sop_instance_uid, k.frame)) for k in marks]
    return [f for f in found if f]


def first_frame(data: dict[str, Any]) -> str | None:
    """The URL of the first viewport's first frame, exactly as the page's script will ask for
    it (same media type, same preset window, same parameter order), so the browser fetches it
    once, early, from the HTML itself."""
    by_id = {s["id"]: s for s in data["stacks"]}
    cell = data["layout"]["cells"][0] if data["layout"]["cells"] else {}
    stack = by_id.get(cell.get("stack"))
    if not stack or stack["kind"] != "image" or not stack["frames"]:
        return None
    sop, frame = stack["frames"][cell.get("index", 0)]
    params = {"accept": "image/jpeg" if stack["multiframe"] else "image/png"}
    preset = next(
        (p for p in data["presets"].get(stack["modality"], []) if p["key"] == cell.get("preset")),
        None,
    )
    if preset:
        params["window"] = f"{preset['center']:g},{preset['width']:g}"
    path = reverse(
        "dicomweb:frame-rendered",
        args=[stack["study_uid"], stack["series_uid"], sop, frame],
    )
    return f"{path}?{urlencode(params)}"


def viewer_params(stack: dict[str, Any], preset_key: str = "") -> RenderParams:
    """What the page's script asks for a stack's frames: JPEG for loops (their frames are
    usually stored as JPEG and pass through), lossless PNG for everything else, with the
    hanging protocol's preset window when it names one."""
    preset = next(
        (p for p in presets_for(stack["modality"]) if preset_key and p["key"] == preset_key), None
    )
    return RenderParams(
        window=Window(preset["center"], preset["width"]) if preset else None,
        media_type="image/jpeg" if stack["multiframe"] else "image/png",
    )


def first_frame_jobs(study: Study) -> list[tuple[Instance, int, RenderParams]]:
    """The first frame of every image stack, with the parameters the viewer will ask for,
    so pre-rendering at arrival fills exactly the cache entries the first look hits."""
    stacks = [s for s in stacks_of(study, "current") if s["kind"] == "image"]
    summaries = [
        hanging.StackSummary(s["id"], "current", s["modality"], s["description"], s["orientation"])
        for s in stacks
    ]
    layout = hanging.arrange(
        hanging.choose_protocol(protocols(), summary(study)), summaries, has_prior=False
    )
    presets = {cell["stack"]: cell["preset"] for cell in layout["cells"] if cell["stack"]}
    sops = {s["frames"][0][0] for s in stacks}
    instances = {i.sop_instance_uid: i for i in Instance.objects.filter(sop_instance_uid__in=sops)}
    return [
        (
            instances[s["frames"][0][0]],
            s["frames"][0][1],
            viewer_params(s, presets.get(s["id"], "")),
        )
        for s in stacks
        if s["frames"][0][0] in instances
    ]


def stack_geometry(series: Series) -> dict[str, Any]:
    """Header description of every instance of a series, for sync, overlays and calibration."""
    return {i.sop_instance_uid: describe(i) for i in series.instances.order_by("pk")}
