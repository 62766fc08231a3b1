"""Offline verification of an evidence bundle (made by ``archive.bundle``), for an auditor
who does not trust Coffre: no database, no server, no settings, nothing fetched.

Checks, each named after the file it concerns: the file lists (SHA256SUMS, manifest);
which roots are trusted; the certificates and CRLs; each artifact against the SHA-256 the
journal recorded; the detached CMS seal, the RFC 3161 token and the PAdES seal against
the trust roots; renewals of detached evidence (``archive.renewal``); the journal chain
segment recomputed, the document's events complete in it, the anchor over its head and
the anchor's token; the invoice data against the digests the journal recorded. By
default the roots shipped in the bundle are trusted and the report says so; an auditor
pins their own with ``trust_roots``.

This room reads bytes and reports; it never repairs, and never raises for a bundle that
is readable but wrong (only :class:`BundleUnreadable` when it cannot be read at all).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from archive import bundle_format as fmt
from archive.canonical import canonical_digest
from archive.errors import ArchiveError
from archive.journal import anchor_body
from archive.pki import cert_sha256, is_development_certificate
from archive.renewal import RENEWAL_NAME, Renewal, check_renewals
from archive.seal_check import validate_detached_seal, validate_pdf_seal
from archive.timestamp import verify_timestamp
from archive.verify import Check, VerificationReport

__all__ = ["BundleReport", "BundleUnreadable", "verify_bundle"]

#: Refuse to inflate more than this (a bundle is a few documents' worth of files).
MAX_UNCOMPRESSED = 4 * 1024**3
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_CRL_PEM = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)
_SHOWN = 8
_RECORDED_CERTS = "the certificates the journal recorded"


class BundleUnreadable(ArchiveError):
    """Not an evidence bundle that can be read at all (not a ZIP, no manifest...)."""

    code = "bundle_unreadable"
    status = 422


#: Offline reports carry where trust came from (``trust``).
BundleReport = VerificationReport


def verify_bundle(
    source: bytes | str | Path,
    *,
    trust_roots: Sequence[x509.Certificate | bytes] | None = None,
) -> BundleReport:
    """Check a bundle (ZIP bytes or path). ``trust_roots``: the auditor's own roots
    (certificates, PEM or DER bytes); None trusts the roots the bundle ships."""
    bundle = _Bundle.open(source)
    pinned = None if trust_roots is None else [c for r in trust_roots for c in _certs_of(r)]
    verifier = _Verifier(bundle, pinned)
    verifier.run()
    return BundleReport(subject=bundle.subject, trust=verifier.trust, checks=tuple(verifier.checks))


# -- reading ---------------------------------------------------------------------------------


@dataclass
class _Bundle:
    files: dict[str, bytes]
    duplicates: list[str]
    manifest: dict[str, Any]

    @property
    def subject(self) -> str:
        return str(self.manifest.get("subject", ""))

    @classmethod
    def open(cls, source: bytes | str | Path) -> _Bundle:
        try:
            handle = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
        except (OSError, zipfile.BadZipFile) as exc:
            raise BundleUnreadable(f"not a readable ZIP file: {exc}") from exc
        with handle:
            infos = [i for i in handle.infolist() if not i.is_dir()]
            if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
                raise BundleUnreadable("the bundle inflates to more than 4 GiB")
            tops = {PurePosixPath(i.filename).parts[0] for i in infos if i.filename}
            if len(tops) != 1:
                raise BundleUnreadable("a bundle holds exactly one folder at its top")
            files: dict[str, bytes] = {}
            duplicates: list[str] = []
            for info in infos:
                parts = PurePosixPath(info.filename).parts
                if info.filename.startswith("/") or "\\" in info.filename or ".." in parts:
                    raise BundleUnreadable(f"unsafe file name in the bundle: {info.filename!r}")
                relative = "/".join(parts[1:])
                if relative in files:
                    duplicates.append(relative)
                try:
                    files[relative] = handle.read(info)
                except (OSError, zipfile.BadZipFile, ValueError) as exc:
                    raise BundleUnreadable(f"{relative} cannot be read: {exc}") from exc
        try:
            manifest = json.loads(files[fmt.MANIFEST])
        except KeyError as exc:
            raise BundleUnreadable("the bundle has no manifest.json") from exc
        except ValueError as exc:
            raise BundleUnreadable(f"manifest.json is not JSON: {exc}") from exc
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") != fmt.FORMAT
            or not isinstance(manifest.get("files"), list)
        ):
            raise BundleUnreadable(f"manifest.json does not describe a {fmt.FORMAT}")
        if manifest.get("version") != fmt.VERSION:
            raise BundleUnreadable(
                f"bundle format version {manifest.get('version')!r} is not {fmt.VERSION}"
            )
        return cls(files=files, duplicates=duplicates, manifest=manifest)


def _certs_of(value: x509.Certificate | bytes) -> list[x509.Certificate]:
    if isinstance(value, x509.Certificate):
        return [value]
    if b"-----BEGIN" in value:
        return list(x509.load_pem_x509_certificates(value))
    return [x509.load_der_x509_certificate(value)]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Unusable(Exception):
    """A file the current check needs is missing or cannot be parsed (detail in args)."""


# -- checking --------------------------------------------------------------------------------


class _Verifier:
    def __init__(self, bundle: _Bundle, pinned: list[x509.Certificate] | None) -> None:
        self.bundle = bundle
        self.files = bundle.files
        self.subject = bundle.subject
        self.pinned = pinned
        self.checks: list[Check] = []
        self.trust = "no trust root could be read"
        self.roots: list[x509.Certificate] = []
        self.crls: list[bytes] = []
        self.others: list[x509.Certificate] = []
        #: The chain rows and the document's rows of it (recorded facts come from these).
        self.chain: list[dict[str, Any]] = []
        self.mine: list[dict[str, Any]] = []
        #: Per detached artifact: when its renewals hold, the time of renewal 1.
        self.moments: dict[str, dt.datetime | None] = {}
        entries = [e for e in bundle.manifest["files"] if isinstance(e, dict)]
        self.artifacts = {
            str(e.get("artifact")): e for e in entries if e.get("role") == fmt.ARTIFACT_ROLE
        }

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return ok

    def need(self, path: str) -> bytes:
        if path not in self.files:
            raise _Unusable(f"{path} is missing from the bundle")
        return self.files[path]

    def json_file(self, path: str) -> Any:
        try:
            return json.loads(self.need(path))
        except ValueError as exc:
            raise _Unusable(f"{path} is not JSON: {exc}") from exc

    def guarded(self, name: str, run: Any) -> None:
        """Run one check; a missing or unparsable input fails that check, named."""
        try:
            run()
        except _Unusable as exc:
            self.add(name, False, str(exc))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            self.add(name, False, f"malformed content: {exc!r}")

    def run(self) -> None:
        self.check_sums()
        self.check_manifest()
        self.guarded(f"{fmt.ROOTS}: trust roots", self.check_trust)
        self.load_journal()
        self.check_certificates()
        self.guarded(f"{fmt.DOCUMENT}: matches the deposit event", self.check_document)
        self.guarded(f"{fmt.CHAIN}: hash chain", self.check_chain)
        self.guarded(f"{fmt.EVENTS}: the document's events", self.check_events)
        self.guarded(f"{fmt.ANCHOR}: anchors the chain head", self.check_anchor)
        self.guarded(f"{fmt.ANCHOR_TOKEN}: anchor timestamp token", self.check_anchor_token)
        self.check_artifacts()
        self.check_seals()
        self.check_invoice_data()
        self.guarded(f"{fmt.VALIDATION_REPORT}: Coffre's verification at export", self.check_report)

    # -- file lists ----------------------------------------------------------------------
    def check_sums(self) -> None:
        name = f"{fmt.SHA256SUMS}: every file listed and unchanged"
        if fmt.SHA256SUMS not in self.files:
            self.add(name, False, f"{fmt.SHA256SUMS} is missing")
            return
        problems = [f"{path}: appears twice in the ZIP" for path in self.bundle.duplicates]
        listed: set[str] = set()
        text = self.files[fmt.SHA256SUMS].decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            match = _SUM_LINE.match(line)
            if match is None:
                problems.append(f"line {number} is not '<sha256>  <file>'")
                continue
            digest, path = match.groups()
            listed.add(path)
            if path not in self.files:
                problems.append(f"{path}: listed but missing")
            elif _sha256(self.files[path]) != digest:
                problems.append(f"{path}: SHA-256 differs from the list")
        for path in sorted(set(self.files) - listed - {fmt.SHA256SUMS}):
            problems.append(f"{path}: in the bundle but not listed")
        self.add(name, not problems, "; ".join(problems[:_SHOWN]))

    def check_manifest(self) -> None:
        problems = []
        listed: set[str] = set()
        roles = {*fmt.ROLES.values(), fmt.ARTIFACT_ROLE}
        for entry in self.bundle.manifest["files"]:
            path = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(path, str):
                problems.append("an entry without a path")
                continue
            listed.add(path)
            if path not in self.files:
                problems.append(f"{path}: listed but missing")
                continue
            if entry.get("sha256") != _sha256(self.files[path]):
                problems.append(f"{path}: SHA-256 differs from the manifest")
            if entry.get("size") != len(self.files[path]):
                problems.append(f"{path}: size differs from the manifest")
            if entry.get("role") not in roles:
                problems.append(f"{path}: unknown role {entry.get('role')!r}")
            if (entry.get("role") == fmt.ARTIFACT_ROLE) != path.startswith(fmt.ARTIFACTS_DIR + "/"):
                problems.append(f"{path}: role does not fit its place")
        for path in sorted(set(self.files) - listed - {fmt.MANIFEST, fmt.SHA256SUMS}):
            problems.append(f"{path}: in the bundle but not in the manifest")
        expected = f"document:{self.bundle.manifest.get('document_id')}"
        if self.subject != expected:
            problems.append(f"subject {self.subject!r} is not {expected!r}")
        self.add(
            f"{fmt.MANIFEST}: every file described", not problems, "; ".join(problems[:_SHOWN])
        )

    # -- trust and certificates ----------------------------------------------------------
    def certificates(self, path: str) -> list[x509.Certificate]:
        data = self.need(path)
        if not data.strip():
            return []
        try:
            return list(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise _Unusable(f"{path} holds no readable PEM certificate: {exc}") from exc

    def check_trust(self) -> None:
        if self.pinned is not None:
            # The auditor's roots; the bundle's own root.pem is only compared with them.
            self.roots = self.pinned
            try:
                shipped = {cert_sha256(c) for c in self.certificates(fmt.ROOTS)}
            except _Unusable:
                shipped = set()
            source = f"pinned roots given by the auditor ({len(self.pinned)} certificate(s)"
            detail = (
                "the bundle ships the same root"
                if shipped & {cert_sha256(c) for c in self.pinned}
                else "the bundle's root.pem is not a pinned root and is not trusted"
            )
        else:
            self.roots = self.certificates(fmt.ROOTS)
            source = "bundle-provided roots ("
            detail = "trust taken from the bundle itself"
        if any(is_development_certificate(c) for c in self.roots):
            self.trust = source + ("; " if self.pinned else "") + "development PKI)"
        elif self.pinned is not None:
            self.trust = source + ")"
        else:
            self.trust = (
                source + "not pinned: compare certificates/root.pem with a root you "
                "obtained yourself, or pin it with --trust)"
            )
        fingerprints = ", ".join(cert_sha256(c)[:16] + "…" for c in self.roots)
        self.add(
            f"{fmt.ROOTS}: trust roots",
            bool(self.roots),
            f"{self.trust}; {detail}; SHA-256 {fingerprints}" if self.roots else "no root",
        )

    def check_certificates(self) -> None:
        seal: list[x509.Certificate] = []
        tsa: list[x509.Certificate] = []

        def load_seal() -> None:
            seal.extend(self.certificates(fmt.SEAL_CERTS))
            self.recorded_in(fmt.SEAL_CERTS, seal, "artifact.sealed", "seal_cert_sha256")

        def load_tsa() -> None:
            tsa.extend(self.certificates(fmt.TSA_CERTS))
            self.recorded_in(fmt.TSA_CERTS, tsa, "artifact.timestamped", "tsa_cert_sha256")

        self.guarded(f"{fmt.SEAL_CERTS}: {_RECORDED_CERTS}", load_seal)
        self.guarded(f"{fmt.TSA_CERTS}: {_RECORDED_CERTS}", load_tsa)
        self.others = [*seal, *tsa]
        problems = []
        for path, certs in ((fmt.SEAL_CERTS, seal), (fmt.TSA_CERTS, tsa)):
            for cert in certs:
                problem = self.chain_problem(cert)
                if problem:
                    problems.append(f"{path}: {cert.subject.rfc4514_string()}: {problem}")
        self.add(
            "certificates: chain to the trust roots",
            bool(self.roots) and not problems,
            "; ".join(problems[:_SHOWN]) if self.roots else "no trust root",
        )
        self.guarded(f"{fmt.CRLS}: signed by their issuers, nothing revoked", self.check_crls)
        self.guarded(f"{fmt.ROOTS_AND_CRLS}: root.pem then crls.pem", self.check_roots_and_crls)

    def recorded_in(self, path: str, certs: list[x509.Certificate], action: str, key: str) -> None:
        recorded = {str(e["payload"][key]) for e in self.mine if e["action"] == action}
        present = {cert_sha256(c) for c in certs}
        missing = sorted(recorded - present)
        self.add(
            f"{path}: {_RECORDED_CERTS}",
            bool(recorded) and not missing,
            f"missing {', '.join(missing)}" if missing else ("" if recorded else "none recorded"),
        )

    def chain_problem(self, cert: x509.Certificate) -> str | None:
        current = cert
        for _ in range(8):
            if any(cert_sha256(current) == cert_sha256(r) for r in self.roots):
                return None
            for root in self.roots:
                if current.issuer == root.subject and _issued_by(current, root):
                    return None
            parent = next(
                (
                    c
                    for c in self.others
                    if c.subject == current.issuer and c is not current and _issued_by(current, c)
                ),
                None,
            )
            if parent is None:
                return "no chain to a trust root (issuer unknown or signature invalid)"
            current = parent
        return "chain too long"

    def check_crls(self) -> None:
        data = self.need(fmt.CRLS)
        problems = []
        issuers = [*self.roots, *self.others]
        for number, block in enumerate(_CRL_PEM.findall(data), start=1):
            try:
                crl = x509.load_pem_x509_crl(block)
            except ValueError as exc:
                problems.append(f"CRL {number} cannot be read: {exc}")
                continue
            issuer = next(
                (
                    c
                    for c in issuers
                    if c.subject == crl.issuer and crl.is_signature_valid(c.public_key())  # type: ignore[arg-type]
                ),
                None,
            )
            if issuer is None:
                problems.append(f"CRL {number} ({crl.issuer.rfc4514_string()}): bad signature")
                continue
            self.crls.append(crl.public_bytes(serialization.Encoding.DER))
            for cert in self.others:
                if cert.issuer == crl.issuer and (
                    crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
                ):
                    problems.append(f"{cert.subject.rfc4514_string()} is revoked (CRL {number})")
        self.add(
            f"{fmt.CRLS}: signed by their issuers, nothing revoked",
            not problems,
            "; ".join(problems) if problems else f"{len(self.crls)} CRL(s)",
        )

    def check_roots_and_crls(self) -> None:
        same = self.need(fmt.ROOTS_AND_CRLS) == self.need(fmt.ROOTS) + self.need(fmt.CRLS)
        self.add(f"{fmt.ROOTS_AND_CRLS}: root.pem then crls.pem", same, "" if same else "differs")

    # -- journal -------------------------------------------------------------------------
    def load_journal(self) -> None:
        try:
            lines = self.need(fmt.CHAIN).decode("utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
        except (_Unusable, ValueError):
            return  # check_chain names the problem
        self.chain = [r for r in rows if isinstance(r, dict)]
        self.mine = [
            r
            for r in self.chain
            if r.get("subject") == self.subject and isinstance(r.get("payload"), dict)
        ]

    def check_chain(self) -> None:
        lines = self.need(fmt.CHAIN).decode("utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        if not rows:
            raise _Unusable(f"{fmt.CHAIN} is empty")
        problems = []
        previous: dict[str, Any] | None = None
        for row in rows:
            where = f"event {row.get('seq')}"
            missing = [f for f in (*fmt.HASHED_FIELDS, "hash") if f not in row]
            if missing:
                problems.append(f"{where}: missing {', '.join(missing)}")
            elif row["hash_alg"] not in fmt.HASH_ALGS:
                problems.append(f"{where}: unexpected hash algorithm {row['hash_alg']!r}")
            else:
                if fmt.row_hash(row) != row["hash"]:
                    problems.append(f"{where}: hash does not match the event (edited)")
                if "payload" in row and (
                    canonical_digest(row["payload"], row["hash_alg"]) != row["payload_digest"]
                ):
                    problems.append(f"{where}: payload does not match its digest (edited)")
            if previous is not None:
                if row.get("seq") != previous.get("seq", 0) + 1:
                    problems.append(
                        f"{where}: follows event {previous.get('seq')} (removed or reordered)"
                    )
                if row.get("prev_hash") != previous.get("hash"):
                    problems.append(f"{where}: prev_hash does not link to the event before")
            previous = row
        self.add(
            f"{fmt.CHAIN}: hash chain",
            not problems,
            "; ".join(problems[:_SHOWN])
            if problems
            else f"events {rows[0]['seq']}–{rows[-1]['seq']} recomputed",
        )

    def check_events(self) -> None:
        listed = self.json_file(fmt.EVENTS)
        problems = []
        ours = [r for r in self.chain if r.get("subject") == self.subject]
        if listed != ours:
            problems.append(
                "not exactly the document's events of the chain (one added, removed or changed)"
            )
        if any("payload" not in r for r in ours):
            problems.append("an event of the document is in the chain without its payload")
        if (
            not ours
            or ours[0] is not self.chain[0]
            or ours[0].get("action") != "document.deposited"
        ):
            problems.append("the chain does not start at the document's deposit")
        self.add(
            f"{fmt.EVENTS}: the document's events",
            not problems,
            "; ".join(problems) if problems else f"{len(ours)} events, none missing",
        )

    def check_anchor(self) -> None:
        anchor = self.json_file(fmt.ANCHOR)
        body = self.need(fmt.ANCHOR_BODY)
        problems = []
        expected = anchor_body(
            seq=anchor["seq"],
            head_seq=anchor["head_seq"],
            head_hash=anchor["head_hash"],
            prev_anchor_hash=anchor["prev_anchor_hash"],
        )
        if body != expected:
            problems.append(f"{fmt.ANCHOR_BODY} is not the canonical body of the anchor")
        if anchor["hash_alg"] not in fmt.HASH_ALGS:
            problems.append(f"unexpected hash algorithm {anchor['hash_alg']!r}")
        elif hashlib.new(anchor["hash_alg"], expected).hexdigest() != anchor["anchor_hash"]:
            problems.append("the anchor hash is not the hash of its body (edited)")
        head = self.chain[-1] if self.chain else {}
        if (head.get("seq"), head.get("hash")) != (anchor["head_seq"], anchor["head_hash"]):
            problems.append(
                f"the anchor's head (event {anchor['head_seq']}) is not the chain's last event"
            )
        self.add(
            f"{fmt.ANCHOR}: anchors the chain head",
            not problems,
            "; ".join(problems)
            if problems
            else f"anchor {anchor['seq']}, head {anchor['head_seq']}",
        )

    def check_anchor_token(self) -> None:
        anchor = self.json_file(fmt.ANCHOR)
        token = self.need(fmt.ANCHOR_TOKEN)
        result = verify_timestamp(
            token,
            digest=bytes.fromhex(anchor["anchor_hash"]),
            algorithm=anchor["hash_alg"],
            trust_roots=self.roots,
            crls=self.crls,
        )
        problems = list(result.problems)
        if result.serial is not None and str(result.serial) != str(anchor["tst_serial"]):
            problems.append(f"serial {result.serial} is not the anchor's {anchor['tst_serial']}")
        self.add(
            f"{fmt.ANCHOR_TOKEN}: anchor timestamp token",
            not problems,
            "; ".join(problems) if problems else f"time {result.gen_time}",
        )

    # -- document and artifacts ----------------------------------------------------------
    def recorded(self, action: str, artifact: str | None = None) -> list[dict[str, Any]]:
        return [
            e["payload"]
            for e in self.mine
            if e.get("action") == action
            and (artifact is None or e["payload"].get("artifact") == artifact)
        ]

    def check_document(self) -> None:
        body = self.json_file(fmt.DOCUMENT)
        document = body["document"]
        deposited = self.recorded("document.deposited")
        if not deposited:
            raise _Unusable("no document.deposited event in the chain")
        facts = deposited[0]
        differ = [
            key
            for key, actual in (
                ("company_id", document["company_id"]),
                ("kind", document["kind"]),
                ("sha256", document["original_sha256"]),
                ("size", document["size"]),
            )
            if str(facts.get(key)) != str(actual)
        ]
        if f"document:{document['id']}" != self.subject:
            differ.append("id")
        self.add(
            f"{fmt.DOCUMENT}: matches the deposit event",
            not differ,
            "differs from the journal in: " + ", ".join(differ) if differ else "",
        )

    def check_artifacts(self) -> None:
        for name, entry in sorted(self.artifacts.items()):
            path = str(entry.get("path"))
            label = f"{path}: SHA-256 the journal recorded (artifact {name})"
            if path not in self.files:
                self.add(label, False, "missing from the bundle")
                continue
            data = self.files[path]
            stored = self.recorded("artifact.stored", name)
            if not stored:
                self.add(label, False, "no artifact.stored event records it")
                continue
            actual = _sha256(data)
            ok = stored[0].get("sha256") == actual and stored[0].get("size") == len(data)
            self.add(
                label,
                ok,
                ""
                if ok
                else f"file {actual} ({len(data)} bytes), journal {stored[0].get('sha256')}",
            )
        recorded = {p.get("artifact") for p in self.recorded("artifact.stored")}
        missing = sorted(str(n) for n in recorded - set(self.artifacts))
        self.add(
            "artifacts: every artifact the journal recorded is in the bundle",
            bool(recorded) and not missing,
            ", ".join(missing) if missing else ("" if recorded else "none recorded"),
        )

    def artifact(self, name: str) -> tuple[str, bytes]:
        entry = self.artifacts.get(name)
        if entry is None:
            raise _Unusable(f"artifact {name} is not in the bundle")
        path = str(entry.get("path"))
        return path, self.need(path)

    def check_seals(self) -> None:
        for sealed in self.recorded("artifact.sealed"):
            name = str(sealed.get("artifact"))
            if str(sealed.get("seal_format", "")).startswith("PAdES"):
                self.guarded(f"artifact {name}: PAdES seal", lambda s=sealed: self.check_pades(s))
            else:
                self.guarded(
                    f"artifact {name}: detached seal", lambda s=sealed: self.check_detached(s)
                )
                self.guarded(
                    f"artifact {name}: timestamp token", lambda s=sealed: self.check_token(s)
                )

    def check_pades(self, sealed: dict[str, Any]) -> None:
        name = str(sealed["artifact"])
        path, data = self.artifact(name)
        result = validate_pdf_seal(data, trust_roots=self.roots, crls=self.crls)
        detail = "; ".join(result.problems) or f"{result.level}, {result.coverage}"
        self.add(f"{path}: PAdES seal", result.ok, detail)
        self.signer_is_recorded(path, result.signer_cert_sha256, sealed)

    def signer_is_recorded(self, path: str, signer: str | None, sealed: dict[str, Any]) -> None:
        same = signer is not None and signer == sealed.get("seal_cert_sha256")
        self.add(
            f"{path}: sealed by the certificate the journal recorded",
            same,
            "" if same else f"signer {signer}, journal {sealed.get('seal_cert_sha256')}",
        )

    def evidence_file(self, name: str, key: str, suffix: str) -> tuple[str, bytes]:
        entry = self.artifacts.get(name, {})
        return self.artifact(str(entry.get(key) or f"{name}{suffix}"))

    def renewal_moment(self, name: str) -> dt.datetime | None:
        """Check the renewals of a detached artifact (once; ``archive.renewal``): the
        instant its seal and first token must have been valid at, when the chain holds."""
        if name in self.moments:
            return self.moments[name]
        parts: dict[int, dict[str, str]] = {}
        for other in self.artifacts:
            match = RENEWAL_NAME.match(other)
            if match and match["artifact"] == name:
                parts.setdefault(int(match["n"]), {})[match["part"]] = other
        self.moments[name] = None
        if not parts:
            return None

        def run() -> None:
            _, data = self.artifact(name)
            entry = self.artifacts.get(name, {})
            base = {}
            for key, suffix in (("signature", ".p7s"), ("timestamp", ".tsr")):
                evidence_name = str(entry.get(key) or f"{name}{suffix}")
                base[evidence_name] = self.artifact(evidence_name)[1]
            renewals = [
                Renewal(
                    n=n,
                    body=self.artifact(found.get("json", f"{name}.renewal-{n}.json"))[1],
                    token=self.artifact(found.get("tsr", f"{name}.renewal-{n}.tsr"))[1],
                )
                for n, found in sorted(parts.items())
            ]
            verdict = check_renewals(
                artifact=name,
                artifact_sha256=_sha256(data),
                evidence=base,
                renewals=renewals,
                trust_roots=self.roots,
                crls=self.crls,
            )
            for check_name, ok, detail in verdict.checks:
                self.add(f"artifact {name}: {check_name}", ok, detail)
            self.moments[name] = verdict.base_moment

        self.guarded(f"artifact {name}: renewals", run)
        return self.moments[name]

    def check_detached(self, sealed: dict[str, Any]) -> None:
        name = str(sealed["artifact"])
        path, data = self.artifact(name)
        sig_path, cms_der = self.evidence_file(name, "signature", ".p7s")
        result = validate_detached_seal(data, cms_der, trust_roots=self.roots, crls=self.crls)
        moment = self.renewal_moment(name)
        if not result.ok and moment is not None:
            result = validate_detached_seal(
                data, cms_der, trust_roots=self.roots, crls=self.crls, moment=moment
            )
        detail = "; ".join(result.problems) or str(result.level)
        self.add(f"{sig_path}: detached seal over {path}", result.ok, detail)
        self.signer_is_recorded(sig_path, result.signer_cert_sha256, sealed)

    def check_token(self, sealed: dict[str, Any]) -> None:
        name = str(sealed["artifact"])
        path, data = self.artifact(name)
        tsr_path, tsr = self.evidence_file(name, "timestamp", ".tsr")
        result = verify_timestamp(tsr, data=data, trust_roots=self.roots, crls=self.crls)
        moment = self.renewal_moment(name)
        if not result.ok and moment is not None:
            result = verify_timestamp(
                tsr, data=data, trust_roots=self.roots, crls=self.crls, moment=moment
            )
        problems = list(result.problems)
        stamped = self.recorded("artifact.timestamped", name)
        if not stamped:
            problems.append("no artifact.timestamped event records it")
        else:
            if str(result.serial) != str(stamped[0].get("timestamp_serial")):
                problems.append(
                    f"serial {result.serial} is not the recorded "
                    f"{stamped[0].get('timestamp_serial')}"
                )
            if result.tsa_cert_sha256 != stamped[0].get("tsa_cert_sha256"):
                problems.append("signed by another TSA certificate than the recorded one")
        self.add(
            f"{tsr_path}: timestamp token over {path}",
            not problems,
            "; ".join(problems) if problems else f"time {result.gen_time}",
        )

    # -- invoice data and Coffre's own report --------------------------------------------
    def check_invoice_data(self) -> None:
        events = self.recorded("invoice.recorded")
        if not events:
            return
        fields_name = "artifacts/invoice.json: invoice data digest the journal recorded"
        versions_name = f"{fmt.INVOICE_DATA}: invoice data versions the journal recorded"
        try:
            recorded = {int(p["version"]): str(p["data_digest"]) for p in events}
        except (KeyError, TypeError, ValueError) as exc:
            self.add(versions_name, False, f"malformed invoice.recorded event: {exc!r}")
            return

        def fields() -> None:
            path, data = self.artifact("invoice.json")
            value = json.loads(data)
            # The data itself, or under "invoice" beside per-field facts (scans).
            if isinstance(value, dict) and isinstance(value.get("invoice"), dict):
                value = value["invoice"]
            actual, first = canonical_digest(value), recorded[min(recorded)]
            ok = actual == first
            detail = "" if ok else f"digest {actual}, journal {first}"
            self.add(f"{path}: invoice data digest the journal recorded", ok, detail)

        def versions() -> None:
            rows = self.json_file(fmt.INVOICE_DATA)
            problems = []
            for row in rows:
                actual = canonical_digest(row["data"])
                if not actual == row["data_digest"] == recorded.get(row["version"]):
                    problems.append(f"version {row['version']}: data differs from the journal")
            missing = sorted(set(recorded) - {row["version"] for row in rows})
            if missing:
                problems.append(f"versions missing: {missing}")
            self.add(versions_name, not problems, "; ".join(problems))

        if "invoice.json" in self.artifacts:
            self.guarded(fields_name, fields)
        self.guarded(versions_name, versions)

    def check_report(self) -> None:
        report = self.json_file(fmt.VALIDATION_REPORT)
        ok = report.get("ok") is True
        self.add(
            f"{fmt.VALIDATION_REPORT}: Coffre's verification at export",
            ok,
            "Coffre's own statement, not a proof"
            if ok
            else "Coffre's verification failed at export: " + "; ".join(report.get("failures", [])),
        )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
