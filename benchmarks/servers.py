"""Server subprocesses on 127.0.0.1: start, readiness poll, worker PID, peak RSS, stop.

Each server runs ``python -m uvicorn|gunicorn benchmarks.apps:NAME`` from
:data:`source_root`, pinned to the server core with ``taskset``. It is stopped by its own PID:
SIGTERM, a bounded wait, then SIGKILL of that PID.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import client

PROJECT_ROOT = Path(__file__).resolve().parent.parent
source_root = PROJECT_ROOT
"""Where server subprocesses import ``bridge`` and ``benchmarks`` from (their working
directory and ``PYTHONPATH``): the project root, or the snapshot the runner takes of it
at the start so that edits made during a run do not mix versions."""
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
GTHREAD_THREADS = 4

SERVER_CPU = 0
"""The core servers are pinned to; clients (wrk, this process) use :data:`CLIENT_CPU`."""
CLIENT_CPU = 1


@functools.cache
def pinning_available() -> bool:
    """True when taskset exists and this process may run on both cores.

    Decided once, before :func:`~benchmarks.__main__.main` pins the runner itself to
    the client core.
    """
    return shutil.which("taskset") is not None and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(
        0
    )


def pin_prefix(cpu: int) -> list[str]:
    """``taskset -c CPU`` when the machine has two cores to split, else nothing."""
    return ["taskset", "-c", str(cpu)] if pinning_available() else []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerError(RuntimeError):
    pass


SERVER_KINDS = ("uvicorn", "gunicorn-sync", "gunicorn-gthread")


class Server:
    """One server subprocess serving ``<module>:<app>`` (``benchmarks.apps`` by default)."""

    def __init__(
        self,
        kind: str,
        app: str,
        *,
        log_dir: Path,
        uvicorn_http: str = "auto",
        ready_path: str = "/",
        module: str = "benchmarks.apps",
        threads: int = GTHREAD_THREADS,
    ) -> None:
        if kind not in SERVER_KINDS:
            raise ValueError(f"Unknown server kind {kind!r}.")
        self.kind = kind
        self.app = app
        self.log_path = log_dir / f"{kind}-{app}.log"
        self.uvicorn_http = uvicorn_http
        self.ready_path = ready_path
        self.module = module
        self.threads = threads
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.app}"

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def _command(self) -> list[str]:
        target = f"{self.module}:{self.app}"
        if self.kind == "uvicorn":
            args: Sequence[str] = [
                "uvicorn",
                target,
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--http",
                self.uvicorn_http,
                "--timeout-graceful-shutdown",
                "3",
            ]
        else:
            worker = self.kind.split("-", 1)[1]
            args = [
                "gunicorn",
                "--bind",
                f"{HOST}:{self.port}",
                "--workers",
                "1",
                "--worker-class",
                worker,
                "--log-level",
                "warning",
                "--graceful-timeout",
                "3",
                "--timeout",
                "300",
            ]
            if worker == "gthread":
                args = [*args, "--threads", str(self.threads)]
            args = [*args, target]
        return [*pin_prefix(SERVER_CPU), sys.executable, "-m", *args]

    def launch(self) -> None:
        """Start the subprocess on a fresh port; :meth:`wait_ready` waits for it."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(source_root), *filter(None, [env.get("PYTHONPATH")])]
        )
        env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
        # The bridge's opt-in scheduling policy is measured on (see docs/deployment.md);
        # BRIDGE_BATCH_SCHEDULING=0 in the environment measures the default instead.
        env.setdefault("BRIDGE_BATCH_SCHEDULING", "1")
        self.port = free_port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self._command(),
                cwd=source_root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        """Poll (bounded) until the server answers; relaunch it if its port was taken."""
        for _attempt in range(3):
            if self._ready():
                return
            self.stop()
            if "address already in use" not in self.log_tail().lower():
                break
            self.launch()
        raise ServerError(f"{self.name} did not start; log tail:\n{self.log_tail()}")

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def _ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if client.answers_http(self.port, self.ready_path):
                return self.worker_pid(timeout=5.0) is not None
            time.sleep(0.05)
        return False

    def worker_pid(self, timeout: float = 5.0) -> int | None:
        """The PID of the process that runs the app: the server itself, or gunicorn's worker."""
        assert self.process is not None
        if self.kind == "uvicorn":
            return self.process.pid
        deadline = time.monotonic() + timeout
        while True:
            children = child_pids(self.process.pid)
            if children:
                return children[0]
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def peak_rss_kib(self) -> int:
        pid = self.worker_pid()
        if pid is None:
            raise ServerError(f"{self.name}: no worker process found.")
        return vm_hwm_kib(pid)

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except OSError as exc:
            return f"<log unreadable: {exc}>"
        return "\n".join(text.splitlines()[-lines:]) or "<log empty>"


def child_pids(parent: int) -> list[int]:
    """PIDs whose parent is ``parent``, from ``/proc/*/stat``, oldest first."""
    found: list[tuple[int, int]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                data = stat.read()
        except OSError:
            continue
        # "pid (comm) state ppid ... starttime(22nd field)"; comm may hold spaces or parens.
        fields = data[data.rindex(b")") + 2 :].split()
        if int(fields[1]) == parent:
            found.append((int(fields[19]), int(entry)))
    return [pid for _, pid in sorted(found)]


def cpu_seconds(pid: int, *, thread: int | None = None) -> float:
    """User and system CPU time of process ``pid``, all its threads (or one ``thread``)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    with open(path, "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kib(pid: int) -> int:
    """The peak resident set size (``VmHWM``) of ``pid``, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise ServerError(f"No VmHWM in /proc/{pid}/status.")


@contextlib.contextmanager
def running(servers: Sequence[Server]) -> Iterator[Sequence[Server]]:
    """Launch every server at once, wait until all answer; stop them all on exit."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in reversed(servers):
            server.stop()
