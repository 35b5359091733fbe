"""Streaming through servers: 256 MiB download throughput and time to first byte.

* Download: one 256 MiB response in 64 KiB chunks with Content-Length, read by the
  raw-socket client on the client core; the figure is MiB/s from sending the
  request to the last byte.
* First byte: the app sleeps 100 ms before each of 3 chunks; the figure is the time
  from sending the request to the first byte after the response headers.

The in-process 10 MiB stream is measured by :mod:`benchmarks.inprocess`.
"""

from __future__ import annotations

from . import apps, client
from .inprocess import run_streams_inprocess
from .report import Check, Figures, at_least_ratio, at_most_value
from .servers import Server, running
from .settings import Settings

FIRST_BYTE_LIMIT_MS = 110.0

_DOWNLOADS = (
    ("ASGI->WSGI 256 MiB download, gunicorn sync", "gunicorn-sync", "wsgi", "a2w"),
    ("WSGI->ASGI 256 MiB download, uvicorn", "uvicorn", "asgi", "w2a"),
)
_DRIPS = (
    ("WSGI->ASGI first byte, uvicorn", "uvicorn", "asgi", "w2a"),
    ("ASGI->WSGI first byte, gunicorn sync", "gunicorn-sync", "wsgi", "a2w"),
    ("ASGI->WSGI first byte, gunicorn gthread", "gunicorn-gthread", "wsgi", "a2w"),
)
_NATIVE_LABEL = {"asgi": "native ASGI", "wsgi": "native WSGI"}
_EXPECTED_DRIP = b"".join(b"tick %d\n" % index for index in range(apps.DRIP_CHUNKS))


def run_streams(settings: Settings, figures: Figures) -> list[Check]:
    checks = run_streams_inprocess(settings, figures)
    checks += _run_downloads(settings, figures)
    checks += _run_first_byte(settings, figures)
    return checks


def _impls(native: str, direction: str, case: str) -> list[tuple[str, str]]:
    return [
        (_NATIVE_LABEL[native], f"{case}_{native}"),
        ("bridge", f"{case}_{direction}_bridge"),
        ("a2wsgi", f"{case}_{direction}_a2wsgi"),
    ]


def _run_downloads(settings: Settings, figures: Figures) -> list[Check]:
    group = "streams"
    plan: list[tuple[str, str, Server]] = []
    for case, kind, native, direction in _DOWNLOADS:
        for impl, app in _impls(native, direction, "download"):
            server = Server(
                kind,
                app,
                log_dir=settings.log_dir,
                uvicorn_http=settings.uvicorn_http,
                ready_path="/?size=16",
            )
            plan.append((case, impl, server))
    with running([server for _, _, server in plan]):
        for _case, _impl, server in plan:
            _download(server, apps.MIB)  # warm-up
        for _round in range(settings.big_rounds):
            for case, impl, server in plan:
                seconds = _download(server, apps.BIG_SIZE)
                figure = figures.add(group, case, impl, "MiB/s", apps.BIG_SIZE / apps.MIB / seconds)
                figure.extra.setdefault("server", server.name)
    checks = [
        at_least_ratio(
            figures,
            group,
            _DOWNLOADS[0][0],
            "ASGI->WSGI 256 MiB download under gunicorn sync, vs native WSGI",
            "native WSGI",
            0.6,
            baseline_label="native WSGI",
        )
    ]
    info = at_least_ratio(
        figures,
        group,
        _DOWNLOADS[1][0],
        "WSGI->ASGI 256 MiB download under uvicorn, vs native ASGI",
        "native ASGI",
        0.6,
        baseline_label="native ASGI",
    )
    info.passed, info.target = None, "(info)"
    checks.append(info)
    return checks


def _download(server: Server, size: int) -> float:
    response = client.request(server.port, f"/?size={size}")
    if response.status != 200 or response.body_bytes != size:
        raise RuntimeError(
            f"{server.name}: download of {size} bytes got status {response.status} "
            f"and {response.body_bytes} bytes."
        )
    return response.done_at - response.sent_at


def _run_first_byte(settings: Settings, figures: Figures) -> list[Check]:
    group = "streams"
    plan: list[tuple[str, str, Server]] = []
    for case, kind, native, direction in _DRIPS:
        for impl, app in _impls(native, direction, "drip"):
            server = Server(kind, app, log_dir=settings.log_dir, uvicorn_http=settings.uvicorn_http)
            plan.append((case, impl, server))
    with running([server for _, _, server in plan]):
        for _case, _impl, server in plan:
            _first_byte(server)  # warm-up
        for _round in range(settings.big_rounds):
            for case, impl, server in plan:
                figure = figures.add(group, case, impl, "ms", _first_byte(server))
                figure.extra.setdefault("server", server.name)
    checks = []
    for case, _kind, native, _direction in _DRIPS:
        check = at_most_value(
            figures,
            group,
            case,
            f"{case}: chunk every 100 ms, first body byte",
            FIRST_BYTE_LIMIT_MS,
            reference_impl=_NATIVE_LABEL[native],
            reference_label=_NATIVE_LABEL[native],
        )
        mine = figures.find(group, case, "bridge")
        if mine is not None:
            check.note = f"worst round {max(mine.samples):.1f} ms"
        checks.append(check)
    return checks


def _first_byte(server: Server) -> float:
    response = client.request(server.port, "/")
    if response.status != 200 or response.body != _EXPECTED_DRIP or response.first_body_at is None:
        raise RuntimeError(
            f"{server.name}: drip response was {response.status} {response.body[:80]!r}."
        )
    return (response.first_body_at - response.sent_at) * 1000
