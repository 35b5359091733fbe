"""``WSGIToASGI`` reading the app's frames (``bridge._websocket_w2a_frames``) against wsproto.

The same bytes from a WSGI app, cut at random places, go through a plain wsproto client
connection and through :class:`AppFrames` (which reads whole data frames itself and
hands the rest to its own wsproto connection): the messages, pings, pongs and closes
must be the same, and so must the connection's state, for well-formed streams and for
every kind of malformed frame wsproto rejects.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)

from bridge._websocket_w2a_frames import AppFrames

SEEDS = range(12)


def server() -> Connection:
    return Connection(ConnectionType.SERVER)  # open from the start: no handshake


def good_frames(rng: random.Random) -> bytes:
    """An app's frames: messages of many sizes, fragmented ones with control frames
    inside, multi-byte text."""
    app = server()
    data = b""
    for size in (0, 1, 5, 125, 126, 127, 65535, 65536, 300_001):
        data += app.send(BytesMessage(rng.randbytes(size)))
        data += app.send(TextMessage("é" * (size // 2)))
    data += app.send(TextMessage("héllo wörld ✓" * 100))
    data += app.send(BytesMessage(rng.randbytes(1001), message_finished=False))
    data += app.send(Ping(b"between"))
    data += app.send(BytesMessage(rng.randbytes(2002), message_finished=True))
    data += app.send(TextMessage("ünïcode ", message_finished=False))
    data += app.send(Pong(b"pong"))
    data += app.send(TextMessage("split", message_finished=True))
    data += app.send(TextMessage("after the fragments"))
    return data


def close_frame() -> bytes:
    return server().send(CloseConnection(4000, "done"))


BAD_FRAMES = {
    "rsv1 set": bytes([0xC1, 0x02]) + b"hi",
    "masked by the server": bytes([0x81, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2]),
    "length in 2 bytes where 1 would do": bytes([0x82, 126, 0, 5]) + b"abcde",
    "length in 8 bytes where 2 would do": bytes([0x82, 127])
    + (300).to_bytes(8, "big")
    + b"x" * 300,
    "length with the top bit": bytes([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]) + b"x",
    "reserved data opcode": bytes([0x83, 0x00]),
    "reserved control opcode": bytes([0x8B, 0x00]),
    "invalid utf-8": bytes([0x81, 0x02, 0xFF, 0xFE]),
    "utf-8 cut short": bytes([0x81, 0x01]) + "é".encode()[:1],
    "invalid utf-8 in fragments": bytes([0x01, 0x01, 0x61, 0x80, 0x01, 0xFF]),
    "continuation without a start": bytes([0x80, 0x01]) + b"a",
    "a new message inside a fragmented one": bytes([0x01, 0x01])
    + b"a"
    + bytes([0x81, 0x01])
    + b"b",
    "control frame over 125 bytes": bytes([0x89, 126, 0, 200]) + b"p" * 200,
    "fragmented control frame": bytes([0x09, 0x00]),
    "close with a 1-byte payload": bytes([0x88, 0x01, 0x03]),
    "close with code 1005": bytes([0x88, 0x02, 0x03, 0xED]),
}


def normalized(events: list[Event]) -> list[Any]:
    """Messages joined from their parts (as the relay's Joiner does), the rest as they are."""
    seen: list[Any] = []
    parts: list[Any] = []
    for event in events:
        if isinstance(event, (TextMessage, BytesMessage)):
            parts.append(event.data)
            if event.message_finished:
                kind = "text" if isinstance(event, TextMessage) else "bytes"
                joined = "".join(parts) if kind == "text" else b"".join(map(bytes, parts))
                seen.append((kind, joined))
                parts = []
        elif isinstance(event, (Ping, Pong)):
            seen.append((type(event).__name__, bytes(event.payload)))
        elif isinstance(event, CloseConnection):
            seen.append(("close", event.code, event.reason))
        else:
            seen.append(event)
    if parts:
        seen.append(("unfinished", len(parts)))
    return seen


def cuts(rng: random.Random, length: int) -> list[int]:
    """Places to cut ``length`` bytes: some single bytes, some large pieces."""
    places = {rng.randrange(length) for _ in range(rng.randrange(1, 60))}
    start = rng.randrange(length)
    places.update(range(start, min(length, start + 20)))  # a run of one-byte reads
    return sorted(places)


def through_wsproto(data: bytes, places: list[int]) -> tuple[list[Any], Any]:
    conn = Connection(ConnectionType.CLIENT)
    events: list[Event] = []
    start = 0
    for end in [*places, len(data)]:
        if end > start:
            conn.receive_data(data[start:end])
            events.extend(conn.events())
            start = end
    return normalized(events), conn.state


def through_app_frames(data: bytes, places: list[int], limit: int) -> tuple[list[Any], Any]:
    conn = Connection(ConnectionType.CLIENT)
    frames = AppFrames(conn, limit)
    events: list[Event] = []
    start = 0
    for end in [*places, len(data)]:
        if end > start:
            events.extend(frames.events(data[start:end]))
            start = end
    return normalized(events), conn.state


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("limit", [16 * 1024 * 1024, 1000])
def test_well_formed_frames_give_what_wsproto_gives(seed: int, limit: int) -> None:
    rng = random.Random(seed)
    data = good_frames(rng) + close_frame() + good_frames(rng)
    places = cuts(rng, len(data))
    expected = through_wsproto(data, places)
    assert ("close", 4000, "done") in expected[0]
    assert through_app_frames(data, places, limit) == expected


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bad", list(BAD_FRAMES))
def test_a_malformed_frame_gives_what_wsproto_gives(bad: str, seed: int) -> None:
    rng = random.Random(seed)
    app = server()
    before = app.send(TextMessage("before")) + app.send(BytesMessage(b"\x00" * 300))
    after = app.send(TextMessage("after")) + close_frame()
    data = before + BAD_FRAMES[bad] + after
    places = cuts(rng, len(data))
    expected = through_wsproto(data, places)
    assert ("text", "before") in expected[0]
    assert through_app_frames(data, places, 16 * 1024 * 1024) == expected


def test_whole_data_frames_never_reach_wsproto() -> None:
    """The point of the module: wsproto parses none of them, wherever the bytes are cut."""
    app = server()
    data = b"".join(
        app.send(TextMessage("x" * size)) + app.send(BytesMessage(b"y" * size))
        for size in (0, 10, 200, 70_000)
    )
    conn = Connection(ConnectionType.CLIENT)
    fed: list[bytes] = []
    conn.receive_data = fed.append  # type: ignore[method-assign,assignment]
    frames = AppFrames(conn, 1 << 20)
    events = [
        event
        for start in range(0, len(data), 999)
        for event in frames.events(data[start : start + 999])
    ]
    assert fed == []
    assert all(isinstance(event, (TextMessage, BytesMessage)) for event in events)
    sizes = [len(event.data) for event in events if isinstance(event, (TextMessage, BytesMessage))]
    assert sizes == [0, 0, 10, 10, 200, 200, 70_000, 70_000]


def test_a_frame_over_the_limit_goes_through_wsproto_as_it_arrives() -> None:
    """Memory stays bounded: a frame larger than the message limit is not gathered here."""
    data = server().send(BytesMessage(b"z" * 10_000))
    conn = Connection(ConnectionType.CLIENT)
    frames = AppFrames(conn, 1000)
    events = [event for event in frames.events(data[:3000]) if isinstance(event, BytesMessage)]
    assert events and not events[-1].message_finished  # wsproto's partial frame, at once
    assert sum(len(event.data) for event in events) == 3000 - 4
