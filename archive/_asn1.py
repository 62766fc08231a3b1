"""Private ASN.1 definitions that asn1crypto lacks or gets wrong (archive plumbing only)."""

from __future__ import annotations

from asn1crypto import cms, core, tsp

__all__ = ["TimeStampResp"]


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp with ``timeStampToken`` OPTIONAL, as the RFC says.

    asn1crypto's ``tsp.TimeStampResp`` makes the token mandatory, so it can neither
    encode nor fully parse a ``rejection`` reply.
    """

    _fields = [  # noqa: RUF012 (asn1crypto's declaration style)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]
