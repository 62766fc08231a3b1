"""The hash-chained, periodically timestamped journal (the audit trail).

Each event stores the hash of the previous one and its own hash over a canonical
serialisation, with the algorithm named in the row; ordering is the primary key ``seq``.
Anchors put the head of the chain under an RFC 3161 token, each anchor chained to the
previous one, so a third party can check that nothing before an anchor changed.

This module never updates or deletes a row. It does not commit: the use case owns the
transaction, and appending inside it makes the event and the change it records atomic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import text
from sqlmodel import Session, col, select

from archive.canonical import HASH_ALG, canonical_digest, canonical_json, instant, to_jsonable
from archive.errors import JournalError
from archive.models import JournalAnchor, JournalEvent
from storage.types import utcnow

GENESIS_HASH = "0" * 64
#: Where a session remembers the head it is appending after (see ``Journal._next``).
_HEAD_KEY = "coffre.journal_head"
#: Key of the PostgreSQL advisory lock that serialises journal writers.
_PG_LOCK_KEY = 0x0C0FF4E


class TokenLike(Protocol):
    @property
    def response_der(self) -> bytes: ...
    @property
    def serial(self) -> int: ...
    @property
    def gen_time(self) -> datetime: ...


class Stamp(Protocol):
    def __call__(self, digest: bytes) -> TokenLike: ...


#: Checks an anchor's token against the digest it must cover; returns problems (empty = fine).
TokenVerifier = Callable[[bytes, bytes], list[str]]


def event_hash(
    *,
    seq: int,
    recorded_at: datetime,
    actor: str,
    action: str,
    subject: str,
    payload_digest: str,
    prev_hash: str,
    hash_alg: str,
) -> str:
    body = {
        "seq": seq,
        "recorded_at": instant(recorded_at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "payload_digest": payload_digest,
        "prev_hash": prev_hash,
        "hash_alg": hash_alg,
    }
    return hashlib.new(hash_alg, canonical_json(body)).hexdigest()


def recompute_hash(event: JournalEvent) -> str:
    return event_hash(
        seq=event.seq,
        recorded_at=event.recorded_at,
        actor=event.actor,
        action=event.action,
        subject=event.subject,
        payload_digest=event.payload_digest,
        prev_hash=event.prev_hash,
        hash_alg=event.hash_alg,
    )


def anchor_body(*, seq: int, head_seq: int, head_hash: str, prev_anchor_hash: str) -> bytes:
    return canonical_json(
        {
            "anchor_seq": seq,
            "head_seq": head_seq,
            "head_hash": head_hash,
            "prev_anchor_hash": prev_anchor_hash,
        }
    )


def anchor_digest(anchor: JournalAnchor) -> bytes:
    body = anchor_body(
        seq=anchor.seq,
        head_seq=anchor.head_seq,
        head_hash=anchor.head_hash,
        prev_anchor_hash=anchor.prev_anchor_hash,
    )
    return hashlib.new(anchor.hash_alg, body).digest()


@dataclass(frozen=True)
class JournalProblem:
    seq: int | None
    what: str

    def __str__(self) -> str:
        where = f"journal event {self.seq}" if self.seq is not None else "journal"
        return f"{where}: {self.what}"


@dataclass(frozen=True)
class JournalCheck:
    events_checked: int
    anchors_checked: int
    head_seq: int
    head_hash: str
    problems: tuple[JournalProblem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


class Journal:
    """Appends to, anchors and verifies the chain."""

    def __init__(self, *, anchor_every: int = 100, anchor_max_age: timedelta = timedelta(days=1)):
        if anchor_every < 1:
            raise JournalError("anchor_every must be at least 1", anchor_every=anchor_every)
        self.anchor_every = anchor_every
        self.anchor_max_age = anchor_max_age

    # -- writing -------------------------------------------------------------------------
    @staticmethod
    def _lock(session: Session) -> None:
        """Serialise writers: one head, one successor. SQLite already holds its write lock
        (BEGIN IMMEDIATE); PostgreSQL takes a transaction-scoped advisory lock."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})

    @staticmethod
    def head(session: Session) -> JournalEvent | None:
        return session.exec(
            select(JournalEvent).order_by(col(JournalEvent.seq).desc()).limit(1)
        ).first()

    @staticmethod
    def head_position(session: Session) -> tuple[int, str] | None:
        """The head's ``(seq, hash)``, without loading the event (what writers chain to)."""
        row = session.exec(
            select(JournalEvent.seq, JournalEvent.hash)
            .order_by(col(JournalEvent.seq).desc())
            .limit(1)
        ).first()
        return (row[0], row[1]) if row else None

    def append(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        subject: str,
        payload: dict[str, Any] | None = None,
    ) -> JournalEvent:
        seq, prev_hash = self._next(session)
        stored_payload = to_jsonable(payload or {})
        payload_digest = canonical_digest(stored_payload, HASH_ALG)
        recorded_at = utcnow()
        event = JournalEvent(
            seq=seq,
            recorded_at=recorded_at,
            actor=actor,
            action=action,
            subject=subject,
            payload=stored_payload,
            payload_digest=payload_digest,
            prev_hash=prev_hash,
            hash_alg=HASH_ALG,
            hash=event_hash(
                seq=seq,
                recorded_at=recorded_at,
                actor=actor,
                action=action,
                subject=subject,
                payload_digest=payload_digest,
                prev_hash=prev_hash,
                hash_alg=HASH_ALG,
            ),
        )
        session.add(event)
        session.info[_HEAD_KEY] = (session.get_transaction(), seq, event.hash)
        return event

    def _next(self, session: Session) -> tuple[int, str]:
        """Sequence number and previous hash for the next event of this transaction.

        The head is read once per transaction, under the writers' lock, then followed in
        memory: a use case appending ten events does not query the head ten times.
        """
        cached = session.info.get(_HEAD_KEY)
        if cached is not None and cached[0] is session.get_transaction():
            return cached[1] + 1, cached[2]
        self._lock(session)
        head = self.head_position(session)
        return (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)

    # -- anchoring -----------------------------------------------------------------------
    @staticmethod
    def last_anchor(session: Session) -> JournalAnchor | None:
        return session.exec(
            select(JournalAnchor).order_by(col(JournalAnchor.seq).desc()).limit(1)
        ).first()

    def anchor_due(self, session: Session) -> bool:
        head = self.head_position(session)
        if head is None:
            return False
        last = session.exec(
            select(JournalAnchor.head_seq, JournalAnchor.tst_time)
            .order_by(col(JournalAnchor.seq).desc())
            .limit(1)
        ).first()
        if last is None:
            return True
        last_head_seq, last_time = last
        if head[0] - last_head_seq >= self.anchor_every:
            return True
        return head[0] > last_head_seq and utcnow() - last_time >= self.anchor_max_age

    def anchor(self, session: Session, stamp: Stamp) -> JournalAnchor | None:
        """Timestamp the current head; None when nothing happened since the last anchor."""
        self._lock(session)
        head = self.head(session)
        if head is None:
            return None
        last = self.last_anchor(session)
        if last is not None and last.head_seq == head.seq:
            return None
        seq = last.seq + 1 if last else 1
        prev_anchor_hash = last.anchor_hash if last else GENESIS_HASH
        body = anchor_body(
            seq=seq, head_seq=head.seq, head_hash=head.hash, prev_anchor_hash=prev_anchor_hash
        )
        body_digest = hashlib.new(HASH_ALG, body).digest()
        token = stamp(body_digest)
        anchor = JournalAnchor(
            seq=seq,
            head_seq=head.seq,
            head_hash=head.hash,
            prev_anchor_hash=prev_anchor_hash,
            anchor_hash=body_digest.hex(),
            hash_alg=HASH_ALG,
            tst=token.response_der,
            tst_serial=str(token.serial),
            tst_time=token.gen_time,
        )
        session.add(anchor)
        session.flush()
        return anchor

    # -- verification --------------------------------------------------------------------
    @staticmethod
    def check_events(events: Iterable[JournalEvent]) -> tuple[int, str, list[JournalProblem]]:
        """Walk events in ``seq`` order; returns (count, head hash, problems)."""
        problems: list[JournalProblem] = []
        expected_seq = 1
        prev_hash = GENESIS_HASH
        count = 0
        for event in events:
            count += 1
            if event.seq != expected_seq:
                problems.append(
                    JournalProblem(
                        event.seq, f"sequence gap: expected {expected_seq} (rows missing)"
                    )
                )
            if event.hash_alg not in hashlib.algorithms_guaranteed:
                problems.append(JournalProblem(event.seq, f"unknown hash {event.hash_alg!r}"))
                prev_hash, expected_seq = event.hash, event.seq + 1
                continue
            if event.prev_hash != prev_hash:
                problems.append(
                    JournalProblem(event.seq, "previous-hash link broken (deleted or reordered)")
                )
            if canonical_digest(event.payload, event.hash_alg) != event.payload_digest:
                problems.append(JournalProblem(event.seq, "payload does not match its digest"))
            if recompute_hash(event) != event.hash:
                problems.append(JournalProblem(event.seq, "hash does not match the row (edited)"))
            prev_hash, expected_seq = event.hash, event.seq + 1
        return count, prev_hash, problems

    def verify(self, session: Session, verify_token: TokenVerifier) -> JournalCheck:
        events = session.exec(select(JournalEvent).order_by(col(JournalEvent.seq))).yield_per(1000)
        count, head_hash, problems = self.check_events(events)
        head = self.head(session)
        head_seq = head.seq if head else 0
        anchors = list(session.exec(select(JournalAnchor).order_by(col(JournalAnchor.seq))))
        prev_anchor_hash = GENESIS_HASH
        for index, anchor in enumerate(anchors, start=1):
            where = f"anchor {anchor.seq}"
            if anchor.seq != index:
                problems.append(JournalProblem(None, f"{where}: anchor sequence gap"))
            if anchor.prev_anchor_hash != prev_anchor_hash:
                problems.append(JournalProblem(None, f"{where}: link to previous anchor broken"))
            digest = anchor_digest(anchor)
            if digest.hex() != anchor.anchor_hash:
                problems.append(JournalProblem(None, f"{where}: anchor row edited"))
            for problem in verify_token(anchor.tst, digest):
                problems.append(JournalProblem(None, f"{where}: timestamp token: {problem}"))
            anchored = session.get(JournalEvent, anchor.head_seq)
            if anchored is None:
                problems.append(
                    JournalProblem(
                        anchor.head_seq, f"{where} covers an event that no longer exists"
                    )
                )
            elif anchored.hash != anchor.head_hash:
                problems.append(
                    JournalProblem(
                        anchor.head_seq, f"{where}: event differs from what was anchored"
                    )
                )
            prev_anchor_hash = anchor.anchor_hash
        return JournalCheck(
            events_checked=count,
            anchors_checked=len(anchors),
            head_seq=head_seq,
            head_hash=head_hash,
            problems=tuple(problems),
        )

    @staticmethod
    def events_for(session: Session, subject: str) -> list[JournalEvent]:
        query = select(JournalEvent).where(JournalEvent.subject == subject)
        return list(session.exec(query.order_by(col(JournalEvent.seq))))
