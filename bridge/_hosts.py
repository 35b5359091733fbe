"""What ``ASGIToWSGI`` needs to know about the WSGI server hosting it.

Theory of operation
-------------------
:class:`~bridge._loop.ProcessLoop` starts one event loop per process and must stop
it, running lifespan shutdown, when that process ends. Python's ``atexit`` is the
end-of-process signal everywhere the interpreter is finalized; some servers end
their workers another way, and a few fork them behind Python's back:

* **uWSGI** forks its workers in C from a master that imported the app, without
  Python's fork hooks (unless run with ``--py-call-osafterfork``), so a pid cached
  by ``os.register_at_fork`` is the master's: :func:`forks_unseen` says to ask the
  kernel instead. Its workers end through ``exit()``, which runs ``uwsgi.atexit``
  and then (unless ``--skip-atexit-teardown``) finalizes Python, which runs
  ``atexit``: :func:`watch_exit` sets ``uwsgi.atexit``, calling the one it replaces.
  A uWSGI started without Python threads (no ``--enable-threads``, one thread per
  worker) holds the GIL between requests, so the loop thread would freeze:
  :func:`require_threads` refuses to start it, naming the flag.
* **granian** runs its workers as ``multiprocessing`` processes, which end with
  ``os._exit()`` and run no ``atexit`` (a forked child), only ``multiprocessing``'s
  own exit finalizers: :func:`watch_exit` registers one.
* **mod_wsgi** finalizes the interpreter after a daemon process has drained its
  requests, which runs ``atexit``. Its ``mod_wsgi.subscribe_shutdown`` callbacks run
  *before* the drain, so they are not used: lifespan shutdown would run under the
  requests still in flight.

Nothing here installs a signal handler.

One quirk concerns errors rather than processes: granian calls the response
iterable's ``close()`` but drops what it raises, so there the bridge logs an app's
exception after its response before it raises it (:func:`drops_close_errors`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import ModuleType

_watched_pid: int | None = None


def _uwsgi() -> ModuleType | None:
    """uWSGI's embedded module, when this process runs under uWSGI."""
    module = sys.modules.get("uwsgi")
    return module if module is not None and hasattr(module, "masterpid") else None


def forks_unseen() -> bool:
    """Whether this process may have been forked without Python's fork hooks (uWSGI)."""
    return _uwsgi() is not None


def require_threads() -> None:
    """:raises RuntimeError: when the server runs Python without threads (uWSGI)."""
    uwsgi = _uwsgi()
    if uwsgi is not None and not getattr(uwsgi, "has_threads", True):
        raise RuntimeError(
            "uWSGI runs this worker with Python threads disabled, so ASGIToWSGI's event "
            "loop thread could not run between requests: start uWSGI with --enable-threads "
            "(or --threads N)."
        )


def watch_exit(close_all: Callable[[], None]) -> None:
    """Have ``close_all`` run when this process ends, by the server's own hooks too.

    Python's ``atexit`` is registered by the caller; this adds the hooks of the
    servers that end a worker without it. Once per process; ``close_all`` must be
    safe to run more than once.
    """
    global _watched_pid
    pid = os.getpid()
    if _watched_pid == pid:
        return
    _watched_pid = pid
    _chain_uwsgi_atexit(close_all)
    _finalize_multiprocessing_child(close_all)


def _chain_uwsgi_atexit(close_all: Callable[[], None]) -> None:
    uwsgi = _uwsgi()
    if uwsgi is None:
        return
    previous: Callable[[], object] | None = getattr(uwsgi, "atexit", None)

    def at_uwsgi_exit() -> None:
        try:
            close_all()
        finally:
            if previous is not None:
                previous()

    setattr(uwsgi, "atexit", at_uwsgi_exit)  # noqa: B010  # a module mypy cannot see


def _finalize_multiprocessing_child(close_all: Callable[[], None]) -> None:
    # Only in a process multiprocessing started: it imported these modules already,
    # and elsewhere importing multiprocessing.util would add an atexit hook of its own.
    process = sys.modules.get("multiprocessing.process")
    util = sys.modules.get("multiprocessing.util")
    if process is None or util is None or process.parent_process() is None:
        return
    util.Finalize(None, close_all, exitpriority=10)


def drops_close_errors(environ: dict[str, object]) -> bool:
    """Whether the server drops an exception the response iterable's ``close()`` raises.

    granian (2.x) calls ``close()`` and ignores what it raises, with no log line.
    """
    return environ.get("SERVER_SOFTWARE") == "Granian"
