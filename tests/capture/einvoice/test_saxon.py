"""The Saxon plumbing of the validator: the findings Saxon hands back (through the runner
that imports each rule stylesheet) are exactly those a full read of the stylesheet's own
SVRL output gives, whatever shortcuts the runner takes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import saxonche
from lxml import etree

from capture.einvoice._saxon import (
    SVRL_NS,
    SaxonEngine,
    SvrlEntry,
    TransformFailed,
    default_mode_writes_nothing,
)

# A stand-in for a compiled Schematron: SVRL with the noise real rule sets write (active
# patterns, fired rules), entries in nested places, attributes left out, a message with
# markup, a no-break space and line breaks inside.
SCHEMATRON_LIKE = f"""<xsl:stylesheet version="2.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:svrl="{SVRL_NS}">
  <xsl:template match="/">
    <svrl:schematron-output title="test">
      <svrl:active-pattern id="p1"/>
      <svrl:fired-rule context="/invoice"/>
      <svrl:failed-assert id="R-1" flag="fatal" location="/invoice[1]" test="total = sum">
        <svrl:text>[BR-CO-15]-Invoice total <b>amount</b> with VAT&#160;:
            wrong</svrl:text>
        <svrl:text>a second text is ignored</svrl:text>
      </svrl:failed-assert>
      <svrl:fired-rule context="/invoice/line"/>
      <svrl:group>
        <svrl:successful-report location="/invoice[1]/line[1]" test="note">
          <svrl:diagnostic-reference diagnostic="d1">not a message</svrl:diagnostic-reference>
        </svrl:successful-report>
      </svrl:group>
      <svrl:failed-assert test="x"><svrl:text>Element 'ram:ID' must occur</svrl:text>
      </svrl:failed-assert>
      <svrl:fired-rule context="/invoice"/>
    </svrl:schematron-output>
  </xsl:template>
</xsl:stylesheet>"""

# The shape the ISO Schematron skeleton generates: each pattern walks the document in its
# own mode, and its svrl:active-pattern walks it again in the default mode, where only a
# silent text() rule exists. The code list is read with document(), relative to the
# stylesheet, and quoted whole in a message.
SKELETON_LIKE = f"""<xsl:stylesheet version="2.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:svrl="{SVRL_NS}">
  <xsl:template match="text()" priority="-1"/>
  <xsl:template match="/">
    <svrl:schematron-output>
      <svrl:active-pattern id="codes"><xsl:apply-templates/></svrl:active-pattern>
      <xsl:apply-templates select="/" mode="M1"/>
    </svrl:schematron-output>
  </xsl:template>
  <xsl:template match="line" priority="1000" mode="M1">
    <svrl:fired-rule context="line"/>
    <xsl:if test="not(document('codes.xml')/codes/code[. = current()/@unit])">
      <svrl:failed-assert test="unit in codes" flag="error" location="/invoice/line">
        <svrl:text>[BR-UNIT] unit <xsl:value-of select="@unit"/> is not one of
          <xsl:value-of select="document('codes.xml')"/>
        </svrl:text>
      </svrl:failed-assert>
    </xsl:if>
    <xsl:apply-templates select="*" mode="M1"/>
  </xsl:template>
  <xsl:template match="text()" priority="-1" mode="M1"/>
  <xsl:template match="@*|node()" priority="-2" mode="M1">
    <xsl:apply-templates select="*" mode="M1"/>
  </xsl:template>
</xsl:stylesheet>"""
CODES = "<codes><code>C62</code><code>HUR</code></codes>"

# Not the skeleton's shape: its default mode writes a finding for an element, so the walk
# from svrl:active-pattern must not be cut short.
DEFAULT_MODE_WRITES = f"""<xsl:stylesheet version="2.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:svrl="{SVRL_NS}">
  <xsl:template match="text()" priority="-1"/>
  <xsl:template match="/">
    <svrl:schematron-output>
      <svrl:active-pattern id="lines"><xsl:apply-templates/></svrl:active-pattern>
    </svrl:schematron-output>
  </xsl:template>
  <xsl:template match="line">
    <svrl:failed-assert test="false()" location="/invoice/line">
      <svrl:text>[BR-LINE] a line</svrl:text>
    </svrl:failed-assert>
  </xsl:template>
</xsl:stylesheet>"""

NOT_SVRL = """<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><report/></xsl:template>
</xsl:stylesheet>"""

FAILING = """<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><xsl:value-of select="error()"/></xsl:template>
</xsl:stylesheet>"""

INVOICE = '<invoice><line unit="C62"/><line unit="XXX"/></invoice>'


@pytest.fixture(scope="module")
def engine() -> SaxonEngine:
    return SaxonEngine()


def _stylesheet(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _full_read(stylesheet: Path, document: str) -> list[SvrlEntry]:
    """The findings of the stylesheet's whole SVRL output, compiled and run plainly (a
    processor of its own, no runner), serialised and read with lxml: the reading the
    engine must reproduce."""
    processor = saxonche.PySaxonProcessor(license=False)
    executable = processor.new_xslt30_processor().compile_stylesheet(
        stylesheet_file=str(stylesheet)
    )
    svrl = executable.transform_to_string(xdm_node=processor.parse_xml(xml_text=document))
    entries = []
    for element in etree.fromstring(svrl.encode("utf-8")).iter(
        f"{{{SVRL_NS}}}failed-assert", f"{{{SVRL_NS}}}successful-report"
    ):
        text_element = element.find(f"{{{SVRL_NS}}}text")
        raw = "".join(text_element.itertext()) if text_element is not None else ""
        text = re.sub(r"\s+", " ", raw).strip()
        bracketed = re.match(r"^\s*\[([A-Za-z][A-Za-z0-9_.-]*)\]", text)
        entries.append(
            SvrlEntry(
                kind="assert" if element.tag.endswith("failed-assert") else "report",
                rule_id=bracketed.group(1) if bracketed else element.get("id") or None,
                flag=element.get("flag") or None,
                text=text,
                location=element.get("location", ""),
                test=element.get("test", ""),
            )
        )
    return entries


def test_run_gives_what_a_full_read_of_the_svrl_gives(engine: SaxonEngine, tmp_path: Path) -> None:
    path = _stylesheet(tmp_path, "rules.xsl", SCHEMATRON_LIKE)
    engine.compile(path)
    entries = engine.run(path, engine.parse("<invoice><line/></invoice>"))

    assert entries == _full_read(path, "<invoice><line/></invoice>")
    assert [(e.kind, e.rule_id, e.flag) for e in entries] == [
        ("assert", "BR-CO-15", "fatal"),
        ("report", None, None),
        ("assert", None, None),
    ]
    # White space (the no-break space included) normalised as the SVRL reader always has.
    assert entries[0].text == "[BR-CO-15]-Invoice total amount with VAT : wrong"
    assert entries[1].location == "/invoice[1]/line[1]"
    assert entries[1].text == ""


def test_a_skeleton_stylesheet_gives_the_same_findings_with_its_code_list(
    engine: SaxonEngine, tmp_path: Path
) -> None:
    # A folder name with a space and an ampersand: the runner imports the stylesheet by URI.
    folder = tmp_path / "rules & lists"
    path = _stylesheet(folder, "skeleton.xsl", SKELETON_LIKE)
    _stylesheet(folder, "codes.xml", CODES)
    assert default_mode_writes_nothing(path)
    engine.compile(path)
    entries = engine.run(path, engine.parse(INVOICE))

    assert entries == _full_read(path, INVOICE)
    assert [(e.rule_id, e.flag, e.text) for e in entries] == [
        ("BR-UNIT", "error", "[BR-UNIT] unit XXX is not one of C62HUR")
    ]


def test_a_default_mode_that_writes_is_walked_in_full(engine: SaxonEngine, tmp_path: Path) -> None:
    path = _stylesheet(tmp_path, "walks.xsl", DEFAULT_MODE_WRITES)
    assert not default_mode_writes_nothing(path)
    engine.compile(path)
    entries = engine.run(path, engine.parse(INVOICE))

    assert entries == _full_read(path, INVOICE)
    assert [e.rule_id for e in entries] == ["BR-LINE", "BR-LINE"]


def test_only_the_skeleton_shape_counts_as_a_silent_default_mode(tmp_path: Path) -> None:
    assert not default_mode_writes_nothing(_stylesheet(tmp_path, "a.xsl", SCHEMATRON_LIKE))
    writes_text = SKELETON_LIKE.replace(
        '<xsl:template match="text()" priority="-1"/>',
        '<xsl:template match="text()" priority="-1"><xsl:value-of select="."/></xsl:template>',
        1,
    )
    assert not default_mode_writes_nothing(_stylesheet(tmp_path, "b.xsl", writes_text))
    includes = SKELETON_LIKE.replace(
        '<xsl:template match="text()" priority="-1"/>',
        '<xsl:template match="text()" priority="-1"/><xsl:include href="more.xsl"/>',
        1,
    )
    assert not default_mode_writes_nothing(_stylesheet(tmp_path, "c.xsl", includes))


def test_output_that_is_not_svrl_is_a_failed_transform(engine: SaxonEngine, tmp_path: Path) -> None:
    path = _stylesheet(tmp_path, "other.xsl", NOT_SVRL)
    engine.compile(path)

    with pytest.raises(TransformFailed, match="no SVRL output"):
        engine.run(path, engine.parse("<invoice/>"))


def test_a_dynamic_error_is_a_failed_transform(engine: SaxonEngine, tmp_path: Path) -> None:
    path = _stylesheet(tmp_path, "failing.xsl", FAILING)
    engine.compile(path)

    with pytest.raises(TransformFailed):
        engine.run(path, engine.parse("<invoice/>"))
