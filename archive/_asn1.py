"""Private ASN.1 plumbing: definitions asn1crypto lacks or gets wrong, and a tiny DER writer.

Two asn1crypto 1.5.1 behaviours shape this module:

* re-encoding a structure that embeds parsed certificates is slow (tens of milliseconds
  for one timestamp token), so the TSA and the sealer assemble their output from pieces
  encoded once, with ``der_tlv``;
* ``dump()`` takes any header whose *last byte* is 0x80 for the indefinite-length
  marker, so a DER element of length 128, 0x180, 0x1080... is re-encoded with
  ``force=True`` — which on a CMS of 4 KiB took 35 to 90 s (wbond/asn1crypto#249, open).
  ``raw_der`` and ``PreEncodedContentInfo`` hand out the parsed bytes instead.

Nothing outside ``archive`` may import this.
"""

from __future__ import annotations

from typing import Any

from asn1crypto import cms, core, tsp

__all__ = [
    "CONTEXT_0",
    "SEQUENCE",
    "PreEncodedContentInfo",
    "TimeStampResp",
    "der_length",
    "der_set_of",
    "der_tlv",
    "raw_der",
]

SEQUENCE = 0x30
CONTEXT_0 = 0xA0  # [0] constructed, for EXPLICIT and IMPLICIT SET/SEQUENCE alike


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp with ``timeStampToken`` OPTIONAL, as the RFC says.

    asn1crypto's ``tsp.TimeStampResp`` makes the token mandatory, so it can neither
    encode nor fully parse a ``rejection`` reply.
    """

    _fields = [  # noqa: RUF012 (asn1crypto's declaration style)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def raw_der(value: Any) -> bytes:
    """The bytes ``value`` was parsed from (unless it was changed since), never re-encoded.

    Only for values that are not implicitly/explicitly retagged by their parent: roots
    of a ``load`` and plain children such as certificates or a TimeStampToken.
    """
    if value._header is not None and value._contents is not None and not _mutated(value):
        return bytes(value._header + value._contents + value._trailer)
    return bytes(value.dump())


def _mutated(value: Any) -> bool:
    check = getattr(value, "_is_mutated", None)
    return bool(check()) if check is not None else False


class PreEncodedContentInfo(cms.ContentInfo):
    """A ContentInfo whose ``dump()`` returns the DER it was loaded from.

    Given to pyHanko, which dumps the CMS objects it receives (signature containers,
    timestamp tokens) and would otherwise hit the 0x80 re-encoding trap above.
    """

    def dump(self, force: bool = False) -> bytes:
        if force:
            return bytes(super().dump(force=True))
        return raw_der(self)


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


def signer_info_v1(
    *,
    sid: bytes,
    digest_algorithm: bytes,
    signed_attrs: list[bytes],
    signature_algorithm: bytes,
    signature: bytes,
    unsigned_attrs: list[bytes] | None = None,
) -> bytes:
    """A CMS SignerInfo, version 1 (issuer and serial), from pre-encoded parts.

    The signature must be over ``der_set_of(signed_attrs)`` (universal SET OF); the
    SignerInfo holds the same attributes under [0] IMPLICIT, unsigned ones under [1].
    """
    parts = [
        core.Integer(1).dump(),
        sid,
        digest_algorithm,
        der_set_of(signed_attrs, tag=CONTEXT_0),
        signature_algorithm,
        core.OctetString(signature).dump(),
    ]
    if unsigned_attrs:
        parts.append(der_set_of(unsigned_attrs, tag=0xA1))
    return der_tlv(SEQUENCE, *parts)
