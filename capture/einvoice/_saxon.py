"""Private plumbing of the validator: running compiled Schematron (XSLT 2.0 stylesheets
that write SVRL) with SaxonC-HE, and reading their SVRL output.

One SaxonC processor per engine. Each stylesheet is compiled once, on first use, under a
lock; each thread then runs its own clone of the compiled executable, because SaxonC
executables are not thread-safe. A stylesheet's SVRL stays inside Saxon: a small stylesheet
of ours (:data:`SVRL_FINDINGS_XSLT`) keeps only the failed assertions and successful
reports, so Saxon serialises a few entries instead of tens of kilobytes of ``fired-rule``
elements that Python would parse only to skip them. Documents are handed over as nodes
parsed from an in-memory string, never as a file name or URI: file names with spaces
broke, and the bytes we validate must be exactly the ones we were given.

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

from lxml import etree

SVRL_NS = "http://purl.oclc.org/dsdl/svrl"
_FAILED_ASSERT = f"{{{SVRL_NS}}}failed-assert"
_SUCCESSFUL_REPORT = f"{{{SVRL_NS}}}successful-report"
_TEXT = f"{{{SVRL_NS}}}text"

#: Copies, from an SVRL document, what :func:`parse_svrl` reads (the failed assertions and
#: successful reports, in document order, with their attributes and the string value of
#: their first ``svrl:text``), and nothing else. Anything but an SVRL document gives no
#: output at all.
SVRL_FINDINGS_XSLT = f"""<xsl:stylesheet version="3.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:svrl="{SVRL_NS}">
  <xsl:output method="xml" indent="no" omit-xml-declaration="yes"/>
  <xsl:template match="/">
    <xsl:for-each select="svrl:schematron-output">
      <svrl:schematron-output>
        <xsl:for-each select="//(svrl:failed-assert | svrl:successful-report)">
          <xsl:copy>
            <xsl:copy-of select="@id | @flag | @location | @test"/>
            <svrl:text><xsl:value-of select="string(svrl:text[1])"/></svrl:text>
          </xsl:copy>
        </xsl:for-each>
      </svrl:schematron-output>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>"""

# Rule ids open most messages: "[BR-52]-Each Additional supporting document...".
_BRACKETED_ID = re.compile(r"^\s*\[([A-Za-z][A-Za-z0-9_.-]*)\]")
_SPACES = re.compile(r"\s+")


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
        self._svrl_findings: Any = None
        self._local = threading.local()

    def _saxon(self) -> Any:
        with self._lock:
            if self._processor is None:
                # Imported here: loading SaxonC starts its runtime, which only the processes
                # that validate should pay for.
                import saxonche

                self._processor = saxonche.PySaxonProcessor(license=False)
                self._compiler = self._processor.new_xslt30_processor()
            return self._processor

    def compile(self, stylesheet: Path) -> None:
        """Compile ``stylesheet`` now unless already done (safe to call from any thread)."""
        self._compiled_executable(stylesheet)
        self._extractor()

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
                    # Compiled from its file so that relative document() calls (the
                    # Factur-X code lists, *_codedb.xml) resolve next to the stylesheet.
                    executable = self._compiler.compile_stylesheet(stylesheet_file=str(stylesheet))
                except Exception as exc:  # SaxonC raises PySaxonApiError, not importable typed
                    raise StylesheetUnusable(f"cannot compile {stylesheet}: {exc}") from exc
                self._compiled[stylesheet] = executable
            return executable

    def _thread_executable(self, stylesheet: Path | None) -> Any:
        """This thread's clone of a compiled stylesheet (``None``: the SVRL extractor)."""
        clones: dict[Path | None, Any] | None = getattr(self._local, "clones", None)
        if clones is None:
            clones = self._local.clones = {}
        executable = clones.get(stylesheet)
        if executable is None:
            compiled = (
                self._extractor() if stylesheet is None else self._compiled_executable(stylesheet)
            )
            executable = clones[stylesheet] = compiled.clone()
        return executable

    def _extractor(self) -> Any:
        """The compiled :data:`SVRL_FINDINGS_XSLT` (ours: it cannot be missing)."""
        self._saxon()
        with self._lock:
            if self._svrl_findings is None:
                try:
                    self._svrl_findings = self._compiler.compile_stylesheet(
                        stylesheet_text=SVRL_FINDINGS_XSLT
                    )
                except Exception as exc:  # PySaxonApiError: a broken SaxonC installation
                    raise StylesheetUnusable(f"cannot compile the SVRL extractor: {exc}") from exc
            return self._svrl_findings

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
        extractor = self._thread_executable(None)
        try:
            result = executable.transform_to_value(xdm_node=document)
            node = result.head if result is not None else None
            findings = extractor.transform_to_string(xdm_node=node) if node is not None else ""
        except Exception as exc:
            raise TransformFailed(str(exc).strip()) from exc
        if not findings:
            raise TransformFailed("the stylesheet produced no SVRL output")
        return parse_svrl(findings.encode("utf-8"))


def parse_svrl(svrl: bytes) -> list[SvrlEntry]:
    """Read the failed assertions and successful reports of an SVRL document, in order."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(svrl, parser)
    entries: list[SvrlEntry] = []
    for element in root.iter(_FAILED_ASSERT, _SUCCESSFUL_REPORT):
        text_element = element.find(_TEXT)
        raw = "".join(text_element.itertext()) if text_element is not None else ""
        text = _SPACES.sub(" ", raw).strip()
        # The message's own "[BR-IC-11]" names the EN 16931 rule; the Factur-X stylesheets'
        # @id is a generated serial (FX-SCH-A-000144) that no reader knows.
        match = _BRACKETED_ID.match(text)
        rule_id = match.group(1) if match else element.get("id") or None
        entries.append(
            SvrlEntry(
                kind="assert" if element.tag == _FAILED_ASSERT else "report",
                rule_id=rule_id,
                flag=element.get("flag"),
                text=text,
                location=element.get("location", ""),
                test=element.get("test", ""),
            )
        )
    return entries
