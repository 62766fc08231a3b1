"""Capture's entry point for one received file: decide from the content what it is and
archive it accordingly.

- an e-invoice (Factur-X/ZUGFeRD PDF, CII, UBL): archived byte for byte, read, validated;
- any other PDF: archived as it is, with a PAdES-sealed copy;
- anything else: quarantined with the reason (scans arrive with the capture issue).
"""

from __future__ import annotations

from collections.abc import Callable

from archive import Archive, BadInput, DepositOutcome, deposit
from capture.einvoice.detect import detect
from capture.einvoice.service import receive_einvoice
from capture.einvoice.validate import Validator
from capture.errors import NotAnInvoice


def looks_like_xml(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


def is_einvoice(data: bytes) -> bool:
    """True for XML, and for a PDF that carries invoice XML (checked from the content)."""
    if looks_like_xml(data):
        return True
    if data.lstrip()[:5] != b"%PDF-":
        return False
    try:
        detect(data)
    except NotAnInvoice:
        return False
    except BadInput:
        return False  # an unreadable PDF: the PDF path quarantines it with its reason
    return True


def receive_file(
    archive: Archive,
    validator: Callable[[], Validator],
    *,
    data: bytes,
    filename: str | None,
    company_ref: str | None,
    actor: str,
    source: str,
    kind: str | None = None,
) -> DepositOutcome:
    if is_einvoice(data):
        return receive_einvoice(
            archive,
            validator,
            data=data,
            filename=filename,
            company_ref=company_ref,
            actor=actor,
            source=source,
            kind=kind,
        )
    return deposit(
        archive,
        data=data,
        filename=filename,
        company_ref=company_ref,
        actor=actor,
        source=source,
        **({"kind": kind} if kind else {}),
    )
