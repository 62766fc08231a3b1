"""Tesseract's hOCR drawn as an invisible text page by OCRmyPDF's own fpdf2 renderer.

Private plumbing of :mod:`capture.scan.convert`'s fast path. The renderer is the one
OCRmyPDF uses for its text layer (word boxes, baselines, per-word horizontal scaling, its
glyphless Occulta font, which its PDF/A output embeds), so extraction reads the same
geometry on both paths; tesseract's own ``textonly_pdf`` layer was measured to shift word
boxes enough to lose fields on the synthetic invoices. Only the renderer modules are
imported: never ``ocrmypdf.ocr()`` and its process-global plugin state.

Importing the renderer installs OCRmyPDF's fpdf2 patch (ToUnicode CMaps split into legal
blocks) in this process; the fonts are loaded once and shared, so rendering is serialised.

Latin text is drawn in a reduction of OCRmyPDF's own Noto Sans, made once per process with
fontTools: the Latin, punctuation and currency blocks only, without the OpenType layout
tables (the text is invisible: nothing is shaped for show). fpdf2 parses and subsets the
font for every page it writes, and the full face (556 kB, with its layout tables) made
that most of the text layer's cost. Glyph advances are the same, so every word lands on
the same box; any other script falls back to the full Noto Sans, then to the system's
fonts, as in OCRmyPDF.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

# Any value works for a page that states none: the page is scaled onto img2pdf's page.
_DEFAULT_DPI = 300.0
_LOCK = threading.Lock()
#: Code points kept in the reduced Noto Sans: Basic Latin, Latin-1 and Latin Extended-A
#: (French, and most Western and Central European languages: é, ç, œ, ß, ł...), general
#: punctuation (’ “ ” – … ‰), currency symbols (€) and letterlike symbols (№, ™). Each glyph
#: kept is parsed again for every page: words with other letters take the full face.
_LATIN_BLOCKS = (
    (0x0020, 0x007E),
    (0x00A0, 0x017F),
    (0x2000, 0x206F),
    (0x20A0, 0x20CF),
    (0x2100, 0x214F),
)


@functools.cache
def _renderer() -> tuple[Any, Any, Any, Path]:
    import ocrmypdf
    from ocrmypdf.font import (
        BuiltinFontProvider,
        ChainedFontProvider,
        MultiFontManager,
        SystemFontProvider,
    )
    from ocrmypdf.fpdf_renderer import Fpdf2PdfRenderer
    from ocrmypdf.hocrtransform.hocr_parser import HocrParser

    bundled = Path(ocrmypdf.__file__).parent / "data"
    folder = Path(tempfile.mkdtemp(prefix="coffre-fonts-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _reduce_to_latin(bundled / "NotoSans-Regular.ttf", folder / "NotoSans-Latin.ttf")
    shutil.copyfile(bundled / "Occulta.ttf", folder / "Occulta.ttf")

    class LatinFirst(BuiltinFontProvider):
        FONT_FILES = {  # noqa: RUF012 (the base class declares it so)
            "NotoSans-Regular": "NotoSans-Latin.ttf",
            "Occulta": "Occulta.ttf",
        }

    provider = ChainedFontProvider(
        [LatinFirst(folder), BuiltinFontProvider(bundled), SystemFontProvider()]
    )
    return HocrParser, Fpdf2PdfRenderer, MultiFontManager(font_provider=provider), folder


def _reduce_to_latin(source: Path, target: Path) -> None:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF"]
    options.hinting = False
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(
        unicodes=[code for first, last in _LATIN_BLOCKS for code in range(first, last + 1)]
    )
    with TTFont(source) as font:
        subsetter.subset(font)
        font.save(target)


def render(hocr: Path, output: Path) -> Path:
    """Write ``output``: one page of invisible text, sized from the hOCR page and its dpi.

    Raises ``ValueError`` (or the renderer's own errors) for an hOCR it cannot draw.
    """
    with _LOCK:
        parser, renderer, fonts, folder = _renderer()
        if not (folder / "NotoSans-Latin.ttf").exists():  # a temp cleaner took it: remake
            _renderer.cache_clear()
            parser, renderer, fonts, folder = _renderer()
        page = parser(hocr).parse()
        dpi = float(page.dpi or _DEFAULT_DPI)
        renderer(page=page, dpi=dpi, multi_font_manager=fonts, invisible_text=True).render(output)
    return output
