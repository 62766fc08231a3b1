"""E-invoice use cases: admit a received e-invoice into the archive, record the lifecycle
statuses its platform sends later.

The received bytes are archived exactly (detached seal + RFC 3161 token, never signed in
place). The parsed invoice data, the validation report and, for a Factur-X PDF, the
embedded XML are kept beside it as derived artifacts. An invalid invoice is archived and
flagged for review; one that cannot be read at all goes to quarantine.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lxml import etree

from archive import Archive, DepositOutcome, Derived, DocumentKind, Flag, Submission, receive
from archive.canonical import to_jsonable
from archive.errors import ArchiveError
from archive.models import LifecycleStatus
from archive.service import get_document
from capture.einvoice.cii import parse_cii
from capture.einvoice.detect import Detected, detect_and_parse_xml
from capture.einvoice.ubl import parse_ubl
from capture.einvoice.validate import RulesetUnavailable, ValidationReport, Validator
from storage import session_scope

XML_MEDIA_TYPE = "application/xml"
PDF_MEDIA_TYPE = "application/pdf"
#: BT-3 codes of credit notes (UNTDID 1001).
CREDIT_NOTE_CODES = frozenset(
    {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}
)

#: CDAR lifecycle statuses (XP Z12-012, French e-invoicing reform).
LIFECYCLE_LABELS: dict[int, str] = {
    200: "Déposée",
    201: "Émise par la plateforme",
    202: "Reçue par la plateforme",
    203: "Mise à disposition",
    204: "Prise en charge",
    205: "Approuvée",
    206: "Approuvée partiellement",
    207: "En litige",
    208: "Suspendue",
    209: "Complétée",
    210: "Refusée",
    211: "Paiement transmis",
    212: "Encaissée",
    213: "Rejetée",
    214: "Visée",
    220: "Annulée",
    221: "Erreur de routage",
    224: "Demande de paiement direct",
    225: "Affacturée",
    226: "Affacturée confidentiel",
    227: "Changement de compte à payer",
    228: "Non affacturée",
}


class UnknownLifecycleStatus(ArchiveError):
    code = "unknown_lifecycle_status"
    status = 422


def einvoice_submission(
    data: bytes,
    validator: Callable[[], Validator],
    *,
    kind: str | None = None,
    reading: tuple[Detected, etree._Element] | None = None,
) -> Submission:
    """Read and validate an e-invoice; raise a capture BadInput when it cannot be read.

    ``reading`` is what :func:`~capture.einvoice.detect.detect_and_parse_xml` gave for
    these bytes, when the caller already ran it (to recognise a PDF as an e-invoice).
    When the rule artefacts are missing (a deployment fault), the invoice is still
    archived, flagged as not validated: the bytes received are never lost for it.
    """
    detected, root = reading if reading is not None else detect_and_parse_xml(data)
    invoice = parse_cii(root) if detected.xml_syntax == "cii" else parse_ubl(root)
    try:
        report: ValidationReport | None = validator().validate(data, detected=detected, root=root)
    except RulesetUnavailable as exc:
        report, unavailable = None, exc
    credit = detected.syntax == "ubl-creditnote" or invoice.type_code in CREDIT_NOTE_CODES
    if kind is None:
        kind = DocumentKind.credit_note.value if credit else DocumentKind.supplier_invoice.value
    derived = [
        Derived("invoice.json", _json(invoice.model_dump(mode="json")), "application/json"),
    ]
    if report is not None:
        derived.append(
            Derived("validation.json", report.to_json().encode("utf-8"), "application/json")
        )
    flags = (
        _flags(report)
        if report is not None
        else (Flag("einvoice_not_validated", f"not validated: {unavailable.message}"),)
    )
    if detected.syntax == "facturx-pdf":
        name = detected.embedded_filename or "factur-x.xml"
        derived.append(Derived(f"embedded/{name}", detected.xml, XML_MEDIA_TYPE))
    return Submission(
        kind=DocumentKind(kind).value,
        media_type=PDF_MEDIA_TYPE if detected.syntax == "facturx-pdf" else XML_MEDIA_TYPE,
        format=str(detected.syntax),
        profile=str(detected.profile) if detected.profile else None,
        pades_copy=False,
        derived=tuple(derived),
        invoice=invoice,
        flags=flags,
        details={
            "guideline_id": detected.guideline_id,
            "flavor": str(detected.flavor) if detected.flavor else None,
            "valid": report.valid if report is not None else None,
            "blocking_findings": len(report.errors) if report is not None else None,
        },
    )


def _json(value: Any) -> bytes:
    return json.dumps(to_jsonable(value), ensure_ascii=False, sort_keys=True).encode("utf-8")


def _flags(report: ValidationReport) -> tuple[Flag, ...]:
    if report.valid:
        return ()
    errors = report.errors
    shown = "; ".join(f"{f.layer} {f.rule_id}: {f.message}" for f in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return (
        Flag(
            "einvoice_invalid",
            f"{len(errors)} rule(s) broken — {shown}{more}",
        ),
    )


def receive_einvoice(
    archive: Archive,
    validator: Callable[[], Validator],
    *,
    data: bytes,
    filename: str | None,
    company_ref: str | None,
    actor: str,
    source: str,
    kind: str | None = None,
    reading: tuple[Detected, etree._Element] | None = None,
) -> DepositOutcome:
    """Archive an e-invoice; ``reading`` as for :func:`einvoice_submission`."""
    return receive(
        archive,
        data=data,
        filename=filename,
        company_ref=company_ref,
        actor=actor,
        source=source,
        admit=lambda received: einvoice_submission(received, validator, kind=kind, reading=reading),
    )


def record_lifecycle_status(
    archive: Archive,
    *,
    document_id: uuid.UUID | str,
    code: int,
    status_at: datetime,
    reason: str | None,
    platform_message_id: str | None,
    actor: str,
) -> LifecycleStatus:
    """Record a CDAR status the platform sent for an archived e-invoice (journaled)."""
    if code not in LIFECYCLE_LABELS:
        raise UnknownLifecycleStatus(
            f"unknown lifecycle status {code} (known: 200-228 of XP Z12-012)", status_code=code
        )
    with session_scope(archive.engine) as session:
        document = get_document(session, document_id)
        row = LifecycleStatus(
            document_id=document.id,
            code=code,
            label=LIFECYCLE_LABELS[code],
            status_at=status_at,
            reason=reason,
            platform_message_id=platform_message_id,
            recorded_by=actor,
        )
        session.add(row)
        archive.journal.append(
            session,
            actor=actor,
            action="einvoice.lifecycle_status",
            subject=f"document:{document.id}",
            payload={
                "code": code,
                "label": row.label,
                "status_at": status_at,
                "reason": reason,
                "platform_message_id": platform_message_id,
            },
        )
    return row
