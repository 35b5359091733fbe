"""The new API, mounted at ``/api`` beside the legacy Django project.

* ``GET /api/notes``: the newest notes (``?limit=``, default 100), oldest first.
* ``POST /api/notes``: ``{"text": "..."}`` creates a note; 201 with the note.
* ``GET /api/events``: server-sent events: ``ready`` once subscribed, then a
  ``note`` event (the note as JSON) for each note created, and a comment line
  every 15 s so proxies keep the stream open.
* ``/api/ws``: a websocket sending ``{"type": "ready"}`` once subscribed, then
  ``{"type": "note", "note": {...}}`` for each note created.

Notes created anywhere in this process reach both streams: through this API, the
legacy admin, or a legacy view, since they come from Django's ``post_save`` signal.

Database access: the Django ORM, through ``asgiref.sync.sync_to_async`` with
``thread_sensitive=True``. One model and one set of migrations stay the source of
truth for the schema, shared by the legacy views and the API, rather than SQL
written twice. Outside Django's own handlers, thread-sensitive calls run one at a
time on a single thread, so the API holds one SQLite connection and its writes
never contend with each other (SQLite allows one writer at a time anyway); the
legacy WSGI threads keep their own connections. A server database such as
PostgreSQL would want ``thread_sensitive=False`` (a thread pool) or Django's async
ORM methods instead. Each call opens and closes its connection the way Django's
request cycle does, so ``CONN_MAX_AGE`` means here what it means in the views.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import anyio
import django
from asgiref.sync import sync_to_async
from fastapi import FastAPI, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_migration.legacy.settings")
django.setup()

from django.db import close_old_connections, transaction  # noqa: E402
from django.db.models.signals import post_save  # noqa: E402

from .legacy.notes.models import Note  # noqa: E402

KEEPALIVE_SECONDS = 15.0
"""Seconds between comment lines on an idle event stream."""

Event = dict[str, Any]
"""A note as JSON-ready data, as the streams send it."""


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=500)


class NoteOut(BaseModel):
    id: int
    text: str
    created_at: datetime


def note_out(note: Note) -> NoteOut:
    return NoteOut(id=note.pk, text=note.text, created_at=note.created_at)


class Broadcaster:
    """Fans new notes out to this process's event-stream and websocket subscribers.

    ``post_save`` fires in whichever thread saved the note (a WSGI worker thread
    for the admin, the ORM thread for the API), so :meth:`publish` hands the event
    to the event loop with ``call_soon_threadsafe``, and only the loop touches the
    subscribers' queues. A subscriber too slow to keep ``queue_size`` events is
    dropped (its stream ends; browsers reconnect and fetch the list again).

    One process only: with several workers, publish through Redis pub/sub or
    PostgreSQL ``LISTEN``/``NOTIFY`` instead.
    """

    def __init__(self, queue_size: int = 100) -> None:
        self.queue_size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[Event | None]] = set()

    def start(self) -> None:
        """Bind to the running loop; called at lifespan startup."""
        self._loop = asyncio.get_running_loop()

    def stop(self) -> None:
        """End every subscriber's stream; called at lifespan shutdown."""
        self._loop = None
        for queue in self._subscribers:
            _end(queue)
        self._subscribers.clear()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Event | None]]:
        """A queue of events, ``None`` when the stream must end."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(self.queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def publish(self, event: Event) -> None:
        """Send ``event`` to every subscriber; safe to call from any thread."""
        loop = self._loop
        if loop is None:
            return  # Not serving (manage.py, a shell): nobody is listening.
        with contextlib.suppress(RuntimeError):  # The loop closed in the meantime.
            loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: Event) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                _end(queue)


def _end(queue: asyncio.Queue[Event | None]) -> None:
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)


broadcaster = Broadcaster()


def _note_saved(sender: type[Note], instance: Note, created: bool, **kwargs: Any) -> None:
    if created:
        event = note_out(instance).model_dump(mode="json")
        # Announce the note once it is visible to other connections.
        transaction.on_commit(lambda: broadcaster.publish(event))


# The new code hooks into the legacy model; the legacy code does not change.
post_save.connect(_note_saved, sender=Note, dispatch_uid="notes-api-live-updates")


@contextlib.contextmanager
def _request_cycle() -> Iterator[None]:
    """Open and close database connections as Django's request cycle does."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


def _list_notes(limit: int) -> list[NoteOut]:
    with _request_cycle():
        newest = list(Note.objects.order_by("-id")[:limit])
        return [note_out(note) for note in reversed(newest)]


def _create_note(text: str) -> NoteOut:
    with _request_cycle():
        return note_out(Note.objects.create(text=text))


list_notes = sync_to_async(_list_notes, thread_sensitive=True)
create_note = sync_to_async(_create_note, thread_sensitive=True)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    broadcaster.start()
    try:
        yield
    finally:
        broadcaster.stop()


api = FastAPI(title="Notes API", lifespan=lifespan)


@api.get("/notes")
async def get_notes(limit: int = Query(100, ge=1, le=1000)) -> list[NoteOut]:
    return await list_notes(limit)


@api.post("/notes", status_code=201)
async def post_note(note: NoteIn) -> NoteOut:
    return await create_note(note.text)


async def _event_stream() -> AsyncIterator[str]:
    with broadcaster.subscribe() as queue:
        # Sent once subscribed: a client that fetches the list after this misses nothing.
        yield "retry: 2000\nevent: ready\ndata: {}\n\n"
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if event is None:
                return
            yield f"event: note\ndata: {json.dumps(event)}\n\n"


@api.get("/events")
async def events() -> StreamingResponse:
    return StreamingResponse(
        _event_stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@api.websocket("/ws")
async def notes_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    client_left = False
    with broadcaster.subscribe() as queue:
        await websocket.send_json({"type": "ready"})
        async with anyio.create_task_group() as tasks:

            async def watch_client() -> None:
                nonlocal client_left
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass  # Messages from the client are ignored.
                client_left = True
                tasks.cancel_scope.cancel()

            tasks.start_soon(watch_client)
            with contextlib.suppress(WebSocketDisconnect):
                while (event := await queue.get()) is not None:
                    await websocket.send_json({"type": "note", "note": event})
            tasks.cancel_scope.cancel()
    if not client_left:
        await websocket.close(code=1001)  # Going away: the server stops, or the client lags.
