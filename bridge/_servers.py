"""The servers ``python -m bridge serve`` can run, each loaded only when chosen.

Every runner takes the import string of an app that already speaks the server's
interface (``bridge._served:app``, built from the ``BRIDGE_*`` environment), so that
servers with several worker processes or a reloader can import it in each process.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .exceptions import ServerNotAvailable


@dataclass(frozen=True)
class Options:
    """What the command line asked for."""

    host: str
    port: int
    workers: int
    threads: int
    reload: bool


@dataclass(frozen=True)
class Server:
    """One server: the interface it speaks and the pip extra that installs it.

    ``speaks`` is ``"both"`` for a server with an interface of each kind (granian):
    it serves every app with the app's own. ``program`` names the executable of a
    server that is not a Python module (uWSGI).
    """

    name: str
    speaks: Literal["asgi", "wsgi", "both"]
    module: str
    run: Callable[[str, Options], None]
    program: str | None = None

    def is_installed(self) -> bool:
        if self.program is not None:
            return _find_program(self.program) is not None
        return importlib.util.find_spec(self.module) is not None

    def interface_for(self, app_speaks: Literal["asgi", "wsgi"]) -> Literal["asgi", "wsgi"]:
        """The interface this server serves an app speaking ``app_speaks`` with."""
        return app_speaks if self.speaks == "both" else self.speaks

    def require(self) -> None:
        """:raises ServerNotAvailable: when the server is not installed."""
        if not self.is_installed():
            extra = "" if self.name == "wsgiref" else f"[{self.name}]"
            raise ServerNotAvailable(
                f"Server {self.name!r} is not installed; run pip install 'wsgi-asgi-bridge{extra}'."
            )


def _run_uvicorn(target: str, options: Options) -> None:
    import uvicorn

    uvicorn.run(
        target,
        host=options.host,
        port=options.port,
        workers=options.workers if options.workers > 1 else None,
        reload=options.reload,
    )


def _run_hypercorn(target: str, options: Options) -> None:
    from hypercorn.__main__ import main

    argv = [target, "--bind", f"{options.host}:{options.port}", "--workers", str(options.workers)]
    if options.reload:
        argv.append("--reload")
    sys.exit(main(argv))


def _run_gunicorn(target: str, options: Options) -> None:
    from gunicorn.app.wsgiapp import run

    sys.argv = [
        "gunicorn",
        target,
        "--bind",
        f"{options.host}:{options.port}",
        "--workers",
        str(options.workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(options.threads),
    ]
    if options.reload:
        sys.argv.append("--reload")
    run()


def _run_waitress(target: str, options: Options) -> None:
    import waitress

    from ._importer import import_from_string

    _single_process("waitress", options)
    waitress.serve(
        import_from_string(target), host=options.host, port=options.port, threads=options.threads
    )


def _run_granian(target: str, options: Options) -> None:
    from granian.cli import cli

    interface = os.environ.get("BRIDGE_TARGET", "asgi")
    argv = [
        target,
        "--interface",
        interface,
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--workers",
        str(options.workers),
    ]
    if options.reload:
        argv.append("--reload")
    cli(argv)


def _find_program(name: str) -> str | None:
    """``name`` beside the running interpreter (its venv's scripts), else on ``PATH``."""
    beside = shutil.which(name, path=os.path.dirname(sys.executable))
    return beside or shutil.which(name)


def _run_uwsgi(target: str, options: Options) -> None:
    program = _find_program("uwsgi")
    if program is None:  # pragma: no cover - checked by require()
        raise ServerNotAvailable("Server 'uwsgi' is not installed.")
    # --enable-threads: the bridge's loop runs in a thread of its own (a stub option,
    # always on, in current uWSGI). --die-on-term: uWSGI 2.0 reloads on SIGTERM.
    argv = [
        program,
        *("--http", f"{options.host}:{options.port}", "--master", "--die-on-term"),
        *("--need-app", "--enable-threads", "--processes", str(options.workers)),
        *("--threads", str(options.threads), "--pythonpath", os.getcwd(), "--module", target),
    ]
    if sys.prefix != sys.base_prefix:
        argv += ["--home", sys.prefix]  # the venv this command runs in
    if options.reload:
        argv += ["--py-autoreload", "1"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(program, argv)


def _run_mod_wsgi(target: str, options: Options) -> None:
    from mod_wsgi.express.cli import main

    module, _, attribute = target.partition(":")
    argv = [
        "mod_wsgi-express",
        "start-server",
        *("--application-type", "module", "--entry-point", module),
        *("--callable-object", attribute, "--python-path", os.getcwd()),
        *("--host", options.host, "--port", str(options.port), "--log-to-terminal"),
        *("--processes", str(options.workers), "--threads", str(options.threads)),
    ]
    if os.geteuid() == 0:
        # Apache will not serve as root: its daemon processes run as this user.
        user = os.environ.get("BRIDGE_USER", "www-data")
        argv += ["--user", user, "--group", user]
    if options.reload:
        argv.append("--reload-on-changes")
    sys.argv = argv
    main()


def _run_wsgiref(target: str, options: Options) -> None:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from ._importer import import_from_string

    _single_process("wsgiref", options)

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    app = import_from_string(target)
    with make_server(options.host, options.port, app, ThreadingWSGIServer, QuietHandler) as server:
        server.serve_forever()


def _single_process(name: str, options: Options) -> None:
    if options.workers > 1 or options.reload:
        raise ServerNotAvailable(
            f"Server {name!r} runs one process without a reloader; drop --workers/--reload "
            "or choose --server uvicorn or gunicorn."
        )


SERVERS: dict[str, Server] = {
    server.name: server
    for server in (
        Server("uvicorn", "asgi", "uvicorn", _run_uvicorn),
        Server("hypercorn", "asgi", "hypercorn", _run_hypercorn),
        Server("granian", "both", "granian", _run_granian),
        Server("gunicorn", "wsgi", "gunicorn", _run_gunicorn),
        Server("waitress", "wsgi", "waitress", _run_waitress),
        Server("uwsgi", "wsgi", "uwsgi", _run_uwsgi, program="uwsgi"),
        Server("mod_wsgi", "wsgi", "mod_wsgi", _run_mod_wsgi),
        Server("wsgiref", "wsgi", "wsgiref", _run_wsgiref),
    )
}
