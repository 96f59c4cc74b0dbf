"""Hanging protocols and prior relevance: pure functions over plain summaries, so the rules
are data (HangingProtocol rows) and this logic is testable without a database.

A *stack* is what one viewport scrolls through: the single-frame images of a series in
instance order (a CT or MR series), or one multi-frame object (an echo loop, an enhanced MR).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

ORIENTATIONS = ("axial", "coronal", "sagittal", "oblique")
VIEWPORT_KEYS = {"source", "modality", "description_contains", "orientation", "preset", "index"}


@dataclass(frozen=True)
class StackSummary:
    id: str
    source: str  # "current" or "prior"
    modality: str
    description: str
    orientation: str = ""  # one of ORIENTATIONS, or "" when unknown
    multiframe: bool = False


@dataclass(frozen=True)
class StudySummary:
    id: int
    study_date: date | None
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Protocol:
    """The fields of a HangingProtocol row the arrangement needs."""

    name: str
    modality: str = ""
    body_part: str = ""
    description_contains: str = ""
    rows: int = 1
    columns: int = 1
    viewports: list[dict[str, Any]] = field(default_factory=list)
    compare_prior: bool = False
    autoplay: bool = False


FALLBACK = Protocol(name="Default: one viewport", compare_prior=True)


def validate_viewports(viewports: Any) -> None:
    """Raise ValueError with the reason when an admin's viewport list is malformed."""
    if not isinstance(viewports, list):
        raise ValueError("viewports must be a list of objects")
    for n, spec in enumerate(viewports, start=1):
        if not isinstance(spec, dict):
            raise ValueError(f"viewport {n} must be an object")
        unknown = set(spec) - VIEWPORT_KEYS
        if unknown:
            raise ValueError(f"viewport {n}: unknown keys {', '.join(sorted(unknown))}")
        if spec.get("source", "current") not in ("current", "prior"):
            raise ValueError(f"viewport {n}: source is 'current' or 'prior'")
        if spec.get("orientation", "axial") not in ORIENTATIONS:
            raise ValueError(f"viewport {n}: orientation is one of {', '.join(ORIENTATIONS)}")
        if not isinstance(spec.get("index", 0), int) or spec.get("index", 0) < 0:
            raise ValueError(f"viewport {n}: index is a whole number >= 0")


def matches(protocol: Protocol, study: StudySummary) -> bool:
    if protocol.modality and protocol.modality.upper() not in study.modalities:
        return False
    if protocol.body_part and protocol.body_part.upper() not in study.body_parts:
        return False
    wanted = protocol.description_contains.lower()
    return not wanted or wanted in study.description.lower()


def choose_protocol(protocols: list[Protocol], study: StudySummary) -> Protocol:
    """The first matching protocol in priority order (the caller passes them sorted)."""
    return next((p for p in protocols if matches(p, study)), FALLBACK)


def relevant_prior(current: StudySummary, priors: list[StudySummary]) -> StudySummary | None:
    """Same modality (required) and body part (preferred), most recent first. A prior of
    another modality is listed for the reader but not opened by default: comparing a CT with
    an ultrasound is the reader's choice, not the system's."""
    scored = []
    for prior in priors:
        if not set(prior.modalities) & set(current.modalities):
            continue
        same_part = bool(set(prior.body_parts) & set(current.body_parts))
        scored.append((same_part, prior.study_date or date.min, prior.id, prior))
    if not scored:
        return None
    return max(scored, key=lambda item: item[:3])[3]


def _fits(spec: dict[str, Any], stack: StackSummary) -> bool:
    if spec.get("source", "current") != stack.source:
        return False
    if spec.get("modality") and spec["modality"].upper() != stack.modality.upper():
        return False
    wanted = str(spec.get("description_contains", "")).lower()
    if wanted and wanted not in stack.description.lower():
        return False
    return not spec.get("orientation") or spec["orientation"] == stack.orientation


def arrange(protocol: Protocol, stacks: list[StackSummary], has_prior: bool) -> dict[str, Any]:
    """Which stack each viewport shows: {"rows", "columns", "autoplay", "cells": [...]}.

    Viewports named by the protocol are filled first; the rest take the next stacks not yet
    shown (current study first). With `compare_prior` and a prior open, a one-viewport
    protocol becomes current-left, prior-right.
    """
    rows, columns = protocol.rows, protocol.columns
    specs = list(protocol.viewports)
    if protocol.compare_prior and has_prior and rows * columns == 1:
        columns = 2
        if not any(spec.get("source") == "prior" for spec in specs):
            specs = (specs or [{"source": "current"}])[:1] + [{"source": "prior"}]
    cells: list[dict[str, Any]] = []
    used: set[str] = set()
    for spec in specs[: rows * columns]:
        fitting = [s for s in stacks if _fits(spec, s)]
        if "index" in spec:  # the n-th fitting stack, unless another viewport took it
            index = spec["index"]
            stack = fitting[index] if index < len(fitting) else None
            stack = None if stack is None or stack.id in used else stack
        else:
            stack = next((s for s in fitting if s.id not in used), None)
        if stack is None and spec.get("source") == "prior":
            stack = next((s for s in stacks if s.source == "prior" and s.id not in used), None)
        if stack is not None:
            used.add(stack.id)
        cells.append({"stack": stack.id if stack else None, "preset": spec.get("preset", "")})
    ordered = [s for s in stacks if s.source == "current"] + [
        s for s in stacks if s.source == "prior"
    ]
    spare = iter(s for s in ordered if s.id not in used)
    for cell in cells:
        if cell["stack"] is None:
            cell["stack"] = next((s.id for s in spare), None)
    while len(cells) < rows * columns:
        nxt = next(spare, None)
        cells.append({"stack": nxt.id if nxt else None, "preset": ""})
    return {
        "protocol": protocol.name,
        "rows": rows,
        "columns": columns,
        "autoplay": protocol.autoplay,
        "cells": cells,
    }


def orientation_of(iop: list[float] | None) -> str:
    """Axial, coronal or sagittal by the slice normal's dominant axis (within ~30 degrees),
    else oblique; "" when the orientation is unknown."""
    if not iop or len(iop) != 6:
        return ""
    r, c = iop[:3], iop[3:]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    size = sum(v * v for v in normal) ** 0.5
    if size == 0:
        return ""
    axis = max(range(3), key=lambda i: abs(normal[i]))
    if abs(normal[axis]) / size < 0.866:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]
