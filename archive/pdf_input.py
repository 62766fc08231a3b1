"""Admission checks for a PDF deposited as it is: is it a whole, readable, unencrypted PDF?

Anything refused here goes to quarantine with the reason; nothing here changes the bytes.
"""

from __future__ import annotations

import io

import pikepdf

from archive.errors import CorruptPdf, EmptyFile, EncryptedPdf, NotAPdf

PDF_MEDIA_TYPE = "application/pdf"
_EOF_WINDOW = 2048


def check_pdf(data: bytes) -> int:
    """Raise a :class:`BadInput` naming what is wrong; return the page count otherwise."""
    if not data:
        raise EmptyFile("the file is empty (0 bytes)")
    if not data[:1024].lstrip(b"\x00\t\n\r\f ").startswith(b"%PDF-"):
        raise NotAPdf("the file is not a PDF (no %PDF- header)", head=data[:8].hex())
    if b"%%EOF" not in data[-_EOF_WINDOW:]:
        raise CorruptPdf("the PDF is truncated (no %%EOF marker at its end)")
    try:
        with pikepdf.open(io.BytesIO(data), attempt_recovery=False) as pdf:
            if pdf.is_encrypted:
                raise EncryptedPdf("the PDF is encrypted; deposit it without a password")
            pages = len(pdf.pages)
            warnings = pdf.get_warnings()
    except pikepdf.PasswordError as exc:
        raise EncryptedPdf("the PDF is password-protected; deposit it without a password") from exc
    except pikepdf.PdfError as exc:
        raise CorruptPdf(f"the PDF cannot be read: {exc}") from exc
    if warnings:
        raise CorruptPdf("the PDF is damaged: " + "; ".join(warnings[:3]))
    if pages == 0:
        raise CorruptPdf("the PDF has no pages")
    return pages
