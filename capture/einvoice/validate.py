"""E-invoice validation room of capture: checks a received e-invoice against its XSD, the
EN 16931 business rules, the French reform rules (BR-FR) and, for a PDF, the Factur-X
embedding conventions, and returns a :class:`ValidationReport`.

An invalid invoice is a report with findings, never an exception: Coffre archives it and
flags it for review. Only bytes that cannot be read at all raise (the capture ``BadInput``
of detection, before any rule runs), and a deployment without the rule artefacts raises
:class:`RulesetUnavailable`. This module never changes the bytes it is given.

Which rules apply (paths in ``_rulesets.py``, relative to the shared corpora directory):

============================  ==========================  ================================
syntax / profile (BT-24)      XSD                         layer ``en16931``
============================  ==========================  ================================
UBL Invoice / CreditNote      UBL 2.1 maindoc             CEN EN 16931 UBL
UBL EXTENDED-CTC-FR           UBL 2.1 maindoc             FNFE EXTENDED-CTC-FR UBL
CII EN16931, BASIC, any CIUS  CEN CII D16B                CEN EN 16931 CII
CII EXTENDED                  Factur-X 1.09 EXTENDED      Factur-X 1.09 EXTENDED
CII EXTENDED-CTC-FR           CII D22B                    FNFE EXTENDED-CTC-FR CII
CII BASIC WL                  Factur-X 1.09 BASIC WL      Factur-X 1.09 BASIC WL
CII MINIMUM                   Factur-X 1.09 MINIMUM       Factur-X 1.09 MINIMUM
ZUGFeRD 1 (2014)              ZUGFeRD 1.0                 none (predates EN 16931)
============================  ==========================  ================================

* MINIMUM and BASIC WL are not EN 16931 invoices (no lines; MINIMUM lacks most of the
  model), so the CEN rules would fail them by construction (BR-16...). They are checked
  against their Factur-X profile XSD and profile schematron, which restate the EN 16931
  rules that hold for the profile. EXTENDED is only *conformant* (a superset: sub-lines,
  extra codes), and the CEN rules reject legitimate EXTENDED features, so it gets the
  Factur-X EXTENDED schematron, which carries the EN 16931 rules adapted to it.
* BASIC is an EN 16931-compliant subset: the CEN XSD and rules apply as to EN16931. The
  CEN D16B XSD accepts every CII profile, so the stricter Factur-X profile XSDs are used
  where the profile is not EN 16931 (MINIMUM, BASIC WL, EXTENDED).
* A CIUS (XRechnung, Peppol BIS) restricts EN 16931: the CEN rules apply; the CIUS's own
  national rules (BR-DE-..., PEPPOL-...) are not run. An unknown BT-24 gets the CEN rules
  and a note in the report.
* Flags are the rules' own. The Factur-X profile schematrons carry none: a failed assertion
  counts as ``error``, a successful report as ``warning``. XSD violations are ``fatal``.

BR-FR (layer ``br-fr``), "FATAL" mode of BR-FR Flux 2 v1.4.0 (the mode for reception from
1 September 2026), runs on every CII and UBL invoice except MINIMUM (not a reform profile;
FNFE publishes no BR-FR for it) and ZUGFeRD 1. Its findings are *binding* (fatal ones make
the invoice invalid) only when the invoice falls under the French e-invoicing mandate:

* it declares the French CTC profile EXTENDED-CTC-FR, or
* its business process (BT-23) is a French billing framework code (B1, S1, M1...), or
* its seller and buyer are both in France (country, else VAT number prefix) and it was
  issued on or after the reform's start (1 September 2026; ``french_ctc_start``).

Otherwise BR-FR still runs and is reported, with ``binding=False``: a German supplier, a
cross-border sale (e-reporting, not e-invoicing) or an invoice issued before the reform
cannot be held to XP Z12-012, and BR-FR fails such invoices by construction (SIREN,
billing framework...).

The Factur-X layer (``facturx``) reports, for a PDF, the breaches of the embedding and
XMP conventions found by :func:`capture.einvoice.facturx.check_embedding`, each an
``error``. PDF/A conformance itself is not checked here.

A rule set that stops with a dynamic error on a document (BR-FR 1.4.0 does on two billing
periods) becomes a ``RULESET-RUNTIME-ERROR`` finding of its layer, flagged ``error``: the
rules were not all checked, so a person should look.

Stylesheets and schemas are compiled once per :class:`Validator`, lazily and under a lock
(:meth:`Validator.warm_up` compiles them all ahead); documents go to Saxon as parsed
nodes, never as file URIs. Build the validator in the process that uses it (SaxonC does
not survive ``fork()``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args

from lxml import etree

from capture.einvoice._mandate import FRENCH_CTC_START, french_mandate
from capture.einvoice._rulesets import (
    RuleProfile,
    RuleSet,
    SchemaCache,
    Syntax,
    all_artefacts,
    profile_of,
    ruleset_for,
    syntax_of,
)
from capture.einvoice._saxon import (
    SaxonEngine,
    StylesheetUnusable,
    SvrlEntry,
    TransformFailed,
)
from capture.einvoice.detect import Detected, detect_and_parse_xml
from capture.einvoice.facturx import check_embedding, embedding_problems
from capture.errors import CaptureError
from capture.safexml import parse_xml

__all__ = [
    "ALL_LAYERS",
    "FRENCH_CTC_START",
    "Finding",
    "Flag",
    "Layer",
    "RulesetUnavailable",
    "ValidationReport",
    "Validator",
    "default_corpora_dir",
]

Layer = Literal["xsd", "en16931", "br-fr", "facturx"]
Flag = Literal["fatal", "error", "warning", "information"]
ALL_LAYERS: frozenset[Layer] = frozenset(get_args(Layer))
_BLOCKING: frozenset[Flag] = frozenset({"fatal", "error"})

# Prefixes for readable locations in findings.
_NAMESPACES = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "ext": "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2",
    "ubl": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "cn": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
}
_PREFIXES = {uri: prefix for prefix, uri in _NAMESPACES.items()}
# SVRL locations spell each step "*:Name[namespace-uri()='uri']" or "Q{uri}Name".
_LOCATION_STEP = re.compile(r"\*:([\w.-]+)\[namespace-uri\(\)='([^']*)'\]|Q\{([^}]*)\}([\w.-]+)")


class RulesetUnavailable(CaptureError):
    """A rule artefact (XSD, stylesheet) is missing or does not compile: a deployment
    problem, not a property of any invoice. ``data["path"]`` names the file."""

    code = "ruleset_unavailable"


@dataclass(frozen=True)
class Finding:
    """One rule an invoice breaks (or a remark about it)."""

    layer: Layer
    """Which check found it: ``xsd``, ``en16931`` (the profile's business rules),
    ``br-fr`` (French reform rules) or ``facturx`` (PDF embedding and XMP)."""
    rule_id: str
    """The rule's identifier as its authors wrote it (``BR-CO-15``, ``BR-FR-10_BT-30``,
    ``CII-SR-439``), the libxml2 error type for the XSD (``SCHEMAV_ELEMENT_CONTENT``), or
    the embedding check's code."""
    flag: Flag
    """Severity as the rule states it; ``fatal`` and ``error`` make an invoice invalid."""
    message: str
    location: str
    """Where in the document: an XPath with the usual prefixes (plus the line for the
    XSD); empty for the PDF checks."""
    binding: bool = True
    """False for rules reported for information only (BR-FR on an invoice outside the
    French mandate): they never make the invoice invalid."""

    @property
    def blocking(self) -> bool:
        """Whether this finding makes the invoice invalid."""
        return self.binding and self.flag in _BLOCKING


@dataclass(frozen=True)
class ValidationReport:
    """The verdict on one e-invoice, kept with it in the archive."""

    syntax: str
    """As detected: ``facturx-pdf``, ``cii``, ``ubl-invoice``, ``ubl-creditnote``."""
    profile: str | None
    """As detected from BT-24 (``EN16931``, ``BASIC WL``...); ``None`` if unknown."""
    findings: tuple[Finding, ...]
    rulesets: tuple[str, ...] = ()
    """The artefacts applied, as paths relative to the corpora directory."""
    french_rules_binding: bool | None = None
    """Whether the BR-FR findings count (see the module docstring); ``None`` if BR-FR
    was not run."""
    notes: tuple[str, ...] = field(default=())
    """Why rules were or were not applied, in words, for the reviewer."""

    @property
    def valid(self) -> bool:
        """No binding finding flagged fatal or error."""
        return not any(f.blocking for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings that make the invoice invalid."""
        return tuple(f for f in self.findings if f.blocking)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["valid"] = self.valid
        return data

    def to_json(self) -> str:
        """The report as JSON (UTF-8 text, stable key order), for the archive."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)


def default_corpora_dir() -> Path:
    """``COFFRE_CORPORA_DIR``, else ``../shared/corpora`` beside the repository."""
    configured = os.environ.get("COFFRE_CORPORA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


class Validator:
    """Validates e-invoices; one per process, shared by its threads.

    Construction only checks that the artefacts exist; each is compiled on first use
    (about 0.1-2 s per stylesheet), or all at once by :meth:`warm_up`.
    """

    def __init__(
        self, corpora_dir: Path | None = None, *, french_ctc_start: date = FRENCH_CTC_START
    ):
        self.corpora_dir = (corpora_dir or default_corpora_dir()).resolve()
        self.french_ctc_start = french_ctc_start
        missing = [p for p in all_artefacts() if not (self.corpora_dir / p).is_file()]
        if missing:
            raise RulesetUnavailable(
                f"{len(missing)} validation artefact(s) missing under {self.corpora_dir}, "
                f"first {missing[0]!r}; set COFFRE_CORPORA_DIR to the shared corpora",
                path=str(self.corpora_dir / missing[0]),
            )
        self._saxon = SaxonEngine()
        self._schemas = SchemaCache()

    def warm_up(self) -> None:
        """Compile every schema and stylesheet now (at worker start, or in a benchmark)."""
        for relative in all_artefacts():
            path = self.corpora_dir / relative
            if path.suffix == ".xsd":
                self._compile_schema(path)
            else:
                self._compile_stylesheet(path)

    def validate(
        self,
        data: bytes,
        *,
        detected: Detected | None = None,
        root: etree._Element | None = None,
        layers: Collection[Layer] = ALL_LAYERS,
    ) -> ValidationReport:
        """Validate the e-invoice received as ``data`` (a Factur-X PDF, CII or UBL XML).

        Pass ``detected`` (and the parsed ``root`` of ``detected.xml``) when detection
        already ran, so nothing is parsed twice. ``layers`` restricts the checks (for
        benchmarks and tests). Raises only a capture ``BadInput`` when ``data`` cannot be
        read at all (from detection), or :class:`RulesetUnavailable`.
        """
        if detected is None:
            detected, root = detect_and_parse_xml(data)
        elif root is None:
            root = parse_xml(detected.xml)
        findings: list[Finding] = []
        notes: list[str] = []
        applied: list[str] = []
        brfr_binding: bool | None = None

        syntax = syntax_of(root)
        if syntax is None:  # detection refuses these; kept for callers passing a root
            findings.append(
                Finding("xsd", "COFFRE-ROOT", "fatal", "the root element is not an invoice", "/")
            )
        else:
            profile = profile_of(syntax, detected.guideline_id or "")
            rules = ruleset_for(syntax, profile)
            notes.extend(_profile_notes(detected, profile))
            if "xsd" in layers:
                applied.append(rules.xsd)
                findings.extend(self._xsd_findings(rules, root))
            if "en16931" in layers or "br-fr" in layers:
                brfr_binding = self._rule_findings(
                    rules, syntax, profile, root, layers, findings, notes, applied
                )
        if "facturx" in layers and detected.syntax == "facturx-pdf":
            findings.extend(_embedding_findings(data, detected, root))
        return ValidationReport(
            syntax=str(detected.syntax),
            profile=detected.profile,
            findings=tuple(findings),
            rulesets=tuple(applied),
            french_rules_binding=brfr_binding,
            notes=tuple(notes),
        )

    # -- layers ---------------------------------------------------------------------

    def _xsd_findings(self, rules: RuleSet, root: etree._Element) -> list[Finding]:
        schema = self._compile_schema(self.corpora_dir / rules.xsd)
        return [
            Finding(
                layer="xsd",
                rule_id=error.type_name,
                flag="fatal",
                message=error.message,
                location=f"{_short_location(error.path)} (line {error.line})".lstrip(),
            )
            for error in self._schemas.validate(schema, root)
        ]

    def _rule_findings(
        self,
        rules: RuleSet,
        syntax: Syntax,
        profile: RuleProfile,
        root: etree._Element,
        layers: Collection[Layer],
        findings: list[Finding],
        notes: list[str],
        applied: list[str],
    ) -> bool | None:
        """Run the business rules and BR-FR; return whether BR-FR binds (None: not run)."""
        runs: list[tuple[Layer, str, bool]] = []
        brfr_binding: bool | None = None
        if "en16931" in layers:
            if rules.business is None:
                notes.append("no business rules exist for ZUGFeRD 1 (it predates EN 16931)")
            else:
                runs.append(("en16931", rules.business, True))
        if "br-fr" in layers:
            if rules.brfr is None:
                notes.append(f"BR-FR not run: the French reform defines no rules for {profile}")
            else:
                brfr_binding, reason = french_mandate(root, syntax, profile, self.french_ctc_start)
                notes.append(reason)
                runs.append(("br-fr", rules.brfr, brfr_binding))
        if not runs:
            return brfr_binding
        stylesheets = [self._compile_stylesheet(self.corpora_dir / path) for _, path, _ in runs]
        try:
            document = self._saxon.parse(etree.tostring(root, encoding="unicode"))
        except TransformFailed as exc:
            for layer, path, binding in runs:
                findings.append(_runtime_finding(layer, path, exc, binding))
            return brfr_binding
        for (layer, path, binding), stylesheet in zip(runs, stylesheets, strict=True):
            applied.append(path)
            try:
                entries = self._saxon.run(stylesheet, document)
            except TransformFailed as exc:
                findings.append(_runtime_finding(layer, path, exc, binding))
                continue
            findings.extend(_svrl_finding(layer, entry, binding) for entry in entries)
        return brfr_binding

    # -- compilation ------------------------------------------------------------------

    def _compile_schema(self, path: Path) -> Path:
        try:
            self._schemas.compile(path)
        except (OSError, etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
            raise RulesetUnavailable(f"cannot load the XSD {path}: {exc}", path=str(path)) from exc
        return path

    def _compile_stylesheet(self, path: Path) -> Path:
        try:
            self._saxon.compile(path)
        except StylesheetUnusable as exc:
            raise RulesetUnavailable(str(exc), path=str(path)) from exc
        return path


# -- findings -------------------------------------------------------------------------


def _svrl_finding(layer: Layer, entry: SvrlEntry, binding: bool) -> Finding:
    return Finding(
        layer=layer,
        rule_id=entry.rule_id or _unnamed_rule_id(entry),
        flag=_flag(entry),
        message=entry.text,
        location=_short_location(entry.location),
        binding=binding,
    )


def _flag(entry: SvrlEntry) -> Flag:
    raw = (entry.flag or "").strip().lower()
    if raw in ("fatal", "error", "warning"):
        return raw  # type: ignore[return-value]
    if raw in ("information", "info"):
        return "information"
    # Schematron without flags (the Factur-X profile rules): a failed assertion is a
    # broken rule; a successful report marks something unexpected but tolerated.
    return "error" if entry.kind == "assert" else "warning"


def _unnamed_rule_id(entry: SvrlEntry) -> str:
    # The Factur-X profile schematrons leave their structural checks ("Element 'ram:ID'
    # must occur exactly 1 times.") unnamed; a short stable id keeps them groupable.
    digest = hashlib.sha256(entry.test.encode("utf-8")).hexdigest()[:8]
    return f"UNNAMED-{digest}"


def _runtime_finding(layer: Layer, stylesheet: str, exc: Exception, binding: bool) -> Finding:
    return Finding(
        layer=layer,
        rule_id="RULESET-RUNTIME-ERROR",
        flag="error",
        message=(
            f"the rule set {Path(stylesheet).name} stopped on this document, so its rules "
            f"were not all checked: {exc}"
        ),
        location="",
        binding=binding,
    )


def _embedding_findings(data: bytes, detected: Detected, root: etree._Element) -> Iterable[Finding]:
    # What detection read of the PDF serves again: the PDF is not opened a second time.
    problems = (
        check_embedding(data)
        if detected.pdf is None
        else embedding_problems(detected.pdf, xml_root=root)
    )
    for problem in problems:
        yield Finding(
            layer="facturx",
            rule_id=problem.code,
            flag="error",
            message=problem.message,
            location="",
        )


def _short_location(location: str) -> str:
    def step(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        uri = match.group(2) if match.group(1) else match.group(3)
        prefix = _PREFIXES.get(uri)
        return f"{prefix}:{name}" if prefix else match.group(0)

    return _LOCATION_STEP.sub(step, location)


def _profile_notes(detected: Detected, profile: RuleProfile) -> list[str]:
    notes = []
    if detected.profile is None and profile is RuleProfile.EN16931:
        notes.append(
            f"the specification identifier (BT-24) {detected.guideline_id!r} names no profile "
            "Coffre knows; the EN 16931 rules were applied"
        )
    if detected.profile == "XRECHNUNG":
        notes.append("XRechnung: the EN 16931 rules were applied, not the German CIUS rules")
    return notes
