"""The ASGI lifespan protocol, both ways.

* :class:`Lifespan` drives an ASGI app's ``lifespan.startup`` and
  ``lifespan.shutdown`` from outside an ASGI server, as uvicorn does: for
  ``ASGIToWSGI`` (once per process, on its loop thread) and for ``Mount`` (once per
  mounted ASGI app).
* :func:`answer_lifespan` is ``WSGIToASGI``'s side: a WSGI app has no lifespan, so
  it completes both phases at once.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, Literal

import anyio
import anyio.abc

from .exceptions import ASGIProtocolError
from .types import ASGIApp, Message, Receive, Send

logger = logging.getLogger("bridge")

LifespanMode = Literal["auto", "on", "off"]


class _Phase(enum.Enum):
    STARTING = "starting"  # lifespan.startup sent (or about to be), no answer yet
    STARTED = "started"  # lifespan.startup.complete
    UNSUPPORTED = "unsupported"  # the app does not speak lifespan ("auto" tolerates it)
    FAILED = "failed"  # startup failed: requests are refused
    ENDED = "ended"  # shutdown answered, or the app returned after startup


class Lifespan:
    """Drives ``lifespan.startup`` and ``lifespan.shutdown`` for one app.

    ``mode`` follows uvicorn's ``--lifespan``: ``"auto"`` tolerates apps that do not
    speak the protocol (they raise or return on the lifespan scope, or answer it with
    a message of another protocol), ``"on"`` treats that as a failure, ``"off"``
    never calls the app. ``state`` is the scope's ``"state"``: what the app puts
    there is copied into each request's scope.
    """

    def __init__(
        self, app: ASGIApp, mode: LifespanMode, state: dict[str, Any] | None = None
    ) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {} if state is None else state
        self.error: str | None = None
        """Why startup failed; requests are refused while it is set."""
        self._phase = _Phase.UNSUPPORTED if mode == "off" else _Phase.STARTING
        self.supported = mode != "off"
        """Whether the app speaks lifespan (its requests get a copy of ``state``)."""
        self._startup_done = anyio.Event()
        self._shutdown_requested = anyio.Event()
        self._shutdown_done = anyio.Event()
        self._startup_sent = False
        self._scope: anyio.CancelScope | None = None

    @property
    def started(self) -> bool:
        """Whether startup has ended, whichever way."""
        return self._startup_done.is_set()

    async def start(self, task_group: anyio.abc.TaskGroup, timeout: float) -> None:
        """Run the lifespan task in ``task_group``; wait up to ``timeout`` s for startup."""
        task_group.start_soon(self.run)
        with anyio.move_on_after(timeout):
            await self.wait_started()
        if not self.started:
            self._fail(f"Lifespan startup did not finish within {timeout} s.")
            logger.error("%s", self.error)

    async def stop(self, timeout: float) -> None:
        """Run shutdown when startup succeeded; wait up to ``timeout`` s for it."""
        if self._phase is _Phase.STARTED:
            with anyio.move_on_after(timeout):
                await self.shutdown()

    async def run(self) -> None:
        """The lifespan task: call the app and report what it says."""
        if self.mode == "off":
            self._startup_done.set()
            self._shutdown_done.set()
            return
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            with anyio.CancelScope() as self._scope:
                await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            if self._phase is _Phase.STARTED:
                logger.exception("Exception in the ASGI app's lifespan after startup.")
            elif self._phase is _Phase.STARTING:
                if self.mode == "auto":
                    self._unsupported()
                    logger.info("ASGI 'lifespan' protocol appears unsupported.")
                else:
                    self._fail(f"The ASGI app raised in lifespan startup: {exc!r}")
                    logger.exception("ASGI lifespan startup failed: %r", exc)
        else:
            if self._phase is _Phase.STARTING:
                if self.mode == "on":
                    self._fail("The ASGI app returned from lifespan without completing startup.")
                    logger.error("%s", self.error)
                else:
                    self._unsupported()
        finally:
            if self._phase is _Phase.STARTED:
                self._phase = _Phase.ENDED
            self._startup_done.set()
            self._shutdown_done.set()

    async def wait_started(self) -> None:
        await self._startup_done.wait()

    async def shutdown(self) -> None:
        """Ask the app to shut down and wait until it has."""
        self._shutdown_requested.set()
        await self._shutdown_done.wait()

    def _unsupported(self) -> None:
        self._phase = _Phase.UNSUPPORTED
        self.supported = False

    def _fail(self, error: str) -> None:
        self._phase = _Phase.FAILED
        self.error = error

    async def _receive(self) -> Message:
        if not self._startup_sent:
            self._startup_sent = True
            return {"type": "lifespan.startup"}
        await self._shutdown_requested.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete" and self._phase is _Phase.STARTING:
            self._phase = _Phase.STARTED
            self._startup_done.set()
        elif kind == "lifespan.startup.failed" and self._phase is _Phase.STARTING:
            self._fail(message.get("message") or "lifespan.startup.failed")
            logger.error("ASGI lifespan startup failed: %s", self.error)
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete" and self._shutdown_requested.is_set():
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed" and self._shutdown_requested.is_set():
            logger.error("ASGI lifespan shutdown failed: %s", message.get("message", ""))
            self._shutdown_done.set()
        elif self._phase is _Phase.STARTING and not str(kind).startswith("lifespan."):
            # An app written for http only answered the lifespan scope as a request: it
            # does not speak lifespan. Stop it here, before it reads a one-shot body,
            # and cancel it in case it waits for a message that never comes.
            self._not_lifespan(repr(kind))
            raise ASGIProtocolError(f"{kind!r} is no lifespan message; lifespan is off.")
        else:
            raise ASGIProtocolError(f"Unexpected ASGI message {kind!r} in the lifespan protocol.")

    def _not_lifespan(self, answer: str) -> None:
        if self.mode == "on":
            self._fail(f"The ASGI app answered lifespan startup with {answer}.")
            logger.error("%s", self.error)
        else:
            self._unsupported()
            logger.warning(
                "The ASGI app answered the lifespan scope with %s: it does not speak "
                "lifespan, so requests are served without it.",
                answer,
            )
        self._startup_done.set()
        assert self._scope is not None
        self._scope.cancel()  # the app waits for a message that never comes


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Complete lifespan startup and shutdown for an app that has none (a WSGI app)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
