"""The Saxon plumbing of the validator: the findings Saxon hands back (through the SVRL
extractor) are exactly those a full read of the SVRL document gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from capture.einvoice._saxon import SVRL_NS, SaxonEngine, TransformFailed, parse_svrl

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

NOT_SVRL = """<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><report/></xsl:template>
</xsl:stylesheet>"""

FAILING = """<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><xsl:value-of select="error()"/></xsl:template>
</xsl:stylesheet>"""


@pytest.fixture(scope="module")
def engine() -> SaxonEngine:
    return SaxonEngine()


def _stylesheet(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_run_gives_what_a_full_read_of_the_svrl_gives(engine: SaxonEngine, tmp_path: Path) -> None:
    path = _stylesheet(tmp_path, "rules.xsl", SCHEMATRON_LIKE)
    engine.compile(path)
    document = engine.parse("<invoice><line/></invoice>")

    entries = engine.run(path, document)

    full = engine._thread_executable(path).transform_to_string(xdm_node=document)
    assert entries == parse_svrl(full.encode("utf-8"))
    assert [(e.kind, e.rule_id, e.flag) for e in entries] == [
        ("assert", "BR-CO-15", "fatal"),
        ("report", None, None),
        ("assert", None, None),
    ]
    # White space (the no-break space included) normalised as parse_svrl always has.
    assert entries[0].text == "[BR-CO-15]-Invoice total amount with VAT : wrong"
    assert entries[1].location == "/invoice[1]/line[1]"
    assert entries[1].text == ""


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
