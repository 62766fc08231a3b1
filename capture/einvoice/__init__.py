"""E-invoice reading room of capture: detect a Factur-X/ZUGFeRD PDF, a CII or a UBL
document from its bytes, and read it into the shared :class:`~archive.invoice.InvoiceData`.

``read_einvoice`` is the entry point. Every failure is a capture ``BadInput`` (quarantine
with its reason), except :class:`~capture.errors.NotAnInvoice` for a PDF without invoice
XML, which the caller treats as an ordinary PDF. Validation (XSD, EN 16931 and BR-FR
rules) is ``validate.py``'s; the PDF embedding checks are in :mod:`.facturx`. Nothing here
changes the bytes received.
"""

from __future__ import annotations

from archive.invoice import InvoiceData
from capture.einvoice.cii import parse_cii
from capture.einvoice.detect import Detected, Flavor, Profile, Syntax, detect, detect_and_parse_xml
from capture.einvoice.facturx import EmbeddingProblem, check_embedding
from capture.einvoice.ubl import parse_ubl

__all__ = [
    "Detected",
    "EmbeddingProblem",
    "Flavor",
    "Profile",
    "Syntax",
    "check_embedding",
    "detect",
    "parse_cii",
    "parse_ubl",
    "read_einvoice",
]


def read_einvoice(data: bytes) -> tuple[Detected, InvoiceData]:
    """Detect and read an e-invoice; the XML is parsed once, safely."""
    detected, root = detect_and_parse_xml(data)
    if detected.xml_syntax == "cii":
        return detected, parse_cii(root)
    return detected, parse_ubl(root)
