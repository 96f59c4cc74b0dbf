"""BSA formulas against arithmetic done by hand from the published equations
(../shared/CLINICAL.md; Haycock 1978, Mosteller 1987, DuBois 1916)."""

from __future__ import annotations

import math

import pytest

from reports.bsa import Bsa, bsa


def test_haycock_is_the_default_and_named():
    # Haycock: 0.024265 · H^0.3964 · W^0.5378, H = 110 cm, W = 18 kg (a 4-5 year old)
    # ln 110 = 4.700480; × 0.3964 = 1.863270; e^1.863270 = 6.444779
    # ln 18  = 2.890372; × 0.5378 = 1.554442; e^1.554442 = 4.732445
    # 0.024265 × 6.444779 × 4.732445 = 0.740072 m²
    result = bsa(110, 18)
    assert result == Bsa(pytest.approx(0.740072, abs=5e-6), "Haycock")
    assert result.formula_name == "Haycock"


def test_haycock_newborn():
    # H = 50 cm, W = 3.5 kg: 50^0.3964 = e^(0.3964 × 3.912023) = e^1.550726 = 4.714892
    # 3.5^0.5378 = e^(0.5378 × 1.252763) = e^0.673736 = 1.961552
    # 0.024265 × 4.714892 × 1.961552 = 0.224415 m²
    assert bsa(50, 3.5, "haycock").value_m2 == pytest.approx(0.224415, abs=5e-6)


def test_mosteller_exact_squares():
    # Mosteller: √(H · W / 3600). 144 × 25 = 3600 -> √1 = 1; 180 × 80 = 14400 -> √4 = 2
    assert bsa(144, 25, "mosteller") == Bsa(1.0, "Mosteller")
    assert bsa(180, 80, "Mosteller").value_m2 == pytest.approx(2.0)


def test_dubois():
    # DuBois: 0.007184 · H^0.725 · W^0.425, H = 180, W = 80
    # 180^0.725 = e^(0.725 × 5.192957) = e^3.764894 = 43.159119
    # 80^0.425  = e^(0.425 × 4.382027) = e^1.862361 = 6.438923
    # 0.007184 × 43.159119 × 6.438923 = 1.996421 m²
    result = bsa(180, 80, "dubois")
    assert result.formula_name == "DuBois"
    assert result.value_m2 == pytest.approx(1.996421, abs=5e-6)


def test_formulas_disagree_in_infants_which_is_why_the_name_is_stored():
    # Newborn 50 cm / 3.5 kg: Haycock 0.2244, Mosteller √(175/3600) = 0.2205, DuBois 0.2086
    values = {f: bsa(50, 3.5, f).value_m2 for f in ("haycock", "mosteller", "dubois")}
    assert values["mosteller"] == pytest.approx(math.sqrt(175 / 3600))
    assert values["dubois"] == pytest.approx(0.208616, abs=5e-6)
    assert len({round(v, 3) for v in values.values()}) == 3


@pytest.mark.parametrize(
    ("height", "weight", "fragment"),
    [
        (0, 10, "height must be a positive"),
        (-5, 10, "height must be a positive"),
        (100, 0, "weight must be a positive"),
        (float("nan"), 10, "height must be a positive"),
        (100, float("inf"), "weight must be a positive"),
        (251, 70, "height 251 cm is implausible"),
        (170, 301, "weight 301 kg is implausible"),
        ("170", 70, "height must be a number"),
        (True, 70, "height must be a number"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(height, weight, fragment):
    with pytest.raises(ValueError, match=fragment):
        bsa(height, weight)


def test_unknown_formula_lists_the_valid_ones():
    with pytest.raises(ValueError, match="haycock, mosteller, dubois"):
        bsa(100, 15, "boyd")


def test_str_names_the_formula():
    assert str(bsa(144, 25, "mosteller")) == "1.00 m² (Mosteller)"
