"""Fixed reference data: the chain's sites, the Terminarten catalogue and billing codes.

The appointment-type ids are part of the contract with the project's mapping config,
so they are identical in every site and must never be renumbered.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AppointmentType:
    id: int
    code: str
    name: str
    duration_min: int


APPOINTMENT_TYPES: tuple[AppointmentType, ...] = (
    AppointmentType(1, "ERST", "Erstberatung", 30),
    AppointmentType(2, "KONS", "Kontrolluntersuchung", 20),
    AppointmentType(3, "PZR", "Professionelle Zahnreinigung", 60),
    AppointmentType(4, "FUEL", "Füllungstherapie", 45),
    AppointmentType(5, "ENDO", "Wurzelkanalbehandlung", 90),
    AppointmentType(6, "PARO", "Parodontitisbehandlung", 60),
    AppointmentType(7, "PROT", "Zahnersatz", 60),
    AppointmentType(8, "IMPL", "Implantation", 120),
    AppointmentType(9, "CHIR", "Chirurgischer Eingriff", 45),
    AppointmentType(10, "KFOB", "Kieferorthopädische Beratung", 30),
    AppointmentType(11, "NACH", "Nachkontrolle", 15),
    AppointmentType(12, "SCHM", "Schmerzbehandlung", 30),
    AppointmentType(13, "IMPB", "Implantatberatung", 45),
    AppointmentType(14, "BLCK", "Interner Blocker", 60),
)
TYPE_BY_CODE = {t.code: t for t in APPOINTMENT_TYPES}
TYPE_BY_ID = {t.id: t for t in APPOINTMENT_TYPES}
T = {t.code: t.id for t in APPOINTMENT_TYPES}


@dataclass(frozen=True)
class SiteDefinition:
    site_id: str
    practice_id: int
    name: str
    key_prefix: str


# The first three are the chain as the mapping config knows it (same names); the rest only
# exist so benchmarks can run up to ten practices.
SITE_DEFINITIONS: tuple[SiteDefinition, ...] = (
    SiteDefinition("mb", 1, "Zahnarztpraxis Magdeburg", "MB_"),
    SiteDefinition("rb", 2, "Rümeysa Zahnmedizin Berlin", "RB_"),
    SiteDefinition("le", 3, "Zahnzentrum Leipzig", "LE_"),
    SiteDefinition("ha", 4, "Zahnarztpraxis Halle (Saale)", "HA_"),
    SiteDefinition("dd", 5, "Zahnzentrum Dresden", "DD_"),
    SiteDefinition("po", 6, "Zahnarztpraxis Potsdam", "PO_"),
    SiteDefinition("ef", 7, "Zahnarztpraxis Erfurt", "EF_"),
    SiteDefinition("rk", 8, "Rümeysa Zahnmedizin Berlin-Köpenick", "RK_"),
    SiteDefinition("ch", 9, "Zahnarztpraxis Chemnitz", "CH_"),
    SiteDefinition("ro", 10, "Zahnzentrum Rostock", "RO_"),
)

STATUSES: tuple[str, ...] = (
    "booked", "confirmed", "arrived", "completed", "cancelled", "no_show", "clarified",
)
BOOKED, CONFIRMED, ARRIVED, COMPLETED, CANCELLED, NO_SHOW, CLARIFIED = range(7)

ENTRY_TYPES: tuple[str, ...] = ("bema", "goz", "mat", "lab", "pabg", "text")


@dataclass(frozen=True)
class Code:
    entry_type: str
    code: str
    description: str
    min_cents: int
    max_cents: int


def _codes(entry_type: str, rows: list[tuple[str, str, int, int]]) -> dict[str, Code]:
    return {code: Code(entry_type, code, text, lo, hi) for code, text, lo, hi in rows}


# BEMA prices are fixed points times the Punktwert, hence min == max; GOZ lines vary with the
# Steigerungsfaktor; material and lab lines with the supplier invoice.
CODES: dict[str, Code] = {
    **_codes("bema", [
        ("01", "Eingehende Untersuchung", 2340, 2340),
        ("Ä1", "Beratung, auch telefonisch", 1170, 1170),
        ("04", "Erhebung des PSI-Code", 1300, 1300),
        ("8", "Sensibilitätsprüfung der Zähne", 780, 780),
        ("12", "Besondere Maßnahmen beim Präparieren", 1300, 1300),
        ("13a", "Füllung einflächig", 4160, 4160),
        ("13b", "Füllung zweiflächig", 5200, 5200),
        ("13c", "Füllung dreiflächig", 6370, 6370),
        ("13d", "Füllung mehr als dreiflächig", 7540, 7540),
        ("19", "Provisorische Krone", 2470, 2470),
        ("20a", "Metallische Vollkrone", 19240, 19240),
        ("28", "Exstirpation der vitalen Pulpa", 2340, 2340),
        ("32", "Aufbereitung des Wurzelkanals", 3640, 3640),
        ("34", "Medikamentöse Einlage", 1950, 1950),
        ("35", "Wurzelkanalfüllung", 2210, 2210),
        ("38", "Nachbehandlung", 1300, 1300),
        ("40", "Infiltrationsanästhesie", 1040, 1040),
        ("41a", "Leitungsanästhesie", 1560, 1560),
        ("43", "Entfernen eines einwurzeligen Zahnes", 1300, 1300),
        ("44", "Entfernen eines mehrwurzeligen Zahnes", 1950, 1950),
        ("47a", "Osteotomie", 9360, 9360),
        ("105", "Lokale medikamentöse Behandlung", 780, 780),
        ("107", "Entfernen harter Zahnbeläge", 2080, 2080),
        ("ATG", "Parodontologisches Aufklärungs- und Therapiegespräch", 3640, 3640),
        ("MHU", "Patientenindividuelle Mundhygieneunterweisung", 5980, 5980),
        ("AITa", "Antiinfektiöse Therapie, einwurzelig", 1820, 1820),
        ("BEVa", "Befundevaluation nach AIT", 4160, 4160),
        ("Ä925a", "Röntgendiagnostik der Zähne, bis zwei Aufnahmen", 1560, 1560),
        ("Ä935d", "Orthopantomogramm", 4160, 4160),
        ("01k", "Kieferorthopädische Untersuchung", 3640, 3640),
    ]),
    **_codes("goz", [
        ("0010", "Eingehende Untersuchung", 1294, 1969),
        ("0070", "Vitalitätsprüfung", 647, 984),
        ("0090", "Infiltrationsanästhesie", 776, 1181),
        ("0100", "Leitungsanästhesie", 918, 1397),
        ("1000", "Mundhygienestatus", 2587, 3937),
        ("1040", "Professionelle Zahnreinigung", 8500, 12800),
        ("2060", "Kompositfüllung einflächig", 6814, 10371),
        ("2080", "Kompositfüllung zweiflächig", 7881, 11994),
        ("2100", "Kompositfüllung dreiflächig", 9670, 14716),
        ("2197", "Adhäsive Befestigung", 1682, 2560),
        ("2200", "Vollkrone (Tangentialpräparation)", 23413, 35629),
        ("2400", "Elektrometrische Längenbestimmung", 906, 1378),
        ("2410", "Aufbereitung eines Wurzelkanals", 5014, 7630),
        ("2440", "Füllung eines Wurzelkanals", 3350, 5098),
        ("3000", "Entfernung eines einwurzeligen Zahnes", 1423, 2165),
        ("3030", "Entfernung eines Zahnes durch Osteotomie", 6468, 9843),
        ("4050", "Entfernung harter und weicher Beläge", 1800, 3600),
        ("4070", "Parodontalchirurgische Therapie, geschlossen", 4500, 9000),
        ("5010", "Brückenanker", 25422, 38686),
        ("6010", "Modellanalyse KFO", 970, 1476),
        ("8000", "Klinische Funktionsanalyse", 5692, 8662),
        ("9000", "Implantatbezogene Analyse und Vermessung", 10212, 15541),
        ("9010", "Implantatinsertion", 19985, 30412),
        ("9040", "Freilegung eines Implantats", 5157, 7848),
        ("9100", "Augmentation", 30000, 48000),
    ]),
    **_codes("mat", [
        ("MAT-KOMP", "Kompositmaterial", 1200, 2500),
        ("MAT-ANAE", "Anästhetikum, Zylinderampulle", 150, 350),
        ("MAT-GUTTA", "Guttapercha-Stifte", 300, 600),
        ("MAT-IMPL", "Implantatkörper", 28000, 42000),
        ("MAT-NAHT", "Nahtmaterial", 600, 1200),
        ("MAT-KNOCH", "Knochenersatzmaterial", 9000, 18000),
        ("MAT-ABDR", "Abformmaterial", 800, 1800),
        ("MAT-PROPH", "Prophylaxepaste und Polierset", 300, 800),
        ("MAT-FLUOR", "Fluoridlack", 400, 900),
    ]),
    **_codes("lab", [
        ("LAB-MODELL", "Situationsmodell", 1800, 3500),
        ("LAB-KRONE", "Vollkeramikkrone", 28000, 45000),
        ("LAB-BRUECKE", "Dreigliedrige Brücke", 60000, 95000),
        ("LAB-PROV", "Langzeitprovisorium", 6000, 12000),
        ("LAB-SCHIENE", "Aufbissschiene", 18000, 30000),
        ("LAB-ABUT", "Individuelles Abutment", 25000, 38000),
        ("LAB-BOHR", "Bohrschablone", 12000, 22000),
    ]),
    # Patient-paid portions (Eigenanteile, Mehrkosten) billed next to the insurer's lines.
    **_codes("pabg", [
        ("PABG-EA", "Eigenanteil Zahnersatz", 25000, 120000),
        ("PABG-MKV", "Mehrkosten Füllung laut Vereinbarung", 4000, 12000),
        ("PABG-PZR", "Privatleistung Prophylaxe", 6000, 11000),
        ("PABG-ZUZ", "Zuzahlung Privatleistung", 1000, 5000),
        ("PABG-IMPL", "Eigenanteil Implantatversorgung", 50000, 150000),
    ]),
}

TEXT_CODE = "TXT"
TEXT_LINES: tuple[str, ...] = (
    "Anamnese aktualisiert",
    "Patient über Risiken und Alternativen aufgeklärt",
    "Mundhygieneinstruktion erfolgt",
    "Kontrolle in sechs Monaten empfohlen",
    "Heil- und Kostenplan besprochen",
    "Röntgenbefund mit Patient besprochen",
    "Beschwerdefrei, keine weitere Behandlung nötig",
    "Nachsorgetermin vereinbart",
    "Patient wünscht Bedenkzeit",
    "Überweisung an Fachzahnarzt ausgestellt",
    "Zahnstein entfernt, Zahnfleisch gereizt",
    "Provisorium eingesetzt, Sitz kontrolliert",
)


@dataclass(frozen=True)
class BillingTemplate:
    """Which lines a visit of one Terminart produces, by insurance (Kasse vs. privat)."""

    core_kasse: tuple[str, ...]
    core_privat: tuple[str, ...]
    extra_kasse: tuple[str, ...]
    extra_privat: tuple[str, ...]
    extra_common: tuple[str, ...]
    weight: str  # "light" | "medium" | "heavy": where in the size's entry range the visit falls


BILLING: dict[int, BillingTemplate] = {
    T["ERST"]: BillingTemplate(("01", "Ä1", "Ä935d"), ("0010", "Ä1"), ("Ä925a", "04", "8"),
                               ("0070", "8000", "1000"), ("MAT-ABDR", "LAB-MODELL"), "light"),
    T["KONS"]: BillingTemplate(("01", "107"), ("0010", "4050"), ("Ä925a", "04", "105"),
                               ("0070", "1000"), ("MAT-FLUOR", "PABG-ZUZ"), "light"),
    T["PZR"]: BillingTemplate(("1040", "1000"), ("1040", "1000"), ("107", "4050"), ("4050", "2197"),
                              ("MAT-PROPH", "MAT-FLUOR", "PABG-PZR"), "medium"),
    T["FUEL"]: BillingTemplate(("13b", "40"), ("2080", "0090"), ("13a", "13c", "13d", "12", "40"),
                               ("2060", "2100", "2197", "0090"), ("MAT-KOMP", "MAT-ANAE", "PABG-MKV"),
                               "medium"),
    T["ENDO"]: BillingTemplate(("28", "32", "41a"), ("2410", "2400", "0100"), ("32", "34", "35", "Ä925a"),
                               ("2410", "2440", "0070"), ("MAT-GUTTA", "MAT-ANAE"), "heavy"),
    T["PARO"]: BillingTemplate(("ATG", "MHU", "AITa"), ("4070", "1000"), ("AITa", "BEVa", "04"),
                               ("4070", "4050"), ("MAT-ANAE", "PABG-ZUZ"), "medium"),
    T["PROT"]: BillingTemplate(("20a", "19", "40"), ("2200", "0090", "5010"), ("19", "Ä925a", "12"),
                               ("2200", "5010", "2197"),
                               ("MAT-ABDR", "LAB-KRONE", "LAB-BRUECKE", "LAB-PROV", "PABG-EA"), "heavy"),
    T["IMPL"]: BillingTemplate(("9010", "41a", "9000"), ("9010", "9000", "0100"), ("9100", "Ä925a"),
                               ("9100", "9040"),
                               ("MAT-IMPL", "MAT-KNOCH", "MAT-NAHT", "LAB-BOHR", "PABG-IMPL"), "heavy"),
    T["CHIR"]: BillingTemplate(("44", "41a"), ("3030", "0100"), ("43", "47a", "38"), ("3000", "3030"),
                               ("MAT-NAHT", "MAT-ANAE"), "medium"),
    T["KFOB"]: BillingTemplate(("01k", "Ä1"), ("6010", "Ä1"), ("Ä925a",), ("6010",), ("LAB-MODELL",),
                               "light"),
    T["NACH"]: BillingTemplate(("38", "Ä1"), ("0010", "Ä1"), ("105",), ("0070",), ("MAT-FLUOR",), "light"),
    T["SCHM"]: BillingTemplate(("Ä1", "40", "105"), ("Ä1", "0090"), ("Ä925a", "28", "8"), ("0070", "2410"),
                               ("MAT-ANAE",), "light"),
    T["IMPB"]: BillingTemplate(("Ä1", "Ä935d"), ("Ä1", "9000"), ("Ä925a",), ("8000",),
                               ("LAB-MODELL", "MAT-ABDR"), "heavy"),
    T["BLCK"]: BillingTemplate((), (), (), (), (), "light"),
}

# Lines billed without an appointment (a lab invoice arriving later, a phone consultation, a
# patient-paid share): drawn for the ~5 % of entries with `appointmentId: null`.
UNLINKED_CODES: tuple[str, ...] = ("Ä1", "LAB-MODELL", "LAB-PROV", "PABG-ZUZ", "PABG-EA", "MAT-ABDR", "0070")

EMAIL_DOMAINS: tuple[str, ...] = (
    # RFC 2606 reserved names only, so a synthetic address can never reach a real mailbox.
    "example.com", "example.net", "example.org", "mail.example.com", "post.example.net", "web.example.org",
)
