"""Private ASN.1 plumbing: definitions asn1crypto lacks or gets wrong, and a tiny DER writer.

asn1crypto re-encodes nested structures that embed parsed certificates very slowly (tens
of milliseconds for one timestamp token); the TSA therefore assembles its output from
pieces encoded once, with ``der_tlv``. Nothing outside ``archive`` may import this.
"""

from __future__ import annotations

from asn1crypto import cms, core, tsp

__all__ = ["CONTEXT_0", "SEQUENCE", "TimeStampResp", "der_length", "der_set_of", "der_tlv"]


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp with ``timeStampToken`` OPTIONAL, as the RFC says.

    asn1crypto's ``tsp.TimeStampResp`` makes the token mandatory, so it can neither
    encode nor fully parse a ``rejection`` reply.
    """

    _fields = [  # noqa: RUF012 (asn1crypto's declaration style)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_tlv(tag: int, *contents: bytes) -> bytes:
    """One DER element with a single-byte tag around already encoded ``contents``."""
    body = b"".join(contents)
    return bytes([tag]) + der_length(len(body)) + body


def der_set_of(elements: list[bytes], *, tag: int = 0x31) -> bytes:
    """DER SET OF: the encoded elements sorted (X.690 §11.6); ``tag`` for IMPLICIT use."""
    return der_tlv(tag, *sorted(elements))


SEQUENCE = 0x30
CONTEXT_0 = 0xA0  # [0] constructed, for EXPLICIT and IMPLICIT SET/SEQUENCE alike
