"""Running an ASGI app's lifespan protocol from outside an ASGI server."""

from __future__ import annotations

import logging
from typing import Any, Literal

import anyio

from .exceptions import ASGIProtocolError
from .types import ASGIApp, Message

logger = logging.getLogger("bridge")

LifespanMode = Literal["auto", "on", "off"]


class LifespanFailed(RuntimeError):
    """The app's ``lifespan.startup`` failed; requests are answered 500."""


class Lifespan:
    """Drives ``lifespan.startup`` and ``lifespan.shutdown`` for one app, as uvicorn does.

    ``mode`` follows uvicorn's ``--lifespan``: ``"auto"`` tolerates apps that do not
    speak the protocol (they raise or return on the lifespan scope), ``"on"`` treats
    that as a failure, ``"off"`` never calls the app.
    """

    def __init__(self, app: ASGIApp, mode: LifespanMode, state: dict[str, Any]) -> None:
        self.app = app
        self.mode = mode
        self.state = state
        self.error: str | None = None
        self.supported = mode != "off"
        self._startup_done = anyio.Event()
        self._shutdown_requested = anyio.Event()
        self._shutdown_done = anyio.Event()
        self._startup_sent = False
        self._started = False

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
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            if self._started:
                logger.exception("Exception in the ASGI app's lifespan after startup.")
            elif self.mode == "auto":
                self.supported = False
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                self.error = f"The ASGI app raised in lifespan startup: {exc!r}"
                logger.exception("ASGI lifespan startup failed.")
        else:
            if not self._started and self.error is None:
                if self.mode == "on":
                    self.error = "The ASGI app returned from lifespan without completing startup."
                    logger.error("%s", self.error)
                else:
                    self.supported = False
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def wait_started(self) -> None:
        await self._startup_done.wait()

    async def shutdown(self) -> None:
        """Ask the app to shut down and wait until it has."""
        self._shutdown_requested.set()
        await self._shutdown_done.wait()

    async def _receive(self) -> Message:
        if not self._startup_sent:
            self._startup_sent = True
            return {"type": "lifespan.startup"}
        await self._shutdown_requested.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._started = True
            self._startup_done.set()
        elif kind == "lifespan.startup.failed":
            self.error = message.get("message") or "lifespan.startup.failed"
            logger.error("ASGI lifespan startup failed: %s", self.error)
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            logger.error("ASGI lifespan shutdown failed: %s", message.get("message", ""))
            self._shutdown_done.set()
        else:
            raise ASGIProtocolError(f"Unexpected ASGI message {kind!r} in the lifespan protocol.")
