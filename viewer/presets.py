"""Window/level presets per modality, as data the viewer page loads (keys 1-5 select them).

Values in modality units (HU for CT), from ../shared/CLINICAL.md "Display and viewing": soft
tissue 400/40, lung 1500/-600, bone 2500/480, brain 80/40, subdural 200/75. A well-known web
viewer once shipped bone and brain swapped and lung at width 150, so tests pin every value.
Modalities without presets get [] and the viewer falls back to the header window.
"""

from __future__ import annotations

from typing import TypedDict


class Preset(TypedDict):
    key: str
    name: str
    center: float
    width: float


PRESETS: dict[str, tuple[Preset, ...]] = {
    "CT": (
        {"key": "1", "name": "Soft tissue", "center": 40, "width": 400},
        {"key": "2", "name": "Lung", "center": -600, "width": 1500},
        {"key": "3", "name": "Bone", "center": 480, "width": 2500},
        {"key": "4", "name": "Brain", "center": 40, "width": 80},
        {"key": "5", "name": "Subdural", "center": 75, "width": 200},
    ),
}


def presets_for(modality: str | None) -> list[dict]:
    """Fresh copies of the presets for `modality` (case and spaces ignored), [] when none, so
    a caller that edits the list cannot change the table for the next request."""
    key = str(modality or "").strip().upper()
    return [dict(preset) for preset in PRESETS.get(key, ())]
