"""Sanity checks that flag implausible inputs instead of silently using them.

These are deliberately WIDE bounds meant to catch typing and unit errors (height in metres,
weight in grams, a dimension in mm typed into a cm field). They are not a growth assessment:
a child inside them may still be far from the median, and nothing here says so.

Growth bands are placed beyond the extreme lines of the WHO Child Growth Standards (0-5 y,
±3 SD curves, WHO 2006) and the CDC 2000 growth charts (2-20 y, 3rd/97th percentiles), with a
margin, and the neonatal band opened down to extremely preterm infants (~0.3 kg, ~25 cm).
The chart values behind them are approximate and were NOT re-checked against the published
tables for this module; what matters is only that every bound lies outside those lines. The
bands do not depend on sex (wide enough for both). A flag asks the reader to confirm a value:
real patients (skeletal dysplasia, severe obesity, Marfan) can trip one. Measurement bounds
are this module's own judgement, covering neonates to adults including pathology (dilated
ventricles, giant coronary aneurysms); they are not normal ranges.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["GROWTH_BANDS", "MEASUREMENT_BOUNDS", "Flag", "check_growth", "check_measurement"]

SEXES = {"M", "F", "O", "U"}  # DICOM Patient's Sex (0010,0040), U: unknown
# kg/m²: outside these the height and weight cannot belong together. Extremely preterm
# newborns have BMIs near 5-7 (e.g. 30 cm, 0.6 kg: 6.7), hence the lower floor under 6 months.
BMI_RANGE = (7.0, 70.0)
BMI_LOW_UNDER_6_MONTHS = 4.0


@dataclass(frozen=True)
class Flag:
    code: str  # machine name: "height_implausible", "weight_grams", "unit_mm_as_cm"...
    field: str  # "height_cm", "weight_kg", "age_days", "sex", or a structure key
    message: str  # for the reader


@dataclass(frozen=True)
class GrowthBand:
    label: str
    until_days: int  # exclusive
    height_cm: tuple[float, float]
    weight_kg: tuple[float, float]


GROWTH_BANDS: tuple[GrowthBand, ...] = (
    GrowthBand("0-1 month", 31, (25.0, 65.0), (0.3, 7.5)),
    GrowthBand("1-6 months", 183, (30.0, 80.0), (0.5, 12.0)),
    GrowthBand("6-12 months", 366, (40.0, 90.0), (1.5, 16.0)),
    GrowthBand("1-2 years", 731, (55.0, 105.0), (4.0, 22.0)),
    GrowthBand("2-5 years", 1827, (70.0, 130.0), (6.0, 40.0)),
    GrowthBand("5-10 years", 3653, (90.0, 165.0), (10.0, 90.0)),
    GrowthBand("10-15 years", 5479, (110.0, 200.0), (15.0, 160.0)),
    GrowthBand("15 years and over", 10**9, (120.0, 230.0), (20.0, 250.0)),
)

# structure key (reports.zscores) -> (canonical unit, plausible low, plausible high)
MEASUREMENT_BOUNDS: dict[str, tuple[str, float, float]] = {
    "lv_edd": ("cm", 0.8, 10.0),
    "lv_esd": ("cm", 0.4, 9.0),
    "ivs_d": ("cm", 0.1, 3.5),
    "lvpw_d": ("cm", 0.1, 3.5),
    "aortic_annulus": ("cm", 0.2, 4.0),
    "aortic_root": ("cm", 0.4, 6.5),
    "stj": ("cm", 0.3, 6.0),
    "ascending_aorta": ("cm", 0.3, 6.5),
    "isthmus": ("cm", 0.1, 3.5),
    "mpa": ("cm", 0.2, 6.0),
    "rpa": ("cm", 0.1, 4.0),
    "lpa": ("cm", 0.1, 4.0),
    "mv_ap": ("cm", 0.4, 6.0),
    "mv_lat": ("cm", 0.4, 6.0),
    "tv_ap": ("cm", 0.4, 7.0),
    "tv_lat": ("cm", 0.4, 7.0),
    "lmca": ("mm", 0.5, 25.0),
    "lad": ("mm", 0.5, 25.0),
    "rca": ("mm", 0.5, 25.0),
    "lv_edv": ("mL", 1.0, 500.0),
    "lv_mass": ("g", 1.0, 600.0),
}

_LENGTH_CM = {"cm": 1.0, "mm": 0.1, "m": 100.0}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def growth_band(age_days: int) -> GrowthBand:
    return next(b for b in GROWTH_BANDS if age_days < b.until_days)


def check_growth(
    age_days: int | None, sex: str | None, height_cm: float | None, weight_kg: float | None
) -> list[Flag]:
    """Flags for a height or weight that cannot be right for the age, with a likely cause
    (metres, grams, pounds) when one fits. None inputs are skipped (not every order carries
    them); an empty list means "nothing absurd", not "normal growth"."""
    flags: list[Flag] = []
    band = None
    if age_days is not None:
        if isinstance(age_days, bool) or not isinstance(age_days, numbers.Integral):
            flags.append(Flag("age_invalid", "age_days", f"age {age_days!r} is not a number"))
        elif age_days < 0 or age_days > 130 * 366:
            flags.append(Flag("age_invalid", "age_days", f"age {age_days} days is impossible"))
        else:
            band = growth_band(int(age_days))
    if sex is not None and str(sex).upper() not in SEXES:
        flags.append(Flag("sex_invalid", "sex", f"sex {sex!r} is not one of M, F, O, U"))
    h = _value_flag(flags, "height_cm", "height", height_cm, "cm")
    w = _value_flag(flags, "weight_kg", "weight", weight_kg, "kg")
    if band is not None and h is not None:
        low, high = band.height_cm
        if not low <= h <= high:
            hint = " (entered in metres?)" if low <= h * 100 <= high else ""
            code = "height_metres" if hint else "height_implausible"
            flags.append(
                Flag(
                    code,
                    "height_cm",
                    f"height {h:g} cm is implausible at {band.label}"
                    f" (sanity bounds {low:g}-{high:g} cm){hint}",
                )
            )
    if band is not None and w is not None:
        low, high = band.weight_kg
        if not low <= w <= high:
            if low <= w / 1000 <= high:
                code, hint = "weight_grams", " (entered in grams?)"
            elif low <= w * 0.45359237 <= high:
                code, hint = "weight_pounds", " (entered in pounds?)"
            else:
                code, hint = "weight_implausible", ""
            flags.append(
                Flag(
                    code,
                    "weight_kg",
                    f"weight {w:g} kg is implausible at {band.label}"
                    f" (sanity bounds {low:g}-{high:g} kg){hint}",
                )
            )
    if h is not None and w is not None and not flags:
        bmi = w / (h / 100) ** 2
        low_bmi = BMI_RANGE[0]
        if band is None or band.until_days <= 183:
            low_bmi = BMI_LOW_UNDER_6_MONTHS
        if not low_bmi <= bmi <= BMI_RANGE[1]:
            flags.append(
                Flag(
                    "bmi_implausible",
                    "weight_kg",
                    f"weight {w:g} kg and height {h:g} cm"
                    f" give a BMI of {bmi:.1f} kg/m²: check both (swapped or wrong unit?)",
                )
            )
    return flags


def _value_flag(
    flags: list[Flag], field: str, label: str, value: object, unit: str
) -> float | None:
    if value is None:
        return None
    number = _number(value)
    if number is None or number <= 0:
        flags.append(Flag(f"{label}_invalid", field, f"{label} {value!r} {unit} is not valid"))
        return None
    return number


def check_measurement(structure: str, value: float, unit: str) -> list[Flag]:
    """Flags for a measurement that is impossible in `unit` for `structure` (a key of
    `reports.zscores.structures`), e.g. an LV end-diastolic dimension of 38 entered as cm
    (38 mm = 3.8 cm is what was meant). Unknown structures and units are flagged too: the
    caller must not compute a z-score from something it cannot check."""
    if structure not in MEASUREMENT_BOUNDS:
        return [Flag("structure_unknown", structure, f"no plausibility bounds for {structure!r}")]
    canonical, low, high = MEASUREMENT_BOUNDS[structure]
    number = _number(value)
    if number is None or number <= 0:
        return [Flag("value_invalid", structure, f"{value!r} {unit} is not a valid measurement")]
    if canonical == "cm" or canonical == "mm":
        if unit not in _LENGTH_CM:
            return [Flag("unit_invalid", structure, f"unit {unit!r} is not a length")]
        in_canonical = number * _LENGTH_CM[unit] / _LENGTH_CM[canonical]
    elif unit == canonical:
        in_canonical = number
    else:
        return [Flag("unit_invalid", structure, f"unit {unit!r} should be {canonical}")]
    if low <= in_canonical <= high:
        return []
    message = (
        f"{structure} {number:g} {unit} is implausible (expected {low:g}-{high:g} {canonical})"
    )
    if canonical in _LENGTH_CM:
        for other, factor in _LENGTH_CM.items():
            guess = number * factor / _LENGTH_CM[canonical]
            if other != unit and low <= guess <= high:
                code = f"unit_{other}_as_{unit}"
                return [Flag(code, structure, f"{message}: entered in {other}?")]
    return [Flag("value_implausible", structure, message)]
