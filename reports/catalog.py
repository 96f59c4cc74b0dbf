"""The report templates ReadingRoom ships (installed by a migration and by the demo; admins
version them). Every template ends with a required Impression."""

from __future__ import annotations

from typing import Any


def _text(key: str, label: str, default: str = "", required: bool = False) -> dict[str, Any]:
    return {"key": key, "label": label, "type": "text", "default": default, "required": required}


def _num(key: str, label: str, unit: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "label": label, "type": "number", "unit": unit, **extra}


def _choice(key: str, label: str, choices: list[str], default: str = "") -> dict[str, Any]:
    return {"key": key, "label": label, "type": "choice", "choices": choices, "default": default}


def _yesno(key: str, label: str, default: str = "no") -> dict[str, Any]:
    return {"key": key, "label": label, "type": "yesno", "default": default}


IMPRESSION = {
    "key": "impression",
    "title": "Impression",
    "fields": [_text("impression", "Impression", required=True)],
}
MACROS = {
    "nl": "No acute abnormality.",
    "cmp": "Compared with the prior study, there is no interval change.",
    "fu": "Clinical follow-up is recommended.",
}


def _template(key, name, modality, priority, sections, description="", macros=None):
    return {
        "key": key,
        "name": name,
        "modality": modality,
        "description_contains": description,
        "priority": priority,
        "definition": {"sections": [*sections, IMPRESSION], "macros": {**MACROS, **(macros or {})}},
    }


ECHO = _template(
    "peds-tte",
    "Pediatric transthoracic echocardiogram",
    "US",
    10,
    [
        {
            "key": "anatomy",
            "title": "Segmental anatomy",
            "fields": [
                _choice("situs", "Situs", ["solitus", "inversus", "ambiguus"], "solitus"),
                _text("anatomy", "Findings", "Normal segmental cardiac anatomy."),
            ],
        },
        {
            "key": "lv",
            "title": "Left ventricle",
            "fields": [
                _num("lv_edd", "LV end-diastolic dimension", "cm", zscore="lv_edd"),
                _num("ivs_d", "IVS thickness, diastole", "cm", zscore="ivs_d"),
                _num("lvpw_d", "LV posterior wall, diastole", "cm", zscore="lvpw_d"),
                _num("lv_ef", "LV ejection fraction", "%"),
                _text("lv_text", "Findings", "Normal left ventricular size and systolic function."),
            ],
        },
        {
            "key": "valves",
            "title": "Valves and great arteries",
            "fields": [
                _num("aortic_annulus", "Aortic valve annulus", "cm", zscore="aortic_annulus"),
                _num("aortic_root", "Aortic root (sinus)", "cm", zscore="aortic_root"),
                _num("mpa", "Main pulmonary artery", "cm", zscore="mpa"),
                _yesno("pda", "Patent ductus arteriosus"),
                _text("valves_text", "Findings", "No valvar stenosis or regurgitation."),
            ],
        },
        {
            "key": "other",
            "title": "Other",
            "fields": [_yesno("effusion", "Pericardial effusion"), _text("other", "Findings")],
        },
    ],
    description="ECHO",
    macros={"nlecho": "Normal pediatric echocardiogram."},
)
ECG = _template(
    "peds-ecg",
    "12-lead pediatric ECG",
    "ECG",
    20,
    [
        {
            "key": "intervals",
            "title": "Rate and intervals",
            "fields": [
                _num("hr", "Heart rate", "bpm", ecg="hr"),
                _num("rr", "RR interval", "ms", ecg="rr"),
                _num("pr", "PR interval", "ms", ecg="pr"),
                _num("qrs", "QRS duration", "ms", ecg="qrs"),
                _num("qt", "QT interval", "ms", ecg="qt"),
            ],
        },
        {
            "key": "rhythm",
            "title": "Rhythm and morphology",
            "fields": [
                _choice(
                    "rhythm",
                    "Rhythm",
                    ["sinus", "sinus arrhythmia", "ectopic atrial", "junctional", "other"],
                    "sinus",
                ),
                _text("axis", "Axis", "Normal QRS axis for age."),
                _text("morphology", "Findings", "No pre-excitation. No ventricular hypertrophy."),
            ],
        },
    ],
)


def _imaging(key, name, modality, priority, description, findings):
    return _template(
        key,
        name,
        modality,
        priority,
        [
            {
                "key": "technique",
                "title": "Technique",
                "fields": [_text("technique", "Technique", findings[0])],
            },
            {
                "key": "findings",
                "title": "Findings",
                "fields": [
                    _text(f"findings_{i}", label, text)
                    for i, (label, text) in enumerate(findings[1:], start=1)
                ],
            },
        ],
        description=description,
    )


CT_HEAD = _imaging(
    "ct-head",
    "CT head",
    "CT",
    30,
    "HEAD",
    [
        "Axial CT of the head without contrast.",
        ("Brain", "No intracranial hemorrhage, mass effect or midline shift."),
        ("Ventricles", "Ventricles and extra-axial spaces are normal for age."),
        ("Bones", "No calvarial fracture."),
    ],
)
CT_BODY = _imaging(
    "ct-chest-abdomen",
    "CT chest/abdomen",
    "CT",
    31,
    "",
    [
        "CT of the chest and abdomen.",
        ("Lungs", "Lungs are clear."),
        ("Mediastinum", "Normal mediastinal contours."),
        ("Abdomen", "Solid organs are unremarkable."),
    ],
)
MR_BRAIN = _imaging(
    "mr-brain",
    "MR brain",
    "MR",
    40,
    "",
    [
        "Multiplanar multisequence MR of the brain.",
        ("Parenchyma", "Myelination is appropriate for age."),
        ("Ventricles", "Normal ventricular size."),
        ("Diffusion", "No restricted diffusion."),
    ],
)
XR_CHEST = _imaging(
    "xr-chest",
    "Radiograph, chest",
    "CR",
    50,
    "CHEST",
    [
        "Frontal and lateral radiographs of the chest.",
        ("Lungs", "Lungs are clear."),
        ("Heart", "Cardiothymic silhouette is normal for age."),
        ("Bones", "No acute osseous abnormality."),
    ],
)
XR_SKELETAL = _imaging(
    "xr-skeletal",
    "Radiograph, skeletal",
    "CR",
    51,
    "",
    [
        "Radiographs of the indicated region.",
        ("Bones", "No fracture or dislocation."),
        ("Growth plates", "Physes are open and normal in appearance."),
        ("Soft tissues", "Soft tissues are unremarkable."),
    ],
)
US_ABDOMEN = _imaging(
    "us-abdomen",
    "Ultrasound, abdomen",
    "US",
    60,
    "ABDOMEN",
    [
        "Grayscale and color Doppler ultrasound of the abdomen.",
        ("Liver", "Liver is normal in size and echotexture."),
        ("Kidneys", "Kidneys are normal in size without hydronephrosis."),
        ("Other", "No free fluid."),
    ],
)
GENERIC = _imaging(
    "generic",
    "Generic report",
    "",
    1000,
    "",
    [
        "",
        ("Findings", ""),
    ],
)

SHIPPED = [ECHO, ECG, CT_HEAD, CT_BODY, MR_BRAIN, XR_CHEST, XR_SKELETAL, US_ABDOMEN, GENERIC]


def install_shipped(model) -> int:
    """Create version 1 of every shipped template that does not exist yet (by key)."""
    created = 0
    for row in SHIPPED:
        if not model.objects.filter(key=row["key"]).exists():
            model.objects.create(version=1, **row)
            created += 1
    return created
