"""Controlled vocabularies shared by the API, the rules and the simulator.

Side-effect terms are the CTCAE v5.0 adverse events that sirolimus causes
(Rapamune label section 6; MILES, NEJM 2011; Bee et al., Thorax 2018), each with
the PRO-CTCAE item a patient answers at home where one exists (7-day recall,
none / mild / moderate / severe / very severe). PRO-CTCAE has no fever item, so
temperature and "antibiotics started" are separate fields of a report.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SideEffectTerm:
    code: str
    ctcae_term: str
    pro_ctcae_item: str | None
    respiratory: bool = False  # counts toward "progression or pneumonitis / infection?"


SIDE_EFFECT_TERMS: dict[str, SideEffectTerm] = {
    t.code: t
    for t in (
        SideEffectTerm("mucositis_oral", "Mucositis oral", "Mouth or throat sores"),
        SideEffectTerm("rash_acneiform", "Rash acneiform", "Acne"),
        SideEffectTerm("irregular_menstruation", "Irregular menstruation", "Irregular periods"),
        SideEffectTerm("amenorrhea", "Amenorrhea", "Missed expected menstrual period"),
        SideEffectTerm("upper_respiratory_infection", "Upper respiratory infection", None, True),
        SideEffectTerm("lung_infection", "Lung infection", None, True),
        SideEffectTerm("pneumonitis", "Pneumonitis", None, True),
        SideEffectTerm("cough", "Cough", "Cough", True),
        SideEffectTerm("dyspnea", "Dyspnea", "Shortness of breath", True),
        # CTCAE v5 splits chest pain (chest wall pain, pleuritic pain, chest pain -
        # cardiac); a patient's report cannot tell them apart. In LAM it may be a
        # pneumothorax (domain.md §5).
        SideEffectTerm("chest_pain", "Chest pain", None, True),
        SideEffectTerm("cholesterol_high", "Cholesterol high", None),
        SideEffectTerm("hypertriglyceridemia", "Hypertriglyceridemia", None),
        SideEffectTerm("edema_limbs", "Edema limbs", "Swelling"),
        SideEffectTerm("diarrhea", "Diarrhea", "Diarrhea"),
        SideEffectTerm("nausea", "Nausea", "Nausea"),
        SideEffectTerm("proteinuria", "Proteinuria", None),
        SideEffectTerm("ovarian_cyst", "Ovarian cyst", None),
        SideEffectTerm("headache", "Headache", "Headache"),
        SideEffectTerm("fatigue", "Fatigue", "Fatigue"),
        SideEffectTerm("other", "Other, specify", None),
    )
}

# PRO-CTCAE severity scale, with the CTCAE grade it is read as for urgency rules
# (severe ~ grade 3, very severe ~ grade 4). A clinician-entered CTCAE grade, when
# present, takes precedence.
PRO_CTCAE_SEVERITY: dict[str, int] = {
    "none": 0,
    "mild": 1,
    "moderate": 2,
    "severe": 3,
    "very_severe": 4,
}

REGIMEN_EVENT_KINDS = (
    "start",
    "dose_change",
    "interruption",
    "resume",
    "stop",
    "interacting_drug_start",
    "interacting_drug_stop",
)

LAM_EVENT_KINDS = (
    "pneumothorax",
    "chylothorax",
    "chylous_ascites",
    "hospital_admission",
    "transplant_listing",
    "other",
)

# Strong CYP3A4 / P-gp inhibitors and inducers (Rapamune label section 7).
INTERACTING_DRUGS: dict[str, str] = {
    **dict.fromkeys(
        (
            "ketoconazole",
            "voriconazole",
            "itraconazole",
            "posaconazole",
            "clarithromycin",
            "erythromycin",
            "telithromycin",
            "grapefruit",
        ),
        "inhibitor",
    ),
    **dict.fromkeys(("rifampin", "rifabutin", "carbamazepine", "phenytoin", "st_johns_wort"), "inducer"),
    "cannabidiol": "warning",
}

TROUGH_ASSAY_METHODS = ("lc_ms_ms", "immunoassay", "hplc_uv", "other", "unknown")
SPIROMETRY_SETTINGS = ("home", "clinic")
TREATMENT_STATUSES = ("untreated", "on_sirolimus", "interrupted", "stopped")
LAM_TYPES = ("sporadic", "tsc")
