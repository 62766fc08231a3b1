"""Test PDF maker: small, valid PDF/A-2b and plain PDFs for every suite.

Pages are images drawn with Pillow and wrapped losslessly by img2pdf, so the files are
deterministic for a given ``(text, seed)`` and carry no fonts (which keeps PDF/A simple).
This module builds test inputs only; it must not be imported by application code.
"""

from __future__ import annotations

import functools
import io
import random
import struct
from datetime import UTC, datetime

import img2pdf
import pikepdf
from pikepdf.models.metadata import decode_pdf_date
from PIL import Image, ImageCms, ImageDraw

# A fixed date keeps the output byte-stable for a given (text, seed).
_FIXED_DATE = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
_PRODUCER = "Coffre test PDF maker"


def _page_image(text: str, seed: int, size: tuple[int, int]) -> Image.Image:
    """An RGB page with ``text`` and a few seed-dependent shapes (so pages differ)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
        x1, y1 = x0 + rng.randrange(20, size[0] // 2), y0 + rng.randrange(20, size[1] // 3)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=3)
    y = 40
    for line in (text, f"seed {seed}"):
        draw.text((40, y), line, fill=(0, 0, 0))
        y += 24
    return image


def _image_pdf(text: str, seed: int, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    _page_image(text, seed, size).save(buffer, format="PNG")
    # 72 dpi makes one pixel one point: a 595×842 image is an A4 page.
    layout = img2pdf.get_fixed_dpi_layout_fun((72, 72))
    pdf = img2pdf.convert(
        buffer.getvalue(),
        layout_fun=layout,
        creationdate=_FIXED_DATE,
        moddate=_FIXED_DATE,
        producer=_PRODUCER,
        nodate=False,
    )
    if pdf is None:
        raise RuntimeError("img2pdf produced nothing")
    return bytes(pdf)


@functools.cache
def _srgb_icc() -> bytes:
    profile = bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    # lcms stamps the creation time into header bytes 24-35; the profile ID (bytes 84-99)
    # is left zero, so fixing the date keeps the profile valid and the PDF reproducible.
    date = struct.pack(">6H", *_FIXED_DATE.timetuple()[:6])
    return profile[:24] + date + profile[36:]


def _save(pdf: pikepdf.Pdf) -> bytes:
    out = io.BytesIO()
    # img2pdf writes a random /ID and qpdf keeps its first half: drop it so that
    # the content-derived /ID keeps the bytes stable for a given (text, seed).
    if "/ID" in pdf.trailer:
        del pdf.trailer["/ID"]
    pdf.save(out, deterministic_id=True, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    return out.getvalue()


def make_plain_pdf(text: str = "Facture FA-0001 — ACME SAS", *, seed: int = 0) -> bytes:
    """A valid one-page PDF that declares nothing about PDF/A."""
    return _image_pdf(text, seed, (595, 842))


def make_pdfa(text: str = "Facture FA-0001 — ACME SAS", *, seed: int = 0) -> bytes:
    """A valid one-page PDF/A-2b: image page, sRGB output intent, matching Info and XMP."""
    with pikepdf.open(io.BytesIO(_image_pdf(text, seed, (595, 842)))) as pdf:
        icc = pikepdf.Stream(pdf, _srgb_icc())
        icc.N = 3
        intent = pikepdf.Dictionary(
            Type=pikepdf.Name.OutputIntent,
            S=pikepdf.Name.GTS_PDFA1,
            OutputConditionIdentifier=pikepdf.String("sRGB"),
            Info=pikepdf.String("sRGB IEC61966-2.1"),
            DestOutputProfile=pdf.make_indirect(icc),
        )
        pdf.Root.OutputIntents = pikepdf.Array([pdf.make_indirect(intent)])
        pdf.docinfo["/Title"] = text
        pdf.docinfo["/Producer"] = _PRODUCER
        # update_docinfo mirrors XMP into Info (dates, producer, title) so both agree.
        with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=True) as meta:
            meta["pdfaid:part"] = "2"
            meta["pdfaid:conformance"] = "B"
            meta["dc:title"] = text
            meta["pdf:Producer"] = _PRODUCER
            meta["xmp:CreateDate"] = _FIXED_DATE.isoformat()
            meta["xmp:ModifyDate"] = _FIXED_DATE.isoformat()
        return _save(pdf)


def pdfa_declared(pdf_bytes: bytes) -> tuple[str, str] | None:
    """``(part, conformance)`` from the XMP ``pdfaid`` entries, or None if not declared."""
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        meta = pdf.open_metadata()
        part = meta.get("pdfaid:part")
        if not part:
            return None
        return str(part), str(meta.get("pdfaid:conformance", ""))


def pdfa_violations(pdf_bytes: bytes, flavour: str = "2b") -> list[str] | None:
    """Findings of pikepdf's PDF/A validator, or None when it is not installed."""
    try:
        from pikepdf import pdfa
    except ImportError:
        return None
    report = pdfa.validate_written(io.BytesIO(pdf_bytes), flavour)
    return [str(finding) for finding in report.findings]


def info_xmp_mismatches(pdf_bytes: bytes) -> list[str]:
    """Info entries that disagree with their XMP twins (PDF/A-2 §6.6.2.3.1, veraPDF 6.6.2.3.1).

    pikepdf's validator does not check this; signing tools are known to break it (pyHanko
    appends itself to Info /Producer but writes only itself to XMP pdf:Producer).
    """
    pairs = {"/Producer": "pdf:Producer", "/Creator": "xmp:CreatorTool", "/Title": "dc:title"}
    dates = {"/CreationDate": "xmp:CreateDate", "/ModDate": "xmp:ModifyDate"}
    problems = []
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        meta = pdf.open_metadata()
        info = pdf.docinfo
        for key, xmp_key in pairs.items():
            if key in info and str(info[key]) != str(meta.get(xmp_key, "")):
                problems.append(f"{key} {str(info[key])!r} != {xmp_key} {meta.get(xmp_key)!r}")
        for key, xmp_key in dates.items():
            if key not in info:
                continue
            info_date = decode_pdf_date(str(info[key])).astimezone(UTC)
            xmp_value = meta.get(xmp_key)
            xmp_date = datetime.fromisoformat(str(xmp_value)).astimezone(UTC) if xmp_value else None
            if xmp_date is None or abs((info_date - xmp_date).total_seconds()) >= 1:
                problems.append(f"{key} {info_date} != {xmp_key} {xmp_value}")
    return problems
