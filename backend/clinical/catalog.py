"""Controlled vocabularies shared by the API, the rules and the simulator.

Side-effect terms are the CTCAE v5.0 adverse events that sirolimus causes
(Rapamune label section 6; MILES, NEJM 2011; Bee et al., Thorax 2018), each with
the PRO-CTCAE item a patient answers at home where one exists (7-day recall,
none / mild / moderate / severe / very severe). PRO-CTCAE has no fever item, so
temperature and "antibiotics started" are separate fields of a report.
"""

from __future__ import annotations

import re
import unicodedata
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

# Plain names for the care team's pages (the CTCAE v5 term is the coded name;
# "Edema limbs" reads as "swelling of the limbs (limb oedema)"). The API keeps the
# codes and the CTCAE terms; only the web pages show these.
SIDE_EFFECT_LABELS: dict[str, str] = {
    "mucositis_oral": "Mouth sores (oral mucositis)",
    "rash_acneiform": "Acne-like rash",
    "irregular_menstruation": "Irregular periods",
    "amenorrhea": "Missed periods (amenorrhoea)",
    "upper_respiratory_infection": "Upper respiratory infection",
    "lung_infection": "Lung infection",
    "pneumonitis": "Pneumonitis",
    "cough": "Cough",
    "dyspnea": "Shortness of breath (dyspnoea)",
    "chest_pain": "Chest pain",
    "cholesterol_high": "High cholesterol",
    "hypertriglyceridemia": "High triglycerides",
    "edema_limbs": "Swelling of the limbs (limb oedema)",
    "diarrhea": "Diarrhoea",
    "nausea": "Nausea",
    "proteinuria": "Protein in the urine (proteinuria)",
    "ovarian_cyst": "Ovarian cyst",
    "headache": "Headache",
    "fatigue": "Fatigue",
    "other": "Other",
}


def side_effect_label(code: str) -> str:
    """The plain name of a side-effect code (an unknown code: its words)."""
    return SIDE_EFFECT_LABELS.get(code) or code.replace("_", " ").capitalize()


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

# CYP3A4 / P-gp inhibitors and inducers (Rapamune label section 7.2): strong
# inhibitors and inducers (avoid), and the inhibitors to use with caution
# (letermovir and the protease inhibitors are named there too);
# cannabidiol raises sirolimus levels (label warning, 2022).
INTERACTING_DRUGS: dict[str, str] = {
    **dict.fromkeys(
        (
            # strong inhibitors
            "ketoconazole",
            "voriconazole",
            "itraconazole",
            "posaconazole",
            "clarithromycin",
            "erythromycin",
            "telithromycin",
            # inhibitors: use with caution, monitor the level
            "diltiazem",
            "verapamil",
            "nicardipine",
            "fluconazole",
            "clotrimazole",
            "cyclosporine",
            "danazol",
            "bromocriptine",
            "cimetidine",
            "metoclopramide",
            "cisapride",
            "troleandomycin",
            "letermovir",
            # the pharmacokinetic booster of HIV regimens: a strong CYP3A inhibitor
            # (FDA table of CYP3A inhibitors), named in many combination tablets
            "cobicistat",
            # HIV and HCV protease inhibitors
            "ritonavir",
            "indinavir",
            "saquinavir",
            "nelfinavir",
            "atazanavir",
            "lopinavir",
            "darunavir",
            "tipranavir",
            "fosamprenavir",
            "boceprevir",
            "telaprevir",
            "grapefruit",
        ),
        "inhibitor",
    ),
    **dict.fromkeys(
        (
            "rifampin",
            "rifabutin",
            "rifapentine",
            "carbamazepine",
            "phenobarbital",
            "phenytoin",
            "st_johns_wort",
        ),
        "inducer",
    ),
    "cannabidiol": "warning",
}

# International names, spellings and brand names -> the catalog name.
DRUG_ALIASES: dict[str, str] = {
    "rifampicin": "rifampin",
    "rifadin": "rifampin",
    "rimactane": "rifampin",
    "rifamycin_sv": "rifampin",
    "mycobutin": "rifabutin",
    "priftin": "rifapentine",
    "tegretol": "carbamazepine",
    "dilantin": "phenytoin",
    "epanutin": "phenytoin",
    "phenobarbitone": "phenobarbital",
    "luminal": "phenobarbital",
    "st_john_s_wort": "st_johns_wort",
    "st_john_wort": "st_johns_wort",
    "saint_johns_wort": "st_johns_wort",
    "hypericum": "st_johns_wort",
    "hypericum_perforatum": "st_johns_wort",
    "nizoral": "ketoconazole",
    "vfend": "voriconazole",
    "sporanox": "itraconazole",
    "noxafil": "posaconazole",
    "biaxin": "clarithromycin",
    "klacid": "clarithromycin",
    "erythrocin": "erythromycin",
    "ketek": "telithromycin",
    "cardizem": "diltiazem",
    "tildiem": "diltiazem",
    "isoptin": "verapamil",
    "calan": "verapamil",
    "cardene": "nicardipine",
    "diflucan": "fluconazole",
    "canesten": "clotrimazole",
    "lotrimin": "clotrimazole",
    "mycelex": "clotrimazole",
    "ciclosporin": "cyclosporine",
    "cyclosporin": "cyclosporine",
    "ciclosporine": "cyclosporine",
    "neoral": "cyclosporine",
    "sandimmun": "cyclosporine",
    "sandimmune": "cyclosporine",
    "danol": "danazol",
    "parlodel": "bromocriptine",
    "tagamet": "cimetidine",
    "reglan": "metoclopramide",
    "maxolon": "metoclopramide",
    "propulsid": "cisapride",
    "norvir": "ritonavir",
    "paxlovid": "ritonavir",
    "kaletra": "lopinavir",
    "crixivan": "indinavir",
    "invirase": "saquinavir",
    "viracept": "nelfinavir",
    "reyataz": "atazanavir",
    "prezista": "darunavir",
    "aptivus": "tipranavir",
    "lexiva": "fosamprenavir",
    "telzir": "fosamprenavir",
    "tybost": "cobicistat",
    "stribild": "cobicistat",
    "genvoya": "cobicistat",
    "prezcobix": "cobicistat",
    "rezolsta": "cobicistat",
    "evotaz": "cobicistat",
    "symtuza": "cobicistat",
    "prevymis": "letermovir",
    "victrelis": "boceprevir",
    "incivek": "telaprevir",
    "incivo": "telaprevir",
    "grapefruit_juice": "grapefruit",
    "epidiolex": "cannabidiol",
    "epidyolex": "cannabidiol",
    "cbd": "cannabidiol",
}

# Expected effect on the sirolimus level of starting each kind (stopping: the reverse).
INTERACTION_EFFECT_ON_START: dict[str, str] = {
    "inhibitor": "rise",
    "warning": "rise",
    "inducer": "fall",
}


def normalise_drug_name(name: str) -> str:
    """Lower case ASCII words joined by '_' ('St John’s Wort' -> 'st_john_s_wort')."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    folded = folded.replace("'", "").replace("`", "")
    return re.sub(r"[^a-z0-9]+", "_", folded).strip("_")


_KNOWN_NAMES: dict[str, str] = {**{k: k for k in INTERACTING_DRUGS}, **DRUG_ALIASES}
# longest first, so 'grapefruit_juice' wins over 'grapefruit'
_BY_LENGTH = sorted(_KNOWN_NAMES, key=len, reverse=True)


def match_interacting_drug(name: str | None) -> tuple[str, str] | None:
    """(catalog name, 'inhibitor' | 'inducer' | 'warning') for a drug as typed.

    Matches the catalog name, an international name or a brand (rifampicin =
    rifampin, ciclosporin = cyclosporine, Diflucan = fluconazole), also inside a
    longer entry ('Fluconazole 150 mg', 'nirmatrelvir/ritonavir'). None means the
    name is not in the catalog, which is not the same as "no interaction".
    """
    if not name:
        return None
    key = normalise_drug_name(name)
    if not key:
        return None
    # apostrophes dropped ('st johns') or split ('st john s'): try both spellings
    padded = {f"_{key}_", f"_{key.replace('_s_', 's_')}_"}
    for known in _BY_LENGTH:
        if any(f"_{known}_" in p for p in padded):
            canonical = _KNOWN_NAMES[known]
            return canonical, INTERACTING_DRUGS[canonical]
    return None


TROUGH_ASSAY_METHODS = ("lc_ms_ms", "immunoassay", "hplc_uv", "other", "unknown")
SPIROMETRY_SETTINGS = ("home", "clinic")
TREATMENT_STATUSES = ("untreated", "on_sirolimus", "interrupted", "stopped")
LAM_TYPES = ("sporadic", "tsc")
