"""Echo z-scores hand-computed from the published equations (../shared/CLINICAL.md).

PHN (Lopez 2017; table on pediatricheartnetwork.org): z = (X / BSA^α − mean) / SD.
Detroit (Pettersen 2008): z = (ln X − (b0 + b1·B + b2·B² + b3·B³)) / √MSE.
Boston (Colan 2006): z = (X − k·√B) / (a + b·B).
BSAs are chosen so that BSA^α is a round number and the arithmetic can be checked by eye.
"""

from __future__ import annotations

import pytest

from reports.bsa import bsa
from reports.zscores import MODELS, severity, structures, zscore


def test_phn_lv_edd_at_bsa_1():
    # α = 0.45, mean 3.89, SD 0.33; BSA 1 -> BSA^α = 1; X = 4.55: (4.55 − 3.89) / 0.33 = 2.0
    score = zscore("PHN", "lv_edd", 4.55, 1.0)
    assert score.z == pytest.approx(2.0)
    assert score.model_name == "PHN"
    assert "Lopez" in score.citation and "2017" in score.citation
    assert score.unit == "cm"
    assert score.predicted_mean == pytest.approx(3.89)
    assert (score.lower_2sd, score.upper_2sd) == (pytest.approx(3.23), pytest.approx(4.55))
    assert score.severity == "mild"
    assert score.abnormal is True


def test_phn_lv_edd_range_scales_with_bsa():
    # BSA 0.25: 0.25^0.45 = e^(0.45 × ln 0.25) = e^−0.623832 = 0.535887
    # mean 3.89 × 0.535887 = 2.084599; ±2 SD (3.89 ∓ 0.66) × 0.535887 = 1.730914 .. 2.438285
    score = zscore("PHN", "lv_edd", 2.084599, 0.25)
    assert score.z == pytest.approx(0.0, abs=1e-5)
    assert score.predicted_mean == pytest.approx(2.084599, abs=1e-6)
    assert score.lower_2sd == pytest.approx(1.730914, abs=1e-6)
    assert score.upper_2sd == pytest.approx(2.438285, abs=1e-6)
    assert score.severity == "normal" and score.abnormal is False


def test_phn_aortic_annulus_moderate():
    # α = 0.5, mean 1.48, SD 0.14; BSA 0.25 -> √0.25 = 0.5; X = 0.95 -> 0.95 / 0.5 = 1.90
    # (1.90 − 1.48) / 0.14 = 3.0 -> moderate (3-4)
    score = zscore("PHN", "aortic_annulus", 0.95, 0.25)
    assert score.z == pytest.approx(3.0)
    assert score.severity == "moderate"


def test_phn_mpa_small():
    # α = 0.5, mean 1.82, SD 0.24; BSA 0.25; X = 0.61 -> 1.22; (1.22 − 1.82) / 0.24 = −2.5
    score = zscore("PHN", "mpa", 0.61, 0.25)
    assert score.z == pytest.approx(-2.5)
    assert score.severity == "mild" and score.abnormal is True
    assert score.z_text == "z -2.50 (PHN)"


def test_phn_coronary_in_mm():
    # LMCA: α = 0.45, mean 2.95 mm, SD 0.57; BSA 1; X = 2.95 + 1.7 × 0.57 = 3.919 mm -> z 1.7
    score = zscore("PHN", "lmca", 3.919, 1.0)
    assert score.unit == "mm"
    assert score.z == pytest.approx(1.7)
    assert score.severity == "borderline" and score.abnormal is False


def test_phn_lv_mass_severe():
    # α = 1.25, mean 53.02 g, SD 9.06; BSA = 2^0.8 = 1.741101 -> BSA^1.25 = 2
    # X = 2 × (53.02 + 4 × 9.06) = 2 × 89.26 = 178.52 g -> z = 4.0 -> severe
    score = zscore("PHN", "lv_mass", 178.52, 2**0.8)
    assert score.unit == "g"
    assert score.z == pytest.approx(4.0)
    assert score.severity == "severe"


def test_phn_wall_thickness():
    # LVPW: α = 0.40, mean 0.57, SD 0.09; BSA = 0.5^2.5 = 0.176777 -> BSA^0.4 = 0.5
    # X = 0.5 × (0.57 − 0.09) = 0.24 -> z = −1.0
    assert zscore("PHN", "lvpw_d", 0.24, 0.5**2.5).z == pytest.approx(-1.0)


def test_detroit_lv_edd_at_bsa_1():
    # B = 1: expected = 0.105 + 2.859 − 2.119 + 0.552 = 1.397; √MSE = √0.010 = 0.1
    # predicted e^1.397 = 4.043053 cm; X = e^1.597 = 4.938196 -> z = (1.597 − 1.397) / 0.1 = 2
    # range e^(1.397 ± 0.2) = 3.310171 .. 4.938196
    score = zscore("Detroit", "lv_edd", 4.938196, 1.0)
    assert score.z == pytest.approx(2.0, abs=1e-5)
    assert score.predicted_mean == pytest.approx(4.043053, abs=1e-6)
    assert score.lower_2sd == pytest.approx(3.310171, abs=1e-6)
    assert score.upper_2sd == pytest.approx(4.938196, abs=1e-6)
    assert score.model_name == "Detroit" and "Pettersen" in score.citation
    assert score.out_of_range_note is None


def test_detroit_mpa_borderline():
    # B = 0.5: −0.707 + 2.746 × 0.5 − 1.807 × 0.25 + 0.424 × 0.125
    #        = −0.707 + 1.373 − 0.45175 + 0.053 = 0.26725
    # X = 1 cm -> ln 1 = 0; √0.024 = 0.154919; z = −0.26725 / 0.154919 = −1.725091
    score = zscore("Detroit", "mpa", 1.0, 0.5)
    assert score.z == pytest.approx(-1.725091, abs=1e-6)
    assert score.severity == "borderline"


def test_detroit_carries_the_bsa_formula_caveat():
    score = zscore("Detroit", "lv_edd", 3.0, bsa(110, 18))
    assert "not verified" in score.bsa_note and "Haycock" in score.bsa_note


def test_detroit_bsa_above_2_is_flagged_not_silently_extrapolated():
    score = zscore("Detroit", "lv_edd", 5.0, 2.1)
    assert score.out_of_range_note is not None
    assert "BSA ≤ 2" in score.out_of_range_note and "extrapolated" in score.out_of_range_note
    assert zscore("Detroit", "lv_edd", 5.0, 2.0).out_of_range_note is None
    assert zscore("PHN", "lv_edd", 5.0, 2.1).out_of_range_note is None


def test_boston_annulus():
    # B = 1: mean 1.55 × 1 = 1.55; SD 0.06 + 0.083 = 0.143; X = 1.836 -> 0.286 / 0.143 = 2.0
    score = zscore("Boston", "aortic_annulus", 1.836, 1.0)
    assert score.z == pytest.approx(2.0)
    assert (score.lower_2sd, score.upper_2sd) == (pytest.approx(1.264), pytest.approx(1.836))
    # B = 0.25: mean 1.55 × 0.5 = 0.775; SD 0.06 + 0.083 × 0.25 = 0.08075
    score = zscore("boston", "aortic_annulus", 0.775 + 0.08075, 0.25)
    assert score.z == pytest.approx(1.0)
    assert score.predicted_mean == pytest.approx(0.775)
    assert "Colan" in score.citation


def test_boston_sinus():
    # B = 1: mean 2.02, SD 0.098 + 0.12 = 0.218; X = 2.02 − 3 × 0.218 = 1.366 -> z −3
    score = zscore("Boston", "aortic_root", 1.366, 1.0)
    assert score.z == pytest.approx(-3.0)
    assert score.severity == "moderate"


def test_same_child_different_models_give_different_z():
    # The reason every z-score names its model: aortic annulus 1.6 cm at BSA 1.0
    phn = zscore("PHN", "aortic_annulus", 1.6, 1.0).z  # (1.6 − 1.48) / 0.14 = 0.857143
    boston = zscore("Boston", "aortic_annulus", 1.6, 1.0).z  # 0.05 / 0.143 = 0.349650
    assert phn == pytest.approx(0.857143, abs=1e-6)
    assert boston == pytest.approx(0.349650, abs=1e-6)


@pytest.mark.parametrize(
    ("z", "band"),
    [
        (0.0, "normal"),
        (1.64, "normal"),
        (-1.649, "normal"),
        (1.65, "borderline"),
        (-1.95, "borderline"),
        (1.96, "mild"),
        (-2.99, "mild"),
        (3.0, "moderate"),
        (-3.99, "moderate"),
        (4.0, "severe"),
        (-7.5, "severe"),
    ],
)
def test_severity_bands(z, band):
    assert severity(z) == band


def test_abnormal_is_at_2_while_mild_starts_at_1_96():
    # PHN annulus, BSA 1: X = 1.48 + 1.98 × 0.14 = 1.7572 -> z 1.98: mild, not abnormal
    score = zscore("PHN", "aortic_annulus", 1.7572, 1.0)
    assert score.z == pytest.approx(1.98)
    assert score.severity == "mild" and score.abnormal is False


def test_structures_have_units():
    phn = {s.key: s.unit for s in structures("PHN")}
    assert phn["lv_edd"] == "cm" and phn["rca"] == "mm"
    assert phn["lv_edv"] == "mL" and phn["lv_mass"] == "g"
    assert [s.key for s in structures("Boston")] == ["aortic_annulus", "aortic_root"]
    assert {s.key for s in structures("Detroit")} == {
        "lv_edd",
        "lv_esd",
        "ivs_d",
        "lvpw_d",
        "aortic_annulus",
        "mpa",
    }
    assert set(MODELS) == {"PHN", "Detroit", "Boston"}


def test_bsa_formula_mismatch_is_noted():
    score = zscore("PHN", "lv_edd", 3.0, bsa(110, 18, "mosteller"))
    assert score.bsa_note == "PHN equations use Haycock BSA; Mosteller BSA given"
    assert zscore("PHN", "lv_edd", 3.0, bsa(110, 18)).bsa_note is None


def test_unknown_model_and_structure_list_the_valid_keys():
    with pytest.raises(ValueError, match="valid: PHN, Detroit, Boston"):
        zscore("Italy", "lv_edd", 3.0, 1.0)
    with pytest.raises(ValueError, match="valid: aortic_annulus, aortic_root"):
        zscore("Boston", "lv_edd", 3.0, 1.0)
    with pytest.raises(ValueError, match="unknown z-score model"):
        structures("nope")


@pytest.mark.parametrize(
    ("value", "bsa_m2", "fragment"),
    [
        (0, 1.0, "positive"),
        (-3, 1.0, "positive"),
        (float("nan"), 1.0, "positive"),
        ("3.1", 1.0, "must be a number"),
        (3.0, 0, "BSA"),
        (3.0, float("nan"), "BSA"),
        (3.0, 6.0, "BSA 6 m² is implausible"),
    ],
)
def test_bad_values_raise(value, bsa_m2, fragment):
    with pytest.raises(ValueError, match=fragment):
        zscore("PHN", "lv_edd", value, bsa_m2)


def test_texts_for_the_report():
    score = zscore("PHN", "lv_edd", 4.55, 1.0)
    assert score.z_text == "z +2.00 (PHN)"
    assert score.range_text == "3.89 cm (±2 SD 3.23-4.55)"
