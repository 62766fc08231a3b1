"""Capture's entry point for one received file: decide from the content what it is and
archive it accordingly.

- an e-invoice (Factur-X/ZUGFeRD PDF, CII, UBL): archived byte for byte, read, validated;
- any other PDF: archived as it is, with a PAdES-sealed copy;
- anything else: quarantined with the reason (scans arrive with the capture issue).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from archive import Archive, BadInput, DepositOutcome, deposit
from capture.einvoice.detect import Detected, detect_and_parse_xml
from capture.einvoice.service import receive_einvoice
from capture.einvoice.validate import Validator
from capture.errors import NotAnInvoice


def looks_like_xml(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


@dataclass(frozen=True)
class EInvoice:
    """Bytes recognised as an e-invoice, with what recognising them already read."""

    #: A PDF's detection and embedded XML (read to recognise it); ``None`` for XML, which
    #: is read, or refused with its reason, when it is received.
    reading: tuple[Detected, etree._Element] | None = None


def recognise_einvoice(data: bytes) -> EInvoice | None:
    """An :class:`EInvoice` for XML, and for a PDF that carries invoice XML (checked from
    the content); ``None`` for anything else."""
    if looks_like_xml(data):
        return EInvoice()
    if data.lstrip()[:5] != b"%PDF-":
        return None
    try:
        return EInvoice(detect_and_parse_xml(data))
    except NotAnInvoice:
        return None
    except BadInput:
        return None  # an unreadable PDF: the PDF path quarantines it with its reason


def is_einvoice(data: bytes) -> bool:
    """True for XML, and for a PDF that carries invoice XML (checked from the content)."""
    return recognise_einvoice(data) is not None


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
    einvoice = recognise_einvoice(data)
    if einvoice is not None:
        return receive_einvoice(
            archive,
            validator,
            data=data,
            filename=filename,
            company_ref=company_ref,
            actor=actor,
            source=source,
            kind=kind,
            reading=einvoice.reading,
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
