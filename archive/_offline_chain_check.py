"""Check the journal of a Coffre evidence bundle with Python's standard library alone.

Run from the bundle's folder: ``python3 journal/check_chain.py``. This file is copied as
it is into every bundle (``journal/check_chain.py``); it imports nothing from Coffre, so
an auditor can read it in full and trust it as much as they trust Python.

It recomputes the hash of every event of ``journal/chain.jsonl`` (SHA-256 of the
canonical JSON of seq, recorded_at, actor, action, subject, payload_digest, prev_hash,
hash_alg: sorted keys, no spaces, UTF-8), follows the prev_hash links, checks the payload
digests, checks that the chain ends at the anchored head of ``journal/anchor.json``
whose body (``journal/anchor-body.json``) hashes to the anchor hash that
``journal/anchor.tsr`` timestamps (check that token with ``openssl ts -verify``, see the
README), that ``journal/events.json`` holds exactly the document's events of the chain,
and that each file under ``artifacts/`` has the SHA-256 the journal recorded for it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HASHED = ("seq", "recorded_at", "actor", "action", "subject", "payload_digest", "prev_hash")
ALGORITHMS = ("sha256", "sha384", "sha512")


def canonical(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def check(root: Path) -> list[str]:
    problems: list[str] = []
    manifest = json.loads((root / "manifest.json").read_bytes())
    subject = manifest["subject"]
    lines = (root / "journal" / "chain.jsonl").read_text("utf-8").splitlines()
    chain = [json.loads(line) for line in lines if line.strip()]
    if not chain:
        return ["journal/chain.jsonl is empty"]
    previous: dict[str, Any] | None = None
    for event in chain:
        where = f"event {event.get('seq')}"
        alg = event.get("hash_alg")
        if alg not in ALGORITHMS:
            problems.append(f"{where}: unexpected hash algorithm {alg!r}")
            continue
        body = {name: event[name] for name in HASHED}
        body["hash_alg"] = alg
        if hashlib.new(alg, canonical(body)).hexdigest() != event["hash"]:
            problems.append(f"{where}: hash does not match the event (edited)")
        if "payload" in event:
            if hashlib.new(alg, canonical(event["payload"])).hexdigest() != event["payload_digest"]:
                problems.append(f"{where}: payload does not match its digest")
        elif event["subject"] == subject:
            problems.append(f"{where}: an event of this document without its payload")
        if previous is not None:
            if event["seq"] != previous["seq"] + 1:
                problems.append(f"{where}: follows event {previous['seq']} (missing or moved)")
            if event["prev_hash"] != previous["hash"]:
                problems.append(f"{where}: prev_hash does not link to the event before")
        previous = event

    anchor = json.loads((root / "journal" / "anchor.json").read_bytes())
    body_bytes = (root / "journal" / "anchor-body.json").read_bytes()
    expected = canonical(
        {
            "anchor_seq": anchor["seq"],
            "head_seq": anchor["head_seq"],
            "head_hash": anchor["head_hash"],
            "prev_anchor_hash": anchor["prev_anchor_hash"],
        }
    )
    if body_bytes != expected:
        problems.append("anchor-body.json is not the canonical body of anchor.json")
    anchor_alg = anchor.get("hash_alg")
    if anchor_alg not in ALGORITHMS:
        problems.append(f"anchor: unexpected hash algorithm {anchor_alg!r}")
    elif hashlib.new(anchor_alg, body_bytes).hexdigest() != anchor["anchor_hash"]:
        problems.append("anchor-body.json does not hash to the anchor hash")
    if (chain[-1]["seq"], chain[-1]["hash"]) != (anchor["head_seq"], anchor["head_hash"]):
        problems.append("the chain does not end at the anchored head")

    mine = [event for event in chain if event["subject"] == subject]
    if json.loads((root / "journal" / "events.json").read_bytes()) != mine:
        problems.append("journal/events.json is not exactly the document's events of the chain")
    if not mine or mine[0] is not chain[0] or mine[0]["action"] != "document.deposited":
        problems.append("the chain does not start at the document's deposit")

    stored = {
        event["payload"]["artifact"]: event["payload"]
        for event in mine
        if event["action"] == "artifact.stored" and "payload" in event
    }
    seen = set()
    for entry in manifest["files"]:
        if entry.get("role") != "artifact":
            continue
        name = entry["artifact"]
        seen.add(name)
        actual = hashlib.sha256((root / entry["path"]).read_bytes()).hexdigest()
        recorded = stored.get(name, {}).get("sha256")
        if actual != recorded:
            problems.append(f"{entry['path']}: SHA-256 {actual}, the journal recorded {recorded}")
    for name in sorted(set(stored) - seen):
        problems.append(f"artifact {name} is recorded in the journal but not in the bundle")
    return problems


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    try:
        problems = check(root)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problems = [f"the bundle cannot be read: {exc!r}"]
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        return 1
    print("Journal chain: OK (hashes, links, anchored head, document events, artifact hashes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
