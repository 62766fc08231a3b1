"""A scanning station's hot folder: files dropped in ``DIR`` are taken in once complete.

A file is picked up when its size and modification time have not changed for
``settle_seconds`` (a station that writes then renames is picked up at once after the
rename; names starting with ``.`` or ending in ``.part``/``.tmp`` are ignored). It stays
where it is until its outcome is known and durable: then it moves to ``done/``, or to
``error/`` beside ``NAME.reason.txt``. A watcher restarted meanwhile takes the same file
in again, which intake recognises (same bytes, same document), so nothing is lost or
archived twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlmodel import select

from archive.models import DocumentFlag
from capture.pipeline import FINAL, Pipeline
from storage import session_scope

log = structlog.get_logger("coffre.hotfolder")

IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".reason.txt")


@dataclass(frozen=True)
class Outcome:
    path: Path
    moved_to: Path
    status: str
    document_id: uuid.UUID | None
    reason: str | None = None


class HotFolder:
    def __init__(
        self,
        pipeline: Pipeline,
        root: Path,
        *,
        station: str,
        actor: str,
        enqueue: Callable[[str], None],
        company_ref: str | None = None,
        kind: str | None = None,
        settle_seconds: float = 2.0,
        executor: Executor | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.root = root
        self.done = root / "done"
        self.error = root / "error"
        for folder in (root, self.done, self.error):
            folder.mkdir(parents=True, exist_ok=True)
        self.station = station
        self.actor = actor
        self.enqueue = enqueue
        self.company_ref = company_ref
        self.kind = kind
        self.settle_seconds = settle_seconds
        #: When set (no worker running), processing happens here too.
        self.executor = executor
        self._seen: dict[Path, tuple[int, float, float]] = {}
        self._pending: dict[Path, uuid.UUID] = {}

    @property
    def busy(self) -> bool:
        return bool(self._pending or self._seen)

    def poll(self) -> list[Outcome]:
        outcomes: list[Outcome | None] = []
        for path in self._complete_files():
            try:
                outcomes.append(self._take(path))
            except Exception:  # the store or database is away: the file stays for next time
                log.exception("hotfolder.intake_failed", file=str(path))
        outcomes.extend(self._settle_pending())
        return [o for o in outcomes if o is not None]

    def _complete_files(self) -> list[Path]:
        ready = []
        now = time.time()
        present = set()
        for path in sorted(self.root.iterdir()):
            if (
                not path.is_file()
                or path.name.startswith(".")
                or path.name.endswith(IGNORED_SUFFIXES)
                or path in self._pending
            ):
                continue
            present.add(path)
            stat = path.stat()
            previous = self._seen.get(path)
            self._seen[path] = (stat.st_size, stat.st_mtime, now)
            stable = previous is not None and previous[:2] == (stat.st_size, stat.st_mtime)
            if stable and now - stat.st_mtime >= self.settle_seconds:
                ready.append(path)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready

    def _take(self, path: Path) -> Outcome | None:
        result = self.pipeline.intake(
            path.read_bytes(),
            filename=path.name,
            actor=self.actor,
            source=f"hotfolder:{self.station}",
            company_ref=self.company_ref,
            kind=self.kind,
            station=self.station,
        )
        self._seen.pop(path, None)  # taken in; on failure it stays known, retried next scan
        if result.status == "quarantined":
            return self._move(path, "quarantined", None, f"{result.reason_code}: {result.reason}")
        assert result.document_id is not None
        if result.status in FINAL:
            return self._finish(path, result.document_id, result.status)
        self._pending[path] = result.document_id
        self.enqueue(str(result.document_id))
        if self.executor is not None:
            self.executor.submit(self.pipeline.process_until_final, result.document_id)
        return None

    def _settle_pending(self) -> list[Outcome]:
        outcomes = []
        for path, document_id in list(self._pending.items()):
            status = self.pipeline.document_status(document_id)
            if status in FINAL:
                del self._pending[path]
                outcomes.append(self._finish(path, document_id, status))
        return outcomes

    def _finish(self, path: Path, document_id: uuid.UUID, status: str) -> Outcome:
        if status == "archived":
            return self._move(path, status, document_id, None)
        with session_scope(self.pipeline.archive.engine, read_only=True) as session:
            flags = session.exec(
                select(DocumentFlag).where(DocumentFlag.document_id == document_id)
            ).all()
        reason = "; ".join(f"{f.code}: {f.message}" for f in flags) or status
        return self._move(path, status, document_id, reason)

    def _move(
        self, path: Path, status: str, document_id: uuid.UUID | None, reason: str | None
    ) -> Outcome:
        folder = self.done if status == "archived" else self.error
        target = _free_name(folder / path.name)
        path.replace(target)
        if reason is not None:
            lines = [f"status: {status}", f"reason: {reason}"]
            if document_id is not None:
                lines.append(f"document: {document_id}")
            target.with_name(target.name + ".reason.txt").write_text("\n".join(lines) + "\n")
        return Outcome(path, target, status, document_id, reason)


def _free_name(target: Path) -> Path:
    candidate, n = target, 1
    while candidate.exists():
        candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
        n += 1
    return candidate
