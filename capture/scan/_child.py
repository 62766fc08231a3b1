"""One external program run as a child process in its own process group, with a time limit.

Private plumbing shared by :mod:`._ocrmypdf` and :mod:`._tesseract`. A timeout kills the
whole group (workers and grandchildren included); the caller turns :class:`RunFailed`
into a domain error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

_STDERR_TAIL = 4000


class RunFailed(Exception):
    """The program exited with an error (``exit_code``) or was killed (``timed_out``)."""

    def __init__(
        self,
        exit_code: int | None,
        exit_name: str | None,
        stderr_tail: str,
        *,
        timed_out: bool = False,
    ) -> None:
        super().__init__(exit_code, exit_name)
        self.exit_code = exit_code
        self.exit_name = exit_name
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out


def run(
    args: list[str], *, workdir: Path, timeout: float, env: Mapping[str, str]
) -> subprocess.CompletedProcess[bytes]:
    """Run ``args`` in a new process group; raise :class:`RunFailed` on error or timeout.

    ``exit_name`` is left ``None``: only the caller knows what its program's codes mean.
    """
    if not timeout > 0:
        raise RunFailed(None, None, "no time left to start the program", timed_out=True)
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=dict(env),
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        _, stderr = process.communicate()
        raise RunFailed(None, None, tail(stderr), timed_out=True) from None
    finally:
        if process.poll() is None:  # interrupted while waiting
            kill_group(process)
            process.wait()
    if process.returncode != 0:
        raise RunFailed(process.returncode, None, tail(stderr))
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def tail(stderr: bytes) -> str:
    return stderr.decode("utf-8", "replace")[-_STDERR_TAIL:]
