"""The invisible OCR text grafted onto img2pdf's pages, then declared PDF/A-2b with pikepdf.

Private plumbing of :mod:`capture.scan.convert`'s fast path, doing what OCRmyPDF's
sandwich renderer and its internal PDF/A backend do, without OCRmyPDF's process:

- each text-only page (:mod:`._textlayer`) becomes a Form XObject drawn after the page
  image, scaled onto the image page's MediaBox (the text page is sized from the resolution
  tesseract read or guessed, which need not be the one img2pdf used); the image XObject, its
  dictionary and its stream are not touched;
- :func:`pikepdf.pdfa.prepare` adds the sRGB output intent, rewrites the XMP packet
  (``pdfaid`` part 2, conformance B, dates and producer agreeing with the Info
  dictionary) and makes the structural repairs PDF/A needs, never changing page content;
- the file is written with the settings pikepdf pins for the flavour.

It does not validate: the caller runs the validator on the bytes returned, as it does for
every conversion, and falls back to OCRmyPDF when they do not pass.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pikepdf
from pikepdf.pdfa import prepare, resolve_save_kwargs

FLAVOUR = "2b"
_TEXT_LAYER = pikepdf.Name("/OCRText")


def build(image_pdf: bytes, text_layers: Sequence[Path | None]) -> bytes:
    """``image_pdf`` with ``text_layers[i]`` (a one-page text-only PDF) on page ``i``.

    ``None`` leaves a page without text. Raises ``ValueError`` when a text layer is not
    one page, and ``pikepdf.PdfError`` when a file cannot be read.
    """
    with pikepdf.open(io.BytesIO(image_pdf)) as pdf:
        if len(pdf.pages) != len(text_layers):
            raise ValueError(f"{len(text_layers)} text layers for a PDF of {len(pdf.pages)} pages")
        for page, layer in zip(pdf.pages, text_layers, strict=True):
            if layer is not None:
                with pikepdf.open(layer) as text_pdf:
                    _graft(pdf, page, text_pdf)
        prepare(pdf, FLAVOUR, output_intent="sRGB")
        output = io.BytesIO()
        pdf.save(output, **resolve_save_kwargs(FLAVOUR))
        return output.getvalue()


def _graft(pdf: pikepdf.Pdf, page: pikepdf.Page, text_pdf: pikepdf.Pdf) -> None:
    if len(text_pdf.pages) != 1:
        raise ValueError(f"the text layer has {len(text_pdf.pages)} pages instead of 1")
    text_page = text_pdf.pages[0]
    source = _box(text_page.mediabox)
    target = _box(page.mediabox)
    text_width, text_height = source[2] - source[0], source[3] - source[1]
    if text_width <= 0 or text_height <= 0:
        raise ValueError("the text layer's page has no size")
    form = pdf.copy_foreign(text_page.as_form_xobject())
    sx = (target[2] - target[0]) / text_width
    sy = (target[3] - target[1]) / text_height
    tx, ty = target[0] - source[0] * sx, target[1] - source[1] * sy
    name = page.add_resource(form, pikepdf.Name.XObject, _TEXT_LAYER, replace_existing=False)
    # Whatever the page's own content leaves on the graphics state stack or in the CTM,
    # the text is drawn in the page's default space.
    page.contents_add(pdf.make_stream(b"q\n"), prepend=True)
    draw = f"Q\nq {sx:.6f} 0 0 {sy:.6f} {tx:.6f} {ty:.6f} cm {name} Do Q\n"
    page.contents_add(pdf.make_stream(draw.encode("ascii")), prepend=False)


def _box(box: pikepdf.Array) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(value) for value in box)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
