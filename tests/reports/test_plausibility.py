"""Implausible inputs are flagged with a likely cause, never silently used."""

from __future__ import annotations

import pytest

from reports.plausibility import check_growth, check_measurement


def codes(flags):
    return [f.code for f in flags]


@pytest.mark.parametrize(
    ("age_days", "sex", "height", "weight"),
    [
        (2, "F", 50, 3.4),  # term newborn
        (3, "M", 33, 0.7),  # extremely preterm infant in the NICU
        (200, "M", 68, 8.0),  # 6-7 months
        (4 * 365, "F", 105, 17),  # 4 years
        (15 * 365, "M", 175, 68),  # adolescent
        (None, None, None, None),  # nothing known: nothing to flag
    ],
)
def test_plausible_children_raise_no_flag(age_days, sex, height, weight):
    assert check_growth(age_days, sex, height, weight) == []


def test_weight_in_grams():
    flags = check_growth(5, "F", 50, 3500)
    assert codes(flags) == ["weight_grams"]
    assert "grams" in flags[0].message and flags[0].field == "weight_kg"


def test_weight_in_pounds():
    # 18 months, 40 lb typed as kg: 40 kg is above the 1-2 year bound of 22 kg, and
    # 40 × 0.45359237 = 18.1 kg is inside it
    flags = check_growth(540, "M", 82, 40)
    assert codes(flags) == ["weight_pounds"]


def test_height_in_metres():
    flags = check_growth(4 * 365, "F", 1.05, 17)
    assert codes(flags) == ["height_metres"]
    assert "metres" in flags[0].message


def test_implausible_height_without_a_known_cause():
    flags = check_growth(30, "M", 120, 4)
    assert codes(flags) == ["height_implausible"]
    assert "0-1 month" in flags[0].message


def test_height_and_weight_that_cannot_belong_together():
    # 12 years, 190 cm and 20 kg: each inside its wide bound, BMI 20 / 1.9² = 5.5 kg/m²
    flags = check_growth(12 * 365, "F", 190, 20)
    assert codes(flags) == ["bmi_implausible"]
    assert "5.5" in flags[0].message
    # the same BMI is possible in an extremely preterm newborn (28 cm, 0.45 kg: 5.7)
    assert check_growth(1, "F", 28, 0.45) == []


def test_invalid_age_sex_and_values():
    assert codes(check_growth(-1, "F", 50, 3)) == ["age_invalid"]
    assert codes(check_growth(10, "X", 50, 3)) == ["sex_invalid"]
    assert codes(check_growth(10, "F", 0, 3)) == ["height_invalid"]
    assert codes(check_growth(10, "F", 50, float("nan"))) == ["weight_invalid"]


def test_lvidd_of_38_entered_as_cm():
    flags = check_measurement("lv_edd", 38, "cm")
    assert codes(flags) == ["unit_mm_as_cm"]
    assert "38 cm" in flags[0].message and "entered in mm" in flags[0].message
    assert check_measurement("lv_edd", 3.8, "cm") == []
    assert check_measurement("lv_edd", 38, "mm") == []


def test_coronary_in_cm_typed_as_mm():
    # LMCA 0.3 cm is 3 mm; typed as 0.3 mm it is below any coronary artery
    assert codes(check_measurement("lmca", 0.3, "mm")) == ["unit_cm_as_mm"]
    assert check_measurement("lmca", 3.0, "mm") == []


def test_wrong_kind_of_unit_and_unknown_structure():
    assert codes(check_measurement("lv_edv", 60, "cm")) == ["unit_invalid"]
    assert codes(check_measurement("lv_edd", 3, "kg")) == ["unit_invalid"]
    assert codes(check_measurement("spleen", 9, "cm")) == ["structure_unknown"]
    assert codes(check_measurement("lv_edd", -3, "cm")) == ["value_invalid"]
    assert codes(check_measurement("lv_mass", 5000, "g")) == ["value_implausible"]
