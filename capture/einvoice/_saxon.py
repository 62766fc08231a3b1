"""Private plumbing of the validator: running compiled Schematron (XSLT 2.0 stylesheets
that write SVRL) with SaxonC-HE, and reading the findings of their SVRL.

One SaxonC processor per engine. Each stylesheet is compiled once, on first use, under a
lock; each thread then runs its own clone of the compiled executable, because SaxonC
executables are not thread-safe. A rule stylesheet is not compiled alone but imported,
unchanged, by a small runner of ours (:data:`RUNNER_XSLT`): the runner builds the rule
set's SVRL inside Saxon, as the rule set writes it, and hands Python only the failed
assertions and successful reports, six strings each, so that neither the tens of
kilobytes of ``fired-rule`` elements nor the messages go through a serialiser and a
second parser. Documents are handed over as nodes parsed from an in-memory string, never
as a file name or URI: file names with spaces broke, and the bytes we validate must be
exactly the ones we were given.

Two things make the rule sets cheaper to run without changing what they check or write:

* calls to ``document()`` with a literal argument (the Factur-X code lists,
  ``*_codedb.xml``) are evaluated once, at compile time, instead of parsing the code list
  again in every transformation;
* the stylesheets the ISO Schematron skeleton generates walk the whole document once
  more per pattern, in the default mode, from the ``xsl:apply-templates`` inside each
  ``svrl:active-pattern``. When the default mode has only the skeleton's rules (the root
  template and a ``text()`` rule that writes nothing) that walk writes nothing, so the
  runner stops it at the root element (:func:`default_mode_writes_nothing` checks the
  shape; any other stylesheet keeps its walk).

This module knows nothing of which rules apply to which invoice, and it never raises for
an invalid invoice: a stylesheet that fails at run time raises :class:`TransformFailed`,
which the caller turns into a finding.

SaxonC runs in a GraalVM isolate that does not survive ``fork()``: build and use an
engine in the process that validates (a worker), not in a parent that forks afterwards.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

from lxml import etree

SVRL_NS = "http://purl.oclc.org/dsdl/svrl"
XSL_NS = "http://www.w3.org/1999/XSL/Transform"
#: SaxonC configuration: load the code lists a stylesheet names literally when compiling it.
PRE_EVALUATE_DOC = "http://saxon.sf.net/feature/preEvaluateDocFunction"

#: The stylesheet compiled for a rule stylesheet (``{href}``, an absolute URI). Its root
#: template runs the rule set's own root template (``xsl:apply-imports``) into a temporary
#: tree and, if that tree holds an ``svrl:schematron-output`` (else it returns nothing),
#: returns ``"svrl"`` followed by six strings for each failed assertion or successful
#: report, in document order: the element's local name, ``@id``, ``@flag``,
#: ``@location``, ``@test`` (each empty when absent) and the string value of its first
#: ``svrl:text``. ``{silence_default_mode}`` is :data:`SILENT_DEFAULT_MODE` or empty.
RUNNER_XSLT = f"""<xsl:stylesheet version="3.0" xmlns:xsl="{XSL_NS}"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:svrl="{SVRL_NS}">
  <xsl:import href={{href}}/>{{silence_default_mode}}
  <xsl:template match="/" as="xs:string*">
    <xsl:variable name="svrl"><xsl:apply-imports/></xsl:variable>
    <xsl:if test="$svrl/svrl:schematron-output">
      <xsl:sequence select="'svrl'"/>
      <xsl:for-each select="$svrl//(svrl:failed-assert | svrl:successful-report)">
        <xsl:sequence select="local-name(), string(@id), string(@flag), string(@location),
            string(@test), string(svrl:text[1])"/>
      </xsl:for-each>
    </xsl:if>
  </xsl:template>
</xsl:stylesheet>"""
#: Overrides, for elements, the default mode of a rule stylesheet in which elements write
#: nothing (see :func:`default_mode_writes_nothing`): the walk stops at the root element.
SILENT_DEFAULT_MODE = """
  <xsl:template match="*"/>"""
_FIELDS = 6
_FAILED_ASSERT = "failed-assert"

# Rule ids open most messages: "[BR-52]-Each Additional supporting document...".
_BRACKETED_ID = re.compile(r"^\s*\[([A-Za-z][A-Za-z0-9_.-]*)\]")


class TransformFailed(Exception):
    """A stylesheet stopped with a dynamic error on this document (a fault of the rule
    artefact meeting an unexpected document, not a verdict on the invoice)."""


class StylesheetUnusable(Exception):
    """A stylesheet could not be read or compiled (a deployment problem)."""


@dataclass(frozen=True, slots=True)
class SvrlEntry:
    """One failed assertion or successful report of an SVRL document."""

    kind: Literal["assert", "report"]
    rule_id: str | None
    """The ``[ID]`` that opens the message, else ``@id``, else ``None``."""
    flag: str | None
    """``@flag`` as written by the stylesheet (``fatal``, ``warning``...), if any."""
    text: str
    """The message, white space normalised."""
    location: str
    """``@location``: an XPath to the node the rule fired on."""
    test: str
    """``@test``: the XPath expression that failed (or matched, for a report)."""


class SaxonEngine:
    """Compiles stylesheets once and runs them on parsed documents, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processor: Any = None
        self._compiler: Any = None
        self._compiled: dict[Path, Any] = {}
        self._local = threading.local()

    def _saxon(self) -> Any:
        with self._lock:
            if self._processor is None:
                # Imported here: loading SaxonC starts its runtime, which only the processes
                # that validate should pay for.
                import saxonche

                processor = saxonche.PySaxonProcessor(license=False)
                processor.set_configuration_property(PRE_EVALUATE_DOC, "true")
                self._compiler = processor.new_xslt30_processor()
                self._processor = processor
            return self._processor

    def compile(self, stylesheet: Path) -> None:
        """Compile ``stylesheet`` now unless already done (safe to call from any thread)."""
        self._compiled_executable(stylesheet)

    def _compiled_executable(self, stylesheet: Path) -> Any:
        executable = self._compiled.get(stylesheet)
        if executable is not None:
            return executable
        self._saxon()
        with self._lock:
            executable = self._compiled.get(stylesheet)
            if executable is None:
                if not stylesheet.is_file():
                    raise StylesheetUnusable(f"stylesheet not found: {stylesheet}")
                try:
                    silent = default_mode_writes_nothing(stylesheet)
                except (OSError, etree.XMLSyntaxError) as exc:
                    raise StylesheetUnusable(f"cannot read {stylesheet}: {exc}") from exc
                # Imported by its absolute URI, so that relative document() calls (the
                # Factur-X code lists, *_codedb.xml) resolve next to the stylesheet.
                runner = RUNNER_XSLT.format(
                    href=quoteattr(stylesheet.absolute().as_uri()),
                    silence_default_mode=SILENT_DEFAULT_MODE if silent else "",
                )
                try:
                    executable = self._compiler.compile_stylesheet(stylesheet_text=runner)
                except Exception as exc:  # SaxonC raises PySaxonApiError, not importable typed
                    raise StylesheetUnusable(f"cannot compile {stylesheet}: {exc}") from exc
                self._compiled[stylesheet] = executable
            return executable

    def _thread_executable(self, stylesheet: Path) -> Any:
        """This thread's clone of a compiled stylesheet."""
        clones: dict[Path, Any] | None = getattr(self._local, "clones", None)
        if clones is None:
            clones = self._local.clones = {}
        executable = clones.get(stylesheet)
        if executable is None:
            executable = clones[stylesheet] = self._compiled_executable(stylesheet).clone()
            # The runner returns strings: as they are, not as text nodes of a document.
            executable.set_result_as_raw_value(True)
        return executable

    def parse(self, xml_text: str) -> Any:
        """Parse a document (already checked safe by ``capture.safexml``) into a Saxon node.

        Raises :class:`TransformFailed` if Saxon cannot read it.
        """
        processor = self._saxon()
        try:
            return processor.parse_xml(xml_text=xml_text, encoding="UTF-8")
        except Exception as exc:
            raise TransformFailed(f"Saxon could not parse the document: {exc}") from exc

    def run(self, stylesheet: Path, document: Any) -> list[SvrlEntry]:
        """Run a compiled Schematron stylesheet on a parsed document; return its findings."""
        executable = self._thread_executable(stylesheet)
        try:
            result = executable.transform_to_value(xdm_node=document)
            strings = [] if result is None else [item.string_value for item in result]
        except Exception as exc:
            raise TransformFailed(str(exc).strip()) from exc
        if not strings:
            raise TransformFailed("the stylesheet produced no SVRL output")
        return svrl_entries(strings[1:])


def svrl_entries(strings: list[str]) -> list[SvrlEntry]:
    """The entries of the runner's strings (after its leading ``"svrl"``), in order."""
    entries: list[SvrlEntry] = []
    for start in range(0, len(strings) - _FIELDS + 1, _FIELDS):
        name, id_, flag, location, test, raw = strings[start : start + _FIELDS]
        # Python's white space (str.split, str.strip, re's \s): the no-break space too.
        text = " ".join(raw.split())
        # The message's own "[BR-IC-11]" names the EN 16931 rule; the Factur-X stylesheets'
        # @id is a generated serial (FX-SCH-A-000144) that no reader knows.
        match = _BRACKETED_ID.match(text)
        entries.append(
            SvrlEntry(
                kind="assert" if name == _FAILED_ASSERT else "report",
                rule_id=match.group(1) if match else id_ or None,
                flag=flag or None,
                text=text,
                location=location,
                test=test,
            )
        )
    return entries


def default_mode_writes_nothing(stylesheet: Path) -> bool:
    """Whether, in ``stylesheet``'s default mode, processing an element writes nothing.

    True for the shape the ISO Schematron skeleton generates: a single module whose
    default-mode templates are one matching ``/`` and one matching ``text()`` with an
    empty body, with no mode declarations. Elements then fall to the built-in rule, which
    only processes their children: text nodes write nothing, nor do comments and
    processing instructions, so no element ever writes anything.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    root = etree.parse(str(stylesheet), parser).getroot()
    xsl = {"xsl": XSL_NS}
    if root.xpath(
        "xsl:import | xsl:include | xsl:mode | //@default-mode | //@xsl:default-mode",
        namespaces=xsl,
    ):
        return False
    matches: list[str] = []
    for template in root.iterfind("xsl:template", xsl):
        modes = (template.get("mode") or "#default").split()
        if template.get("match") is None or not {"#default", "#all"} & set(modes):
            continue  # a named template only, or a rule of another mode
        match = " ".join(template.get("match", "").split())
        if match == "text()" and (len(template) or (template.text or "").strip()):
            return False
        matches.append(match)
    return sorted(matches) == ["/", "text()"]
