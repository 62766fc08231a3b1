"""Tesseract's hOCR drawn as an invisible text page by OCRmyPDF's own fpdf2 renderer.

Private plumbing of :mod:`capture.scan.convert`'s fast path. The renderer is the one
OCRmyPDF uses for its text layer (word boxes, baselines, per-word horizontal scaling, its
glyphless Occulta font, which its PDF/A output embeds), so extraction reads the same
geometry on both paths; tesseract's own ``textonly_pdf`` layer was measured to shift word
boxes enough to lose fields on the synthetic invoices. Only the renderer modules are
imported: never ``ocrmypdf.ocr()`` and its process-global plugin state.

Importing the renderer installs OCRmyPDF's fpdf2 patch (ToUnicode CMaps split into legal
blocks) in this process; the fonts are loaded once and shared, so rendering is serialised.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

# Any value works for a page that states none: the page is scaled onto img2pdf's page.
_DEFAULT_DPI = 300.0
_LOCK = threading.Lock()


@functools.cache
def _renderer() -> tuple[Any, Any, Any]:
    import ocrmypdf
    from ocrmypdf.font import MultiFontManager
    from ocrmypdf.fpdf_renderer import Fpdf2PdfRenderer
    from ocrmypdf.hocrtransform.hocr_parser import HocrParser

    fonts = MultiFontManager(Path(ocrmypdf.__file__).parent / "data")
    return HocrParser, Fpdf2PdfRenderer, fonts


def render(hocr: Path, output: Path) -> Path:
    """Write ``output``: one page of invisible text, sized from the hOCR page and its dpi.

    Raises ``ValueError`` (or the renderer's own errors) for an hOCR it cannot draw.
    """
    with _LOCK:
        parser, renderer, fonts = _renderer()
        page = parser(hocr).parse()
        dpi = float(page.dpi or _DEFAULT_DPI)
        renderer(page=page, dpi=dpi, multi_font_manager=fonts, invisible_text=True).render(output)
    return output
