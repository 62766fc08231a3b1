"""Private: the profile an e-invoice claims, read from its specification identifier (BT-24)
or from the Factur-X/ZUGFeRD XMP ``ConformanceLevel``. Pure functions, no I/O."""

from __future__ import annotations

from typing import Literal

Profile = Literal[
    "MINIMUM",
    "BASIC WL",
    "BASIC",
    "EN16931",
    "EXTENDED",
    "EXTENDED-CTC-FR",
    "XRECHNUNG",
    "COMFORT",  # ZUGFeRD 1.0 only
]

EN16931 = "urn:cen.eu:en16931:2017"


def profile_from_guideline(guideline_id: str | None, *, zugferd1: bool = False) -> Profile | None:
    """Map BT-24 to a profile; ``None`` when the identifier names none we know.

    Matching is on the identifier's last part, case-insensitive, so the separator
    variants seen in real files (``#compliant#urn:`` and ``:compliant:``) agree. A CIUS we
    do not name (Peppol BIS...) restricts EN 16931, so it reads as EN16931; an unknown
    extension (``#conformant#``) reads as ``None``.
    """
    if not guideline_id:
        return None
    urn = guideline_id.strip().lower()
    tail = urn.rsplit("#", 1)[-1]
    if "xrechnung" in urn:
        return "XRECHNUNG"
    if tail.endswith("extended-ctc-fr"):
        return "EXTENDED-CTC-FR"
    if tail.endswith(":minimum"):
        return "MINIMUM"
    if tail.endswith(":basicwl"):
        return "BASIC WL"
    if tail.endswith(":basic"):
        return "BASIC"
    if tail.endswith(":extended"):
        return "EXTENDED"
    if tail.endswith(":comfort"):
        # ZUGFeRD 2.0 called its EN 16931 profile COMFORT; ZUGFeRD 1.0 had its own.
        return "COMFORT" if zugferd1 else "EN16931"
    if tail.endswith(":en16931") or urn == EN16931 or urn.startswith(EN16931 + "#compliant#"):
        return "EN16931"
    return None


def profile_from_conformance_level(level: str | None) -> Profile | None:
    """Map an XMP ``fx:ConformanceLevel`` ("EN 16931", "BASIC WL"...) to a profile."""
    if not level:
        return None
    normalized = " ".join(level.upper().split())
    table: dict[str, Profile] = {
        "MINIMUM": "MINIMUM",
        "BASIC WL": "BASIC WL",
        "BASICWL": "BASIC WL",
        "BASIC": "BASIC",
        "EN 16931": "EN16931",
        "EN16931": "EN16931",
        "COMFORT": "COMFORT",
        "EXTENDED": "EXTENDED",
        "EXTENDED-CTC-FR": "EXTENDED-CTC-FR",
        "XRECHNUNG": "XRECHNUNG",
    }
    return table.get(normalized)


def profiles_agree(xmp: Profile, xml: Profile) -> bool:
    """Whether the XMP level and the XML's BT-24 name the same profile.

    ZUGFeRD 2.0 XMP says COMFORT for EN 16931; XRechnung is a CIUS of EN 16931, which
    ZUGFeRD 2.0/2.1 files label "EN 16931"; Factur-X has no XMP value for EXTENDED-CTC-FR
    (it is an EXTENDED).
    """
    if xmp == xml:
        return True
    return (xmp, xml) in {
        ("COMFORT", "EN16931"),
        ("EN16931", "XRECHNUNG"),
        ("EXTENDED", "EXTENDED-CTC-FR"),
    }
