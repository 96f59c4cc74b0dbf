"""Hanging protocols as data: which protocol wins, which prior is relevant, where each stack
hangs, and which admin input is refused."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from viewer.hanging import (
    FALLBACK,
    Protocol,
    StackSummary,
    StudySummary,
    arrange,
    choose_protocol,
    orientation_of,
    relevant_prior,
    validate_viewports,
)
from viewer.hanging_defaults import DEFAULTS, install_defaults
from viewer.models import HangingProtocol

SHIPPED = [Protocol(**{k: v for k, v in row.items() if k != "priority"}) for row in DEFAULTS]


def study(pk, modalities, day=None, parts=(), description=""):
    return StudySummary(pk, day, tuple(modalities), tuple(parts), description)


@pytest.mark.parametrize(
    ("modalities", "expected"),
    [
        (("US", "SR"), "Echo / US: 2x2 loops"),
        (("CR",), "Radiograph: current and latest prior"),
        (("CT",), "CT: axial soft tissue main"),
        (("ECG", "DOC"), "ECG: 12-lead"),
        (("NM",), FALLBACK.name),
    ],
)
def test_shipped_protocols_by_modality(modalities, expected):
    assert choose_protocol(SHIPPED, study(1, modalities)).name == expected


def test_description_and_body_part_narrow_a_protocol():
    cardiac = Protocol("Cardiac CT", modality="CT", description_contains="cardiac", rows=2)
    chest = Protocol("Chest CT", modality="CT", body_part="CHEST")
    rules = [cardiac, chest, *SHIPPED]
    assert choose_protocol(rules, study(1, ["CT"], description="CT CARDIAC W")) is cardiac
    assert choose_protocol(rules, study(1, ["CT"], parts=["CHEST"])) is chest
    assert choose_protocol(rules, study(1, ["CT"], parts=["HEAD"])).name.startswith("CT: axial")


def test_relevant_prior_same_modality_then_body_part_then_newest():
    current = study(1, ["CT"], date(2026, 11, 1), ["HEAD"])
    priors = [
        study(2, ["MR"], date(2026, 10, 30), ["HEAD"]),  # other modality: never by default
        study(3, ["CT"], date(2026, 9, 1), ["CHEST"]),
        study(4, ["CT"], date(2025, 1, 1), ["HEAD"]),
        study(5, ["CT"], date(2026, 3, 1), ["HEAD"]),
    ]
    assert relevant_prior(current, priors).id == 5
    assert relevant_prior(current, priors[:3]).id == 4
    assert relevant_prior(current, priors[:2]).id == 3
    assert relevant_prior(current, priors[:1]) is None


def test_compare_layout_current_left_prior_right():
    stacks = [
        StackSummary("c1", "current", "CT", "AX", "axial"),
        StackSummary("c2", "current", "CT", "COR", "coronal"),
        StackSummary("p1", "prior", "CT", "AX", "axial"),
    ]
    ct = next(p for p in SHIPPED if p.modality == "CT")
    layout = arrange(ct, stacks, has_prior=True)
    assert (layout["rows"], layout["columns"]) == (1, 2)
    assert [c["stack"] for c in layout["cells"]] == ["c1", "p1"]
    assert layout["cells"][0]["preset"] == "1"
    alone = arrange(ct, stacks[:2], has_prior=False)
    assert [c["stack"] for c in alone["cells"]] == ["c1"]


def test_axial_rule_skips_a_coronal_first_series():
    stacks = [
        StackSummary("c1", "current", "CT", "COR", "coronal"),
        StackSummary("c2", "current", "CT", "AX", "axial"),
    ]
    ct = next(p for p in SHIPPED if p.modality == "CT")
    assert arrange(ct, stacks, has_prior=False)["cells"][0]["stack"] == "c2"


def test_echo_grid_fills_with_loops_and_leaves_empty_cells_empty():
    loops = [StackSummary(f"l{i}", "current", "US", "", "", True) for i in range(3)]
    echo = next(p for p in SHIPPED if p.modality == "US")
    layout = arrange(echo, loops, has_prior=False)
    assert layout["autoplay"] is True
    assert [c["stack"] for c in layout["cells"]] == ["l0", "l1", "l2", None]


@pytest.mark.parametrize(
    ("iop", "expected"),
    [
        ([1, 0, 0, 0, 1, 0], "axial"),
        ([1, 0, 0, 0, 0, -1], "coronal"),
        ([0, 1, 0, 0, 0, -1], "sagittal"),
        ([1, 0, 0, 0, 0.7071, 0.7071], "oblique"),
        (None, ""),
        ([0, 0, 0, 0, 0, 0], ""),
    ],
)
def test_orientation_of(iop, expected):
    assert orientation_of(iop) == expected


@pytest.mark.parametrize(
    ("viewports", "reason"),
    [
        ({"source": "current"}, "must be a list"),
        (["CT"], "must be an object"),
        ([{"sauce": "current"}], "unknown keys sauce"),
        ([{"source": "yesterday"}], "source is"),
        ([{"orientation": "diagonal"}], "orientation is one of"),
        ([{"index": -1}], "index is a whole number"),
    ],
)
def test_malformed_viewports_are_refused(viewports, reason):
    with pytest.raises(ValueError, match=reason):
        validate_viewports(viewports)


def test_admin_validation_of_a_protocol_row(db):
    row = HangingProtocol(name="bad", viewports=[{"source": "yesterday"}])
    with pytest.raises(ValidationError) as info:
        row.full_clean()
    assert "source is" in str(info.value)


def test_shipped_protocols_install_once_and_keep_admin_edits(db):
    HangingProtocol.objects.all().delete()
    assert install_defaults(HangingProtocol) == len(DEFAULTS)
    HangingProtocol.objects.filter(modality="CT").update(rows=2, enabled=False)
    assert install_defaults(HangingProtocol) == 0
    assert HangingProtocol.objects.get(modality="CT").rows == 2


def test_empty_table_means_shipped_defaults_any_row_means_the_table(db):
    from viewer.workspace import protocols

    HangingProtocol.objects.all().delete()
    assert [p.name for p in protocols()][0] == "Echo / US: 2x2 loops"
    HangingProtocol.objects.create(name="Only mine", modality="MR")
    assert [p.name for p in protocols()] == ["Only mine"]
