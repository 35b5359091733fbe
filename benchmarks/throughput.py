"""Requests per second under real servers (1 worker, pinned), measured with wrk.

Every server of a group runs for the whole group (idle ones cost nothing); after a
warm-up, each round loads every (case, implementation) once, in turn, so drift
between rounds hits all implementations alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import apps, client
from .report import Check, Figures, at_least_ratio
from .servers import Server, running
from .settings import Settings

UVICORN_POST_CONNECTIONS = 8
GUNICORN_CONNECTIONS = 8
HANDOFF_FLOOR = "hand-off floor"
"""benchmarks.floor: the best an ASGI -> WSGI adapter of this design could do."""


@dataclass(frozen=True)
class Case:
    case: str
    impl: str
    server: str
    """A :data:`~benchmarks.servers.SERVER_KINDS` entry."""
    app: str
    connections: int
    post_size: int | None = None


def _measure(group: str, cases: list[Case], settings: Settings, figures: Figures) -> None:
    """Start one server per (kind, app), warm each up, then run interleaved rounds."""
    servers = {
        (kind, app): Server(kind, app, log_dir=settings.log_dir, uvicorn_http=settings.uvicorn_http)
        for kind, app in dict.fromkeys((case.server, case.app) for case in cases)
    }
    load = settings.load
    with running(list(servers.values())):
        warmed: set[tuple[str, str, int | None]] = set()
        for case in cases:
            if (case.server, case.app, case.post_size) in warmed:
                continue
            warmed.add((case.server, case.app, case.post_size))
            port = servers[case.server, case.app].port
            if settings.warmup > 0:
                load.run(
                    port,
                    connections=case.connections,
                    duration=settings.warmup,
                    post_size=case.post_size,
                )
            else:
                for _ in range(20):
                    method = "GET" if case.post_size is None else "POST"
                    client.request(port, method=method, upload_size=case.post_size)
        for _round in range(settings.rounds):
            for case in cases:
                server = servers[case.server, case.app]
                result = load.run(
                    server.port,
                    connections=case.connections,
                    duration=settings.duration,
                    post_size=case.post_size,
                )
                if server.process is None or server.process.poll() is not None:
                    raise RuntimeError(f"{server.name} exited; log:\n{server.log_tail()}")
                figure = figures.add(group, case.case, case.impl, "req/s", result.rps)
                figure.extra.setdefault("p99_ms", []).append(result.p99_ms)
                figure.extra.setdefault("server", server.name)
                if result.errors:
                    errors = figure.extra.setdefault("errors", {})
                    for name, count in result.errors.items():
                        errors[name] = errors.get(name, 0) + count
                    figure.note = "errors: " + ", ".join(f"{k} {v}" for k, v in errors.items())


def run_uvicorn(settings: Settings, figures: Figures) -> list[Check]:
    group = "uvicorn"
    cases: list[Case] = []
    for connections in (64, 8):
        for impl, app in (
            ("native ASGI", "hello_asgi"),
            ("bridge", "hello_w2a_bridge"),
            ("a2wsgi", "hello_w2a_a2wsgi"),
        ):
            cases.append(Case(f"hello, {connections} conns", impl, "uvicorn", app, connections))
    for impl in ("bridge", "a2wsgi"):
        cases.append(Case("Flask hello, 64 conns", impl, "uvicorn", f"flask_w2a_{impl}", 64))
    post = f"1 MiB POST, {UVICORN_POST_CONNECTIONS} conns"
    for impl, app in (
        ("native ASGI", "upload_asgi"),
        ("bridge", "upload_w2a_bridge"),
        ("a2wsgi", "upload_w2a_a2wsgi"),
    ):
        cases.append(Case(post, impl, "uvicorn", app, UVICORN_POST_CONNECTIONS, post_size=apps.MIB))
    _measure(group, cases, settings, figures)
    checks: list[Check] = []
    for connections in (64, 8):
        case = f"hello, {connections} conns"
        checks.append(
            at_least_ratio(
                figures,
                group,
                case,
                f"WSGI hello, {connections} conns, vs native ASGI",
                "native ASGI",
                0.5,
                baseline_label="native ASGI",
            )
        )
        checks.append(
            at_least_ratio(
                figures,
                group,
                case,
                f"WSGI hello, {connections} conns, vs a2wsgi",
                "a2wsgi",
                3.5,
                baseline_label="a2wsgi",
            )
        )
    checks.append(
        at_least_ratio(
            figures,
            group,
            "Flask hello, 64 conns",
            "Flask hello, 64 conns, vs a2wsgi",
            "a2wsgi",
            2.0,
            baseline_label="a2wsgi",
        )
    )
    checks.append(
        at_least_ratio(
            figures,
            group,
            post,
            f"{post}, vs native ASGI",
            "native ASGI",
            0.8,
            baseline_label="native ASGI",
        )
    )
    return checks


def run_gunicorn(settings: Settings, figures: Figures) -> list[Check]:
    group = "gunicorn"
    cases: list[Case] = []
    conns = GUNICORN_CONNECTIONS
    for worker in ("sync", "gthread"):
        kind = f"gunicorn-{worker}"
        for impl, app in (
            ("native WSGI", "hello_wsgi"),
            ("bridge", "hello_a2w_bridge"),
            ("a2wsgi", "hello_a2w_a2wsgi"),
            (HANDOFF_FLOOR, "hello_a2w_floor"),
        ):
            cases.append(Case(f"{worker}: hello, {conns} conns", impl, kind, app, conns))
        for impl in ("bridge", "a2wsgi"):
            app = f"starlette_a2w_{impl}"
            cases.append(Case(f"{worker}: Starlette hello, {conns} conns", impl, kind, app, conns))
    _measure(group, cases, settings, figures)
    checks: list[Check] = []
    for worker in ("sync", "gthread"):
        checks.append(
            at_least_ratio(
                figures,
                group,
                f"{worker}: hello, {conns} conns",
                f"{worker}: ASGI hello, {conns} conns, vs native WSGI",
                "native WSGI",
                0.85,
                baseline_label="native WSGI",
            )
        )
        floor = at_least_ratio(
            figures,
            group,
            f"{worker}: hello, {conns} conns",
            f"{worker}: hand-off floor (one hop each way, no ASGI app), vs native WSGI",
            "native WSGI",
            0.85,
            baseline_label="native WSGI",
            impl=HANDOFF_FLOOR,
        )
        floor.passed, floor.target = None, "(info)"
        floor.ratio_label = f"{HANDOFF_FLOOR} / native WSGI"
        checks.append(floor)
        checks.append(
            at_least_ratio(
                figures,
                group,
                f"{worker}: Starlette hello, {conns} conns",
                f"{worker}: Starlette hello, {conns} conns, vs a2wsgi",
                "a2wsgi",
                1.7,
                baseline_label="a2wsgi",
            )
        )
    return checks
