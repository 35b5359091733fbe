"""A Starlette app with lifespan state, server-sent events and background tasks,
served by gunicorn through bridge.

Run it::

    gunicorn -w 2 -k gthread --threads 8 examples.starlette_on_gunicorn.app:wsgi_app
    python examples/starlette_on_gunicorn/app.py      # the standard library's wsgiref

Try ``curl -N http://127.0.0.1:8000/events`` (one event every 100 ms, delivered
one by one), ``curl -X POST -d 'hello' http://127.0.0.1:8000/jobs`` (answers at
once; the job finishes in the background) and ``/jobs`` to list finished jobs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bridge import ASGIToWSGI


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
    # Runs once per worker process, before its first request: open pools here.
    yield {"started_in": os.getpid(), "jobs": []}


async def index(request: Request) -> Response:
    return JSONResponse(
        {
            "message": "Starlette, served by a WSGI server through bridge",
            "worker": request.state.started_in,
        }
    )


async def events(request: Request) -> Response:
    async def stream() -> AsyncIterator[str]:
        for number in range(10):
            yield f"data: event {number}\n\n"
            await anyio.sleep(0.1)

    return StreamingResponse(stream(), media_type="text/event-stream")


async def jobs(request: Request) -> Response:
    finished: list[str] = request.state.jobs
    if request.method == "GET":
        return JSONResponse({"finished": finished})
    payload = (await request.body()).decode("utf-8", "replace")

    async def work() -> None:
        await anyio.sleep(0.2)
        finished.append(payload)

    return JSONResponse({"accepted": payload}, status_code=202, background=BackgroundTask(work))


app = Starlette(
    routes=[
        Route("/", index),
        Route("/events", events),
        Route("/jobs", jobs, methods=["GET", "POST"]),
    ],
    lifespan=lifespan,
)
wsgi_app = ASGIToWSGI(app)

if __name__ == "__main__":
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    with make_server(host, port, wsgi_app, server_class=ThreadingWSGIServer) as server:
        print(f"Serving on http://{host}:{port} (wsgiref; use gunicorn in production)")
        server.serve_forever()
