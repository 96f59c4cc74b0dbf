"""Echo dimension z-scores as data, with the model named on every result.

Models disagree for the same child by tenths of a z unit, so a z-score is never shown without
its model, and serial exams must use the same one (../shared/CLINICAL.md, "Echo z-scores").

PHN: Lopez L et al. Circ Cardiovasc Imaging 2017;10:e006979 (Pediatric Heart Network normal
echo database, Haycock BSA). z = (X / BSA^α − mean) / SD; predicted mean = mean · BSA^α and the
±2 SD range (mean ± 2 SD) · BSA^α, in the measured unit. Rows checked against the table on
pediatricheartnetwork.org "Echo z-scores" (for researchers). Units: cm for dimensions, mm for
coronary arteries, mL for volume, g for mass.

Detroit: Pettersen MD, Du W, Skeens ME, Humes RA. J Am Soc Echocardiogr 2008;21:922-934
(n = 782, BSA ≤ 2 m²). expected = b0 + b1·BSA + b2·BSA² + b3·BSA³ (ln of the dimension in
cm); z = (ln X − expected) / √MSE; predicted mean exp(expected), range exp(expected ± 2√MSE).
The BSA formula of the paper is NOT verified here (public calculators let the user choose):
results carry a note saying so.

Boston: Colan SD, McElhinney DB, Crawford EC, Keane JF, Lock JE. J Am Coll Cardiol
2006;47:1858-1865 (Haycock BSA), aortic annulus and sinus only: mean = k · √BSA cm,
SD = a + b · BSA; z = (X − mean) / SD.

Severity bands (CLINICAL.md): |z| < 1.65 normal, 1.65-1.96 borderline, 1.96-3 mild, 3-4
moderate, ≥ 4 severe; `abnormal` is |z| ≥ 2 (issue #8). The bands apply to |z|: a z of −2.5
is a "mild" small structure. Bands and `abnormal` use z rounded to the 2 decimals displayed.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from reports.bsa import Bsa

__all__ = ["MODELS", "ModelInfo", "Structure", "ZScore", "model_info", "severity"]
__all__ += ["structures", "zscore"]

ABNORMAL_ABS_Z = 2.0
MAX_BSA_M2 = 5.0  # beyond any human: a typing or unit error, not an out-of-range child


@dataclass(frozen=True)
class Structure:
    key: str  # shared across models: "lv_edd" is PHN LVEDD and Detroit LVIDd
    name: str
    unit: str  # "cm", "mm", "mL", "g"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    citation: str
    bsa_formula: str  # the BSA the equations expect ("Haycock"), or "unverified"
    bsa_max_m2: float | None  # largest BSA of the reference population, when known


@dataclass(frozen=True)
class ZScore:
    model_name: str
    citation: str
    structure: Structure
    value: float
    unit: str
    bsa_m2: float
    z: float
    predicted_mean: float  # in `unit`
    lower_2sd: float  # in `unit`
    upper_2sd: float  # in `unit`
    severity: str  # "normal", "borderline", "mild", "moderate", "severe"
    abnormal: bool  # |z| ≥ 2
    out_of_range_note: str | None = None  # BSA outside the reference population
    bsa_note: str | None = None  # BSA formula differs from the model's, or is unverified

    @property
    def z_text(self) -> str:
        """ "z +2.31 (PHN)": the model name always travels with the number."""
        return f"z {self.z:+.2f} ({self.model_name})"

    @property
    def range_text(self) -> str:
        return (
            f"{_fmt(self.predicted_mean)} {self.unit}"
            f" (±2 SD {_fmt(self.lower_2sd)}-{_fmt(self.upper_2sd)})"
        )


def _fmt(number: float) -> str:
    return f"{number:.2f}"


MODELS: dict[str, ModelInfo] = {
    "PHN": ModelInfo(
        "PHN",
        "Lopez L et al. Circ Cardiovasc Imaging 2017;10:e006979",
        "Haycock",
        None,  # reference population: healthy non-obese children ≤ 18 y; BSA limits not checked
    ),
    "Detroit": ModelInfo(
        "Detroit",
        "Pettersen MD et al. J Am Soc Echocardiogr 2008;21:922-934",
        "unverified",
        2.0,
    ),
    "Boston": ModelInfo(
        "Boston",
        "Colan SD et al. J Am Coll Cardiol 2006;47:1858-1865",
        "Haycock",
        None,
    ),
}

# key -> (name, unit, α, mean, SD) of X / BSA^α (pediatricheartnetwork.org table).
_PHN: dict[str, tuple[str, str, float, float, float]] = {
    "mv_ap": ("Mitral valve annulus (AP)", "cm", 0.50, 2.31, 0.24),
    "mv_lat": ("Mitral valve annulus (lateral)", "cm", 0.50, 2.23, 0.22),
    "tv_ap": ("Tricuspid valve annulus (AP)", "cm", 0.50, 2.36, 0.28),
    "tv_lat": ("Tricuspid valve annulus (lateral)", "cm", 0.50, 2.36, 0.29),
    "aortic_annulus": ("Aortic valve annulus", "cm", 0.50, 1.48, 0.14),
    "aortic_root": ("Aortic root (sinus)", "cm", 0.50, 2.06, 0.18),
    "stj": ("Sinotubular junction", "cm", 0.50, 1.69, 0.16),
    "ascending_aorta": ("Ascending aorta", "cm", 0.50, 1.79, 0.18),
    "isthmus": ("Aortic isthmus", "cm", 0.50, 1.25, 0.18),
    "mpa": ("Main pulmonary artery", "cm", 0.50, 1.82, 0.24),
    "rpa": ("Right pulmonary artery", "cm", 0.50, 1.07, 0.18),
    "lpa": ("Left pulmonary artery", "cm", 0.50, 1.10, 0.18),
    "lmca": ("Left main coronary artery", "mm", 0.45, 2.95, 0.57),
    "lad": ("Left anterior descending coronary artery", "mm", 0.45, 1.90, 0.34),
    "rca": ("Right coronary artery", "mm", 0.45, 2.32, 0.55),
    "lv_edd": ("LV end-diastolic dimension", "cm", 0.45, 3.89, 0.33),
    "lvpw_d": ("LV posterior wall (diastole)", "cm", 0.40, 0.57, 0.09),
    "ivs_d": ("Interventricular septum (diastole)", "cm", 0.40, 0.58, 0.09),
    "lv_edv": ("LV end-diastolic volume", "mL", 1.30, 62.02, 11.94),
    "lv_mass": ("LV mass", "g", 1.25, 53.02, 9.06),
}

# key -> (name, b0, b1, b2, b3, MSE); ln(dimension in cm) (Pettersen 2008, CLINICAL.md table;
# same values as the parameterz.com Detroit calculator).
_DETROIT: dict[str, tuple[str, float, float, float, float, float]] = {
    "lv_edd": ("LV internal dimension (diastole)", 0.105, 2.859, -2.119, 0.552, 0.010),
    "lv_esd": ("LV internal dimension (systole)", -0.371, 2.833, -2.081, 0.538, 0.016),
    "ivs_d": ("Interventricular septum (diastole)", -1.242, 1.272, -0.762, 0.208, 0.046),
    "lvpw_d": ("LV posterior wall (diastole)", -1.586, 1.849, -1.188, 0.313, 0.037),
    "aortic_annulus": ("Aortic valve annulus", -0.874, 2.708, -1.841, 0.452, 0.010),
    "mpa": ("Main pulmonary artery", -0.707, 2.746, -1.807, 0.424, 0.024),
}

# key -> (name, k, a, b): mean = k·√BSA, SD = a + b·BSA, cm (Colan 2006).
_BOSTON: dict[str, tuple[str, float, float, float]] = {
    "aortic_annulus": ("Aortic valve annulus", 1.55, 0.06, 0.083),
    "aortic_root": ("Aortic root (sinus)", 2.02, 0.098, 0.12),
}


def _model_key(model: str) -> str:
    for key in MODELS:
        if str(model).strip().lower() == key.lower():
            return key
    raise ValueError(f"unknown z-score model {model!r}; valid: {', '.join(MODELS)}")


def model_info(model: str) -> ModelInfo:
    return MODELS[_model_key(model)]


def structures(model: str) -> list[Structure]:
    """The structures `model` has equations for, in table order."""
    key = _model_key(model)
    if key == "PHN":
        return [Structure(k, row[0], row[1]) for k, row in _PHN.items()]
    if key == "Detroit":
        return [Structure(k, row[0], "cm") for k, row in _DETROIT.items()]
    return [Structure(k, row[0], "cm") for k, row in _BOSTON.items()]


def severity(z: float) -> str:
    """The CLINICAL.md band of |z|; lower bounds inclusive (1.96 is "mild")."""
    if not math.isfinite(z):
        raise ValueError(f"z must be finite, got {z!r}")
    size = abs(z)
    if size >= 4:
        return "severe"
    if size >= 3:
        return "moderate"
    if size >= 1.96:
        return "mild"
    if size >= 1.65:
        return "borderline"
    return "normal"


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return number


def zscore(model: str, structure_key: str, value: float, bsa_m2: float | Bsa) -> ZScore:
    """The z-score of `value` (in the structure's unit, see `structures`) at `bsa_m2`.

    `bsa_m2` may be a plain number or a `reports.bsa.Bsa`; with a Bsa whose formula is not
    the model's, the result carries a `bsa_note`. A BSA above the model's reference population
    is computed but flagged in `out_of_range_note`, never silently extrapolated.
    """
    key = _model_key(model)
    info = MODELS[key]
    by_key = {s.key: s for s in structures(key)}
    if structure_key not in by_key:
        raise ValueError(
            f"unknown structure {structure_key!r} for {key}; valid: {', '.join(by_key)}"
        )
    structure = by_key[structure_key]
    x = _positive(f"{structure.name} ({structure.unit})", value)
    formula = bsa_m2.formula_name if isinstance(bsa_m2, Bsa) else None
    b = _positive("BSA (m²)", bsa_m2.value_m2 if isinstance(bsa_m2, Bsa) else bsa_m2)
    if b > MAX_BSA_M2:
        raise ValueError(f"BSA {b:g} m² is implausible (maximum {MAX_BSA_M2:g})")

    if key == "PHN":
        _, _, alpha, mean, sd = _PHN[structure_key]
        scale = b**alpha
        z = (x / scale - mean) / sd
        predicted, low, high = mean * scale, (mean - 2 * sd) * scale, (mean + 2 * sd) * scale
    elif key == "Detroit":
        _, b0, b1, b2, b3, mse = _DETROIT[structure_key]
        expected = b0 + b1 * b + b2 * b**2 + b3 * b**3
        root_mse = math.sqrt(mse)
        z = (math.log(x) - expected) / root_mse
        predicted = math.exp(expected)
        low, high = math.exp(expected - 2 * root_mse), math.exp(expected + 2 * root_mse)
    else:
        _, k, a, slope = _BOSTON[structure_key]
        predicted, sd = k * math.sqrt(b), a + slope * b
        z = (x - predicted) / sd
        low, high = predicted - 2 * sd, predicted + 2 * sd

    # Band the z the reader sees (2 decimals), so "z +3.00" is never labelled "mild" because
    # the float was 2.9999999.
    shown = round(z, 2)
    out_of_range = None
    if info.bsa_max_m2 is not None and b > info.bsa_max_m2:
        out_of_range = (
            f"BSA {b:.2f} m² is above the {info.name} reference population"
            f" (BSA ≤ {info.bsa_max_m2:g} m²): extrapolated, interpret with caution"
        )
    bsa_note = None
    if info.bsa_formula == "unverified":
        bsa_note = f"the BSA formula of the {info.name} paper is not verified"
        if formula:
            bsa_note += f"; {formula} BSA used"
    elif formula and formula != info.bsa_formula:
        bsa_note = f"{info.name} equations use {info.bsa_formula} BSA; {formula} BSA given"
    return ZScore(
        model_name=info.name,
        citation=info.citation,
        structure=structure,
        value=x,
        unit=structure.unit,
        bsa_m2=b,
        z=z,
        predicted_mean=predicted,
        lower_2sd=low,
        upper_2sd=high,
        severity=severity(shown),
        abnormal=abs(shown) >= ABNORMAL_ABS_Z,
        out_of_range_note=out_of_range,
        bsa_note=bsa_note,
    )
