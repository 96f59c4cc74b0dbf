"""The pediatric calculations of one report, from its values and the child: age at the study
date, BSA with its formula, echo z-scores with their model, ECG rate and QTc (Bazett and
Fridericia), and flags for implausible inputs. Nothing here is silently used: a value that
cannot be computed says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from identity.ages import pediatric_age
from viewer import ecg_intervals

from . import plausibility, zscores
from .bsa import Bsa, bsa


@dataclass
class Calculated:
    age_text: str = ""
    age_days: int | None = None
    bsa: Bsa | None = None
    zscores: dict[str, zscores.ZScore] = field(default_factory=dict)  # field key -> z
    ecg: dict[str, float] = field(default_factory=dict)  # hr, rr, qtc_bazett, qtc_fridericia
    flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "age": self.age_text,
            "bsa": {"value_m2": round(self.bsa.value_m2, 3), "formula": self.bsa.formula_name}
            if self.bsa
            else None,
            "zscores": {
                key: {
                    "z": z.z,
                    "text": z.z_text,
                    "range": z.range_text,
                    "model": z.model_name,
                    "severity": z.severity,
                    "abnormal": z.abnormal,
                    "note": " ".join(n for n in (z.out_of_range_note, z.bsa_note) if n),
                }
                for key, z in self.zscores.items()
            },
            "ecg": {k: round(v, 1) for k, v in self.ecg.items()},
            "flags": self.flags,
        }


def number(value: Any) -> float | None:
    """A field's numeric value, or None when empty or not a finite number."""
    if value in (None, ""):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def calculate(
    fields: list[dict],
    values: dict[str, Any],
    *,
    birth: date | None,
    study_date: date | None,
    sex: str,
    height_cm: float | None,
    weight_kg: float | None,
    bsa_formula: str,
    zscore_model: str,
) -> Calculated:
    out = Calculated(age_text=pediatric_age(birth, study_date))
    if birth and study_date and study_date >= birth:
        out.age_days = (study_date - birth).days
    if out.age_days is not None and (height_cm or weight_kg):
        out.flags += [
            f.message for f in plausibility.check_growth(out.age_days, sex, height_cm, weight_kg)
        ]
    if height_cm and weight_kg:
        try:
            out.bsa = bsa(height_cm, weight_kg, bsa_formula)
        except ValueError as exc:
            out.flags.append(f"BSA not computed: {exc}")
    for spec in fields:
        value = number(values.get(spec["key"]))
        if value is None:
            continue
        if spec.get("zscore"):
            _zscore(out, spec, value, zscore_model)
        if spec.get("ecg"):
            out.ecg[spec["ecg"]] = value
    _ecg(out)
    return out


def _zscore(out: Calculated, spec: dict, value: float, model: str) -> None:
    structure = spec["zscore"]
    out.flags += [
        f"{spec['label']}: {f.message}"
        for f in plausibility.check_measurement(structure, value, spec.get("unit", ""))
    ]
    if out.bsa is None:
        out.flags.append(f"{spec['label']}: no z-score without height and weight (BSA)")
        return
    try:
        out.zscores[spec["key"]] = zscores.zscore(model, structure, value, out.bsa)
    except ValueError as exc:
        out.flags.append(f"{spec['label']}: {exc}")


def _ecg(out: Calculated) -> None:
    """Rate from RR (or RR from rate), then QTc by both formulas, labelled; age flags."""
    values = out.ecg
    try:
        if "rr" in values and "hr" not in values:
            values["hr"] = ecg_intervals.heart_rate_bpm(values["rr"])
        elif "hr" in values and "rr" not in values:
            values["rr"] = ecg_intervals.rr_ms_from_hr(values["hr"])
        if "qt" in values and "rr" in values:
            values["qtc_bazett"] = ecg_intervals.qtc_bazett(values["qt"], values["rr"])
            values["qtc_fridericia"] = ecg_intervals.qtc_fridericia(values["qt"], values["rr"])
        if values:
            flags = ecg_intervals.flag_intervals(
                out.age_days,
                values.get("hr"),
                values.get("pr"),
                values.get("qrs"),
                values.get("qtc_bazett"),
            )
            out.flags += [f.message for f in flags]
    except ValueError as exc:
        out.flags.append(f"ECG intervals: {exc}")
