"""The invisible text layer of the fast path: OCRmyPDF's renderer with a Latin-only font."""

from __future__ import annotations

from pathlib import Path

import pikepdf

from capture.scan import _textlayer
from capture.scan.text import words_from_pdf

HOCR = """<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title></title></head><body>
<div class='ocr_page' id='page_1'
 title='image "x.png"; bbox 0 0 2480 800; ppageno 0; scan_res 300 300'>
<div class='ocr_carea' id='block_1_1' title="bbox 100 100 2000 400">
<p class='ocr_par' id='par_1_1' lang='fra' title="bbox 100 100 2000 400">
<span class='ocr_line' id='line_1_1'
 title="bbox 100 100 2000 160; baseline 0 -12; x_size 50; x_descenders 10; x_ascenders 12">
<span class='ocrx_word' id='word_1_1' title='bbox 100 100 520 160; x_wconf 96'>Facture</span>
<span class='ocrx_word' id='word_1_2' title='bbox 560 100 1000 160'>n°&#160;F-2026</span>
<span class='ocrx_word' id='word_1_3' title='bbox 1040 100 1400 160'>1&#8239;234,56&#160;€</span>
<span class='ocrx_word' id='word_1_4' title='bbox 1440 100 2000 160; x_wconf 90'>Ωμέγα</span>
</span></p></div></div></body></html>
"""


def test_latin_and_other_scripts_land_on_their_boxes(tmp_path: Path) -> None:
    hocr = tmp_path / "page.hocr"
    hocr.write_text(HOCR, encoding="utf-8")

    pdf = _textlayer.render(hocr, tmp_path / "text.pdf").read_bytes()

    (page,) = words_from_pdf(pdf)
    words = [w.text for w in page.words]
    assert words[0] == "Facture" and "Ωμέγα" in words
    assert "F-2026" in " ".join(words) and "€" in " ".join(words)
    # At 300 dpi a pixel is 0.24 pt: "Facture" spans 100-520 px, 24-124.8 pt (the glyphs'
    # side bearings keep the extracted box a few points inside).
    first = page.words[0].bbox
    assert 24.0 <= first[0] < 28.0 and 120.0 < first[2] <= 124.8, first
    with pikepdf.open(tmp_path / "text.pdf") as text_pdf:
        fonts = list(text_pdf.pages[0].Resources.Font.values())  # type: ignore[union-attr]
        sizes = sorted(
            len(font.DescendantFonts[0].FontDescriptor.FontFile2.read_raw_bytes()) for font in fonts
        )
    # The Latin words in the reduced face; the Greek one in the full Noto Sans, whose
    # subset still carries its layout tables.
    assert len(fonts) == 2 and sizes[0] < sizes[1], sizes


def test_the_reduced_font_is_remade_if_its_file_goes(tmp_path: Path) -> None:
    hocr = tmp_path / "page.hocr"
    hocr.write_text(HOCR, encoding="utf-8")
    _textlayer.render(hocr, tmp_path / "one.pdf")
    *_, folder = _textlayer._renderer()
    (folder / "NotoSans-Latin.ttf").unlink()

    _textlayer.render(hocr, tmp_path / "two.pdf")

    (page,) = words_from_pdf((tmp_path / "two.pdf").read_bytes())
    assert page.words[0].text == "Facture"
