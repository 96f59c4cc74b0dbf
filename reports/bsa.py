"""Body surface area from height and weight, stored with the name of the formula used.

Equations (../shared/CLINICAL.md, "Body surface area"), H in cm, W in kg, BSA in m²:

- Haycock GB, Schwartz GJ, Wisotsky DH. J Pediatr 1978;93:62-66:
  BSA = 0.024265 · H^0.3964 · W^0.5378. Best fit in children 0-36 months; the BSA of the
  PHN and Boston echo z-scores.
- Mosteller RD. N Engl J Med 1987;317:1098: BSA = √(H · W / 3600).
- Du Bois D, Du Bois EF. Arch Intern Med 1916;17:863-871: BSA = 0.007184 · H^0.725 · W^0.425.

Serial z-scores must use the same BSA formula, so the result always names its formula.
Inputs that cannot be a child's or adult's body (≤ 0, NaN, H > 250 cm, W > 300 kg) raise
ValueError: a confident BSA from a typing error would move every z-score of the report.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FORMULAS", "MAX_HEIGHT_CM", "MAX_WEIGHT_KG", "Bsa", "bsa"]

MAX_HEIGHT_CM = 250.0
MAX_WEIGHT_KG = 300.0


@dataclass(frozen=True)
class Bsa:
    value_m2: float
    formula_name: str  # display name: "Haycock", "Mosteller", "DuBois"

    def __str__(self) -> str:
        return f"{self.value_m2:.2f} m² ({self.formula_name})"


def _haycock(h: float, w: float) -> float:
    return 0.024265 * h**0.3964 * w**0.5378


def _mosteller(h: float, w: float) -> float:
    return math.sqrt(h * w / 3600.0)


def _dubois(h: float, w: float) -> float:
    return 0.007184 * h**0.725 * w**0.425


# key -> (display name, function)
FORMULAS: dict[str, tuple[str, Callable[[float, float], float]]] = {
    "haycock": ("Haycock", _haycock),
    "mosteller": ("Mosteller", _mosteller),
    "dubois": ("DuBois", _dubois),
}


def _positive(name: str, value: object, unit: str, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number of {unit}, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a positive finite number of {unit}, got {value!r}")
    if number > maximum:
        raise ValueError(f"{name} {number:g} {unit} is implausible (maximum {maximum:g} {unit})")
    return number


def bsa(height_cm: float, weight_kg: float, formula: str = "haycock") -> Bsa:
    """BSA in m² by `formula` ("haycock" default, "mosteller", "dubois"; case-insensitive)."""
    key = str(formula).strip().lower().replace(" ", "").replace("_", "")
    if key not in FORMULAS:
        raise ValueError(f"unknown BSA formula {formula!r}; valid: {', '.join(FORMULAS)}")
    h = _positive("height", height_cm, "cm", MAX_HEIGHT_CM)
    w = _positive("weight", weight_kg, "kg", MAX_WEIGHT_KG)
    name, function = FORMULAS[key]
    return Bsa(function(h, w), name)
