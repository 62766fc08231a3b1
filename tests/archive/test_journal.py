"""The journal: an append-only hash chain whose head is anchored by RFC 3161 tokens."""

from __future__ import annotations

import threading
from itertools import pairwise

import pytest
from sqlalchemy.exc import DBAPIError

from archive._aio import run_sync
from archive.journal import GENESIS_HASH, Journal
from archive.service import anchor_if_due
from archive.verify import verify_journal
from storage import session_scope
from tests.tamper import tamper


def _append(archive, n: int, *, actor: str = "test:clerk") -> None:
    with session_scope(archive.engine) as session:
        for i in range(n):
            archive.journal.append(
                session,
                actor=actor,
                action="test.event",
                subject=f"thing:{i}",
                payload={"i": i, "amount": "12.30"},
            )


def _head_seq(archive) -> int:
    """Where the chain stands: starting Coffre already journals its configuration."""
    with session_scope(archive.engine) as session:
        head = Journal.head(session)
    return head.seq if head else 0


def _check(archive):
    with session_scope(archive.engine) as session:
        return verify_journal(archive, session)


def test_chain_links_every_event_to_the_previous_one(archive):
    with session_scope(archive.engine) as session:
        (first,) = archive.journal.events_for(session, "configuration")
    assert first.seq == 1 and first.prev_hash == GENESIS_HASH
    _append(archive, 5)
    with session_scope(archive.engine) as session:
        events = [archive.journal.events_for(session, f"thing:{i}")[0] for i in range(5)]
        head = Journal.head(session)
    assert [e.seq for e in events] == [2, 3, 4, 5, 6]
    assert events[0].prev_hash == first.hash
    assert all(b.prev_hash == a.hash for a, b in pairwise(events))
    assert head is not None and head.seq == 6 and head.hash_alg == "sha256"
    check = _check(archive)
    assert check.ok, check.problems
    assert check.events_checked == 6


def test_anchor_every_n_events_and_chained_anchors(archive):
    archive.journal.anchor_every = 3
    base = _head_seq(archive)
    _append(archive, 3)
    first = anchor_if_due(archive)
    assert first is not None and first.head_seq == base + 3
    assert first.prev_anchor_hash == GENESIS_HASH
    assert anchor_if_due(archive) is None  # nothing new
    _append(archive, 1)
    assert anchor_if_due(archive) is None  # not due yet: 1 < 3 and the last is fresh
    _append(archive, 2)
    second = anchor_if_due(archive)
    assert second is not None and second.prev_anchor_hash == first.anchor_hash
    check = _check(archive)
    assert check.ok, check.problems
    assert check.anchors_checked == 2


def test_database_refuses_update_and_delete(archive):
    _append(archive, 1)
    for sql in ("UPDATE journal_event SET actor = 'mallory'", "DELETE FROM journal_event"):
        with pytest.raises(DBAPIError), session_scope(archive.engine) as session:
            session.connection().exec_driver_sql(sql)


@pytest.mark.parametrize(
    ("label", "table", "sql", "expected"),
    [
        (
            "edited payload",
            "journal_event",
            'UPDATE journal_event SET payload = \'{"i": 2, "amount": "99.99"}\' WHERE seq = 3',
            "event 3: payload does not match",
        ),
        (
            "edited actor",
            "journal_event",
            "UPDATE journal_event SET actor = 'mallory' WHERE seq = 2",
            "event 2: hash does not match",
        ),
        (
            "deleted row",
            "journal_event",
            "DELETE FROM journal_event WHERE seq = 3",
            "event 4: sequence gap",
        ),
        ("reordered rows", "journal_event", "SWAP", "previous-hash link broken"),
        (
            "truncated tail",
            "journal_event",
            "DELETE FROM journal_event WHERE seq >= 5",
            "covers an event that no longer exists",
        ),
        (
            "edited anchor",
            "journal_anchor",
            "UPDATE journal_anchor SET head_seq = 4",
            "anchor 1: anchor row edited",
        ),
    ],
)
def test_tampering_is_detected_and_named(archive, label, table, sql, expected):
    _append(archive, 6)
    anchor_if_due(archive, force=True)
    assert _check(archive).ok
    if sql == "SWAP":
        # Swap two rows through a free number: the primary key is checked row by row.
        for step in (
            "UPDATE journal_event SET seq = 1000 WHERE seq = 2",
            "UPDATE journal_event SET seq = 2 WHERE seq = 3",
            "UPDATE journal_event SET seq = 3 WHERE seq = 1000",
        ):
            tamper(archive.engine, table, step)
    else:
        tamper(archive.engine, table, sql)
    check = _check(archive)
    assert not check.ok, label
    assert any(expected in str(p) for p in check.problems), [str(p) for p in check.problems]


def test_anchor_token_over_another_digest_is_refused(archive):
    _append(archive, 2)
    anchor_if_due(archive, force=True)
    other = run_sync(archive.timestamper.stamp(b"\x00" * 32))
    tamper(
        archive.engine, "journal_anchor", "UPDATE journal_anchor SET tst = :t", t=other.response_der
    )
    check = _check(archive)
    assert any("anchor 1: timestamp token" in str(p) for p in check.problems)


def test_concurrent_writers_keep_one_chain(archive):
    base = _head_seq(archive)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for _ in range(20):
                _append(archive, 1, actor=name)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"test:w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    check = _check(archive)
    assert check.ok, check.problems
    assert check.events_checked == base + 60


def test_configuration_changes_are_journaled_once(runtime):
    from archive.models import JournalEvent
    from coffre.runtime import build_runtime

    def changes() -> list[dict]:
        with session_scope(runtime.archive.engine) as session:
            query = JournalEvent.__table__.select().where(  # type: ignore[attr-defined]
                JournalEvent.action == "configuration.changed"
            )
            return [row.payload for row in session.exec(query).all()]

    assert len(changes()) == 1  # the first start
    build_runtime(runtime.settings).archive.engine.dispose()  # same settings: nothing new
    assert len(changes()) == 1
    journal = runtime.settings.journal.model_copy(update={"anchor_every": 7})
    build_runtime(runtime.settings.model_copy(update={"journal": journal})).archive.engine.dispose()
    payloads = changes()
    assert len(payloads) == 2 and payloads[1]["settings"]["journal"]["anchor_every"] == 7
    assert runtime.settings.storage.s3_secret_key.get_secret_value() not in str(payloads)
