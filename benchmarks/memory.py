"""Server peak RSS added by a 256 MiB upload and by a 256 MiB download.

Each (direction, implementation) gets a fresh server (all are started together and
measured one after another). After a 64 KiB warm-up of the same kind (threads and
loops exist from then on) the runner reads ``VmHWM`` from ``/proc/PID/status`` of
the process running the app (uvicorn's process; gunicorn's worker, a child of the
master found through ``/proc/*/stat``), sends or fetches 256 MiB in 64 KiB pieces,
and reads ``VmHWM`` again. The figure is the difference: what the transfer added to
the worker's peak resident memory.
"""

from __future__ import annotations

from . import apps, client
from .report import Check, Figures, at_most_value
from .servers import Server, running
from .settings import Settings

LIMIT_MIB = 8.0

_PLANS = (
    # (case, server kind, native label, native app prefix, adapter direction)
    ("ASGI->WSGI, gunicorn sync", "gunicorn-sync", "native WSGI", "wsgi", "a2w"),
    ("WSGI->ASGI, uvicorn", "uvicorn", "native ASGI", "asgi", "w2a"),
)


def run_memory(settings: Settings, figures: Figures) -> list[Check]:
    group = "memory"
    plan: list[tuple[str, str, str, Server]] = []
    for label, kind, native_label, native, direction in _PLANS:
        for transfer in ("upload", "download"):
            case = f"{label}: 256 MiB {transfer}"
            for impl, app in (
                (native_label, f"{transfer}_{native}"),
                ("bridge", f"{transfer}_{direction}_bridge"),
                ("a2wsgi", f"{transfer}_{direction}_a2wsgi"),
            ):
                server = Server(
                    kind,
                    app,
                    log_dir=settings.log_dir,
                    uvicorn_http=settings.uvicorn_http,
                    ready_path="/?size=16",
                )
                plan.append((case, impl, transfer, server))
    # Every server is fresh: started together, each measured once, in turn.
    with running([server for *_, server in plan]):
        for case, impl, transfer, server in plan:
            added, before = _measure(server, transfer)
            figure = figures.add(group, case, impl, "MiB", added)
            figure.extra["peak_before_mib"] = before
            figure.extra["server"] = server.name
            figure.note = f"peak before {before:.1f} MiB"
            server.stop()
    checks: list[Check] = []
    for label, _kind, native_label, _native, _direction in _PLANS:
        for transfer in ("upload", "download"):
            case = f"{label}: 256 MiB {transfer}"
            checks.append(
                at_most_value(
                    figures,
                    group,
                    case,
                    f"{case}: added server peak RSS",
                    LIMIT_MIB,
                    reference_impl=native_label,
                    reference_label=native_label,
                )
            )
    return checks


def _measure(server: Server, transfer: str) -> tuple[float, float]:
    """(MiB added to the worker's peak RSS by the transfer, peak before it in MiB)."""
    _transfer(server, transfer, apps.STREAM_CHUNK)
    before = server.peak_rss_kib()
    _transfer(server, transfer, apps.BIG_SIZE)
    after = server.peak_rss_kib()
    if server.process is None or server.process.poll() is not None:
        raise RuntimeError(f"{server.name} exited; log:\n{server.log_tail()}")
    return (after - before) / 1024, before / 1024


def _transfer(server: Server, transfer: str, size: int) -> None:
    if transfer == "upload":
        response = client.request(server.port, "/", method="POST", upload_size=size)
        if response.status != 200 or response.body != b"%d" % size:
            raise RuntimeError(
                f"{server.name}: upload of {size} bytes answered {response.status} "
                f"{response.body[:80]!r}."
            )
    else:
        response = client.request(server.port, f"/?size={size}")
        if response.status != 200 or response.body_bytes != size:
            raise RuntimeError(
                f"{server.name}: download of {size} bytes got {response.status}, "
                f"{response.body_bytes} bytes."
            )
