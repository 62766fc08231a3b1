"""Renewal of detached evidence: the construction, and checking it (pure: bytes in, verdicts out).

A timestamp proves something only while its TSA certificate is valid and its algorithms
are strong. Before that ends, Coffre puts the evidence under a new timestamp (the idea of
RFC 4998 evidence records, kept as plain files that ``sha256sum`` and ``openssl`` check).

Renewal ``n`` of an artifact ``A`` (e.g. ``original``) is two stored files:

``A.renewal-n.json``
    canonical JSON (sorted keys, no spaces, UTF-8, no trailing newline)::

        {"artifact": "A", "artifact_sha256": "<SHA-256 of A>",
         "covers": [{"name": "<file>", "sha256": "<SHA-256 of file>"}, ...],
         "format": "coffre-evidence-renewal", "hash_alg": "sha256", "renewal": n,
         "version": 1}

    where ``covers`` lists, sorted by name, every evidence file of ``A`` made before it:
    its detached seal (``A.p7s``), its token (``A.tsr``) and both files of every earlier
    renewal.
``A.renewal-n.tsr``
    an RFC 3161 TimeStampResp whose message imprint is SHA-256 of ``A.renewal-n.json``.

An auditor checks it with standard tools (``root.pem``, ``tsa.pem`` from the bundle)::

    sha256sum A A.p7s A.tsr            # the same digests as in A.renewal-1.json
    openssl ts -verify -data A.renewal-1.json -in A.renewal-1.tsr \\
        -CAfile root.pem -untrusted tsa.pem
    openssl ts -reply -in A.renewal-1.tsr -text | grep 'Time stamp'   # T1
    openssl ts -verify -data A -in A.tsr -CAfile root.pem -untrusted tsa.pem \\
        -attime $(date -d "T1" +%s)    # the old token was valid when it was renewed

The newest token must be valid now; each older one (and the seal's own signature
timestamp) must have been valid at the time of the renewal that covers it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from archive.canonical import canonical_json
from archive.timestamp import TimestampError, TimestampToken, verify_timestamp

__all__ = [
    "FORMAT",
    "RENEWAL_NAME",
    "VERSION",
    "ChainVerdict",
    "Renewal",
    "check_renewals",
    "renewal_body",
    "renewal_names",
]

FORMAT = "coffre-evidence-renewal"
VERSION = 1
#: ``original.renewal-2.json`` → artifact ``original``, renewal 2, part ``json``.
RENEWAL_NAME = re.compile(r"^(?P<artifact>.+)\.renewal-(?P<n>[1-9][0-9]*)\.(?P<part>json|tsr)$")
BODY_MEDIA_TYPE = "application/json"


def renewal_names(artifact: str, n: int) -> tuple[str, str]:
    """The names of renewal ``n`` of ``artifact``: (body, token)."""
    return f"{artifact}.renewal-{n}.json", f"{artifact}.renewal-{n}.tsr"


def renewal_body(
    *, artifact: str, artifact_sha256: str, n: int, covers: Iterable[tuple[str, str]]
) -> bytes:
    """The canonical body of renewal ``n`` (``covers``: (file name, SHA-256) pairs)."""
    return canonical_json(
        {
            "format": FORMAT,
            "version": VERSION,
            "hash_alg": "sha256",
            "artifact": artifact,
            "artifact_sha256": artifact_sha256,
            "renewal": n,
            "covers": [{"name": name, "sha256": sha} for name, sha in sorted(covers)],
        }
    )


@dataclass(frozen=True)
class Renewal:
    """One renewal as stored: its number, body and token."""

    n: int
    body: bytes
    token: bytes


@dataclass(frozen=True)
class ChainVerdict:
    """What :func:`check_renewals` found: one (name, ok, detail) per check."""

    checks: tuple[tuple[str, bool, str], ...]
    #: When the whole chain holds: the time of renewal 1, the instant at which the
    #: evidence it covers (the seal, the first token) must have been valid.
    base_moment: dt.datetime | None

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


def check_renewals(
    *,
    artifact: str,
    artifact_sha256: str,
    evidence: Mapping[str, bytes],
    renewals: Sequence[Renewal],
    trust_roots: Sequence[Any],
    crls: Iterable[bytes | x509.CertificateRevocationList] = (),
) -> ChainVerdict:
    """Check the renewals of ``artifact`` (``evidence``: its .p7s and .tsr by name).

    Each body must name the artifact's digest and exactly the evidence made before it;
    the newest token must be valid now and each older one at the time of the next.
    """
    crl_list = list(crls)
    ordered = sorted(renewals, key=lambda r: r.n)
    checks: list[tuple[str, bool, str]] = []
    facts: list[TimestampToken | None] = []
    for renewal in ordered:
        try:
            facts.append(TimestampToken.from_response_der(renewal.token))
        except TimestampError:
            facts.append(None)
    earlier = {name: hashlib.sha256(data).hexdigest() for name, data in evidence.items()}
    all_ok = bool(ordered)
    for index, renewal in enumerate(ordered):
        body_name, token_name = renewal_names(artifact, renewal.n)
        label = f"renewal {renewal.n}"
        problems = _body_problems(renewal, artifact, artifact_sha256, earlier, index + 1)
        checks.append(
            (
                f"{label}: {body_name} names the artifact and the evidence before it",
                not problems,
                "; ".join(problems),
            )
        )
        later = facts[index + 1] if index + 1 < len(ordered) else None
        moment = later.gen_time if later is not None else None
        result = verify_timestamp(
            renewal.token, data=renewal.body, trust_roots=trust_roots, crls=crl_list, moment=moment
        )
        token_problems = list(result.problems)
        mine = facts[index]
        previous = facts[index - 1] if index else None
        if mine is not None and previous is not None and mine.gen_time <= previous.gen_time:
            token_problems.append("not later than the renewal before it")
        when = "now" if moment is None else f"at renewal {ordered[index + 1].n} ({moment})"
        checks.append(
            (
                f"{label}: {token_name} valid {when}",
                not token_problems,
                "; ".join(token_problems) or f"time {result.gen_time}",
            )
        )
        all_ok = all_ok and not problems and not token_problems
        earlier[body_name] = hashlib.sha256(renewal.body).hexdigest()
        earlier[token_name] = hashlib.sha256(renewal.token).hexdigest()
    first = facts[0] if facts else None
    return ChainVerdict(
        checks=tuple(checks),
        base_moment=first.gen_time if all_ok and first is not None else None,
    )


def _body_problems(
    renewal: Renewal, artifact: str, artifact_sha256: str, earlier: Mapping[str, str], n: int
) -> list[str]:
    try:
        body = json.loads(renewal.body)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    if not isinstance(body, dict):
        return ["not a JSON object"]
    problems = []
    if (body.get("format"), body.get("version")) != (FORMAT, VERSION):
        problems.append(f"not a {FORMAT} v{VERSION}")
    if body.get("renewal") != renewal.n or renewal.n != n:
        problems.append(f"numbered {body.get('renewal')!r}, expected {n} (one missing?)")
    if body.get("artifact") != artifact:
        problems.append(f"names artifact {body.get('artifact')!r}")
    if body.get("artifact_sha256") != artifact_sha256:
        problems.append("the artifact's SHA-256 differs (artifact changed?)")
    covers = body.get("covers")
    listed = (
        {str(c.get("name")): c.get("sha256") for c in covers if isinstance(c, dict)}
        if isinstance(covers, list)
        else {}
    )
    for name, sha in sorted(earlier.items()):
        if name not in listed:
            problems.append(f"does not cover {name}")
        elif listed[name] != sha:
            problems.append(f"{name} differs from the digest it covers")
    for name in sorted(set(listed) - set(earlier)):
        problems.append(f"covers {name}, which is not there")
    if renewal.body != renewal_body(
        artifact=artifact,
        artifact_sha256=str(body.get("artifact_sha256")),
        n=renewal.n,
        covers=listed.items(),  # type: ignore[arg-type]
    ):
        problems.append("not in canonical form")
    return problems
