"""The hanging protocols ReadingRoom ships. Installed by a migration and by the demo; admins
edit or disable them, and rows they add win by priority."""

from __future__ import annotations

DEFAULTS = [
    {
        "name": "Echo / US: 2x2 loops",
        "modality": "US",
        "priority": 10,
        "rows": 2,
        "columns": 2,
        "viewports": [],
        "compare_prior": False,
        "autoplay": True,
    },
    {
        "name": "XA: loops",
        "modality": "XA",
        "priority": 11,
        "rows": 1,
        "columns": 2,
        "viewports": [],
        "compare_prior": False,
        "autoplay": True,
    },
    {
        "name": "Radiograph: current and latest prior",
        "modality": "CR",
        "priority": 20,
        "rows": 1,
        "columns": 2,
        "viewports": [{"source": "current"}, {"source": "prior"}],
        "compare_prior": True,
        "autoplay": False,
    },
    {
        "name": "Digital radiograph: current and latest prior",
        "modality": "DX",
        "priority": 21,
        "rows": 1,
        "columns": 2,
        "viewports": [{"source": "current"}, {"source": "prior"}],
        "compare_prior": True,
        "autoplay": False,
    },
    {
        "name": "CT: axial soft tissue main",
        "modality": "CT",
        "priority": 30,
        "rows": 1,
        "columns": 1,
        "viewports": [{"source": "current", "orientation": "axial", "preset": "1"}],
        "compare_prior": True,
        "autoplay": False,
    },
    {
        "name": "MR: current and relevant prior",
        "modality": "MR",
        "priority": 40,
        "rows": 1,
        "columns": 1,
        "viewports": [{"source": "current"}],
        "compare_prior": True,
        "autoplay": False,
    },
    {
        "name": "ECG: 12-lead",
        "modality": "ECG",
        "priority": 50,
        "rows": 1,
        "columns": 1,
        "viewports": [],
        "compare_prior": False,
        "autoplay": False,
    },
]


def install_defaults(model) -> int:
    """Create the shipped protocols that are missing (by name); never overwrite an admin's
    edits. `model` is HangingProtocol (or its historical version in a migration)."""
    created = 0
    for row in DEFAULTS:
        _, new = model.objects.get_or_create(name=row["name"], defaults=row)
        created += new
    return created
