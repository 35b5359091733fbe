"""Reading a peer's frames (``bridge._websocket_frames``) against wsproto, both sides.

The same bytes, cut at random places, go through a plain wsproto connection and
through :class:`WholeFrames` (which reads whole data frames itself and hands the rest
to its own wsproto connection): the messages, pings, pongs and closes must be the
same, and so must the connection's state, for well-formed streams and for every kind
of malformed frame wsproto rejects. Both sides: a WSGI app's unmasked frames as
``WSGIToASGI`` reads them (wsproto as the client), and a client's masked frames as
``ASGIToWSGI`` reads them (wsproto as the server, with the C masker when available).
"""

from __future__ import annotations

import itertools
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

from bridge._websocket_frames import WholeFrames
from bridge._websocket_masking import unmask_in_c

SEEDS = range(10)
LIMIT = 16 * 1024 * 1024
SIDES = ["app", "client"]  # whose frames are read: the WSGI app's, or a client's


def sender(side: str) -> Connection:
    """The peer that writes the frames, open from the start (no handshake)."""
    return Connection(ConnectionType.SERVER if side == "app" else ConnectionType.CLIENT)


def reader(side: str) -> Connection:
    """The relay's connection reading them."""
    if side == "app":
        return Connection(ConnectionType.CLIENT)
    conn = Connection(ConnectionType.SERVER)
    unmask_in_c(conn)  # as ASGIToWSGI's; a no-op without the websockets library
    return conn


def good_frames(side: str, rng: random.Random) -> bytes:
    """Messages of many sizes, fragmented ones with control frames inside, multi-byte text."""
    peer = sender(side)
    data = b""
    for size in (0, 1, 5, 125, 126, 127, 65535, 65536, 300_001):
        data += peer.send(BytesMessage(rng.randbytes(size)))
        data += peer.send(TextMessage("é" * (size // 2)))
    data += peer.send(TextMessage("héllo wörld ✓" * 100))
    data += peer.send(BytesMessage(rng.randbytes(1001), message_finished=False))
    data += peer.send(Ping(b"between"))
    data += peer.send(BytesMessage(rng.randbytes(2002), message_finished=True))
    data += peer.send(TextMessage("ünïcode ", message_finished=False))
    data += peer.send(Pong(b"pong"))
    data += peer.send(TextMessage("split", message_finished=True))
    data += peer.send(TextMessage("after the fragments"))
    return data


def close_frame(side: str) -> bytes:
    return sender(side).send(CloseConnection(4000, "done"))


_KEY = bytes((0x37, 0xFA, 0x21, 0x3D))


def frame(first: int, payload: bytes, masked: bool, length: int | None = None) -> bytes:
    """A hand-made frame: ``first`` is FIN, RSV and opcode; ``length`` forces the
    form of the length (126: two bytes, 127: eight) or, past it, a false length."""
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if length is None:
        length = size if size < 126 else 126 if size < 65536 else 127
    head = bytes((first, mask_bit | min(length, 127)))
    if length == 126:
        head += size.to_bytes(2, "big")
    elif length == 127:
        head += size.to_bytes(8, "big")
    elif length > 127:
        head = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    if not masked:
        return head + payload
    return head + _KEY + bytes(byte ^ _KEY[index % 4] for index, byte in enumerate(payload))


def bad_frames(masked: bool) -> dict[str, bytes]:
    return {
        "rsv1 set": frame(0xC1, b"hi", masked),
        "masked the wrong way": frame(0x82, b"hi", not masked),
        "length in 2 bytes where 1 would do": frame(0x82, b"abcde", masked, 126),
        # 128 bytes (132 masked) in all, 126 after the header's first two (and key).
        "length in 2 bytes where 1 would do, read alone": frame(0x82, b"x" * 124, masked, 126),
        "length in 8 bytes where 2 would do": frame(0x82, b"x" * 300, masked, 127),
        "length with the top bit": frame(0x82, b"x", masked, 1 << 63),
        "reserved data opcode": frame(0x83, b"", masked),
        "reserved control opcode": frame(0x8B, b"", masked),
        "invalid utf-8": frame(0x81, b"\xff\xfe", masked),
        "utf-8 cut short": frame(0x81, "é".encode()[:1], masked),
        "invalid utf-8 in fragments": frame(0x01, b"a", masked) + frame(0x80, b"\xff", masked),
        "continuation without a start": frame(0x80, b"a", masked),
        "a new message inside a fragmented one": frame(0x01, b"a", masked)
        + frame(0x81, b"b", masked),
        "control frame over 125 bytes": frame(0x89, b"p" * 200, masked),
        "fragmented control frame": frame(0x09, b"", masked),
        "close with a 1-byte payload": frame(0x88, b"\x03", masked),
        "close with code 1005": frame(0x88, b"\x03\xed", masked),
    }


def normalized(events: list[Event]) -> list[Any]:
    """Messages joined from their parts (as the relays' Joiner does), the rest as they are."""
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


def pieces(data: bytes, places: list[int]) -> list[bytes]:
    bounds = [0, *places, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds) if end > start]


def through_wsproto(side: str, data: bytes, places: list[int]) -> tuple[list[Any], Any]:
    conn = reader(side)
    events: list[Event] = []
    for piece in pieces(data, places):
        conn.receive_data(piece)
        events.extend(conn.events())
    return normalized(events), conn.state


def through_whole_frames(
    side: str, data: bytes, places: list[int], limit: int = LIMIT
) -> tuple[list[Any], Any]:
    conn = reader(side)
    frames = WholeFrames(conn, limit, masked=side == "client")
    events: list[Event] = []
    for piece in pieces(data, places):
        events.extend(frames.events(piece))
    return normalized(events), conn.state


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("limit", [LIMIT, 1000])
def test_well_formed_frames_give_what_wsproto_gives(side: str, seed: int, limit: int) -> None:
    rng = random.Random(seed)
    data = good_frames(side, rng) + close_frame(side) + good_frames(side, rng)
    places = cuts(rng, len(data))
    expected = through_wsproto(side, data, places)
    assert ("close", 4000, "done") in expected[0]
    assert through_whole_frames(side, data, places, limit) == expected


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("bad", list(bad_frames(False)))
def test_a_malformed_frame_gives_what_wsproto_gives(side: str, bad: str, seed: int) -> None:
    rng = random.Random(seed)
    peer = sender(side)
    before = peer.send(TextMessage("before")) + peer.send(BytesMessage(b"\x00" * 300))
    after = peer.send(TextMessage("after")) + close_frame(side)
    data = before + bad_frames(side == "client")[bad] + after
    places = cuts(rng, len(data))
    expected = through_wsproto(side, data, places)
    assert ("text", "before") in expected[0]
    assert expected[0][2][0] == "close", "wsproto rejects the frame"
    assert through_whole_frames(side, data, places) == expected


@pytest.mark.parametrize("side", SIDES)
def test_whole_data_frames_never_reach_wsproto(side: str) -> None:
    """The point of the module: wsproto parses none of them, wherever the bytes are cut."""
    peer = sender(side)
    data = b"".join(
        peer.send(TextMessage("x" * size)) + peer.send(BytesMessage(b"y" * size))
        for size in (0, 10, 200, 70_000)
    )
    conn = reader(side)
    fed: list[bytes] = []
    conn.receive_data = fed.append  # type: ignore[method-assign,assignment]
    frames = WholeFrames(conn, 1 << 20, masked=side == "client")
    events = [
        event
        for piece in pieces(data, list(range(999, len(data), 999)))
        for event in frames.events(piece)
    ]
    assert fed == []
    assert [event.data for event in events if isinstance(event, (TextMessage, BytesMessage))] == [
        data for size in (0, 10, 200, 70_000) for data in ("x" * size, b"y" * size)
    ]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("bad", [None, *bad_frames(False)])
def test_one_frame_per_read_gives_what_wsproto_gives(side: str, bad: str | None) -> None:
    """Each read one frame: the short path for a lone short frame, and its refusals."""
    peer = sender(side)
    frames = [peer.send(TextMessage("é" * size)) for size in (0, 1, 62)]
    frames += [peer.send(BytesMessage(b"b" * size)) for size in (0, 1, 125, 126)]
    frames += [frame(0x81, b"x" * 125, side == "client"), frame(0x82, b"", side == "client")]
    if bad is not None:
        frames.append(bad_frames(side == "client")[bad])
    frames += [peer.send(TextMessage("after")), close_frame(side)]
    data = b"".join(frames)
    places = list(itertools.accumulate(len(each) for each in frames[:-1]))
    expected = through_wsproto(side, data, places)
    assert ("text", "after") in expected[0] or bad is not None
    assert through_whole_frames(side, data, places) == expected
    assert through_whole_frames(side, data, places, limit=1) == expected


@pytest.mark.parametrize("side", SIDES)
def test_every_cut_between_and_inside_small_frames(side: str) -> None:
    """A byte at a time, then every place to cut in two: each frame boundary and each
    place inside a header, an empty payload included."""
    peer = sender(side)
    data = b"".join(
        peer.send(TextMessage("t" * size)) + peer.send(BytesMessage(b"b" * size))
        for size in (0, 1, 126, 0)
    )
    data += peer.send(Ping(b"")) + peer.send(TextMessage("")) + close_frame(side)
    one_by_one = list(range(1, len(data)))
    assert through_whole_frames(side, data, one_by_one) == through_wsproto(side, data, one_by_one)
    for place in range(1, len(data)):
        expected = through_wsproto(side, data, [place])
        assert through_whole_frames(side, data, [place]) == expected, place


@pytest.mark.parametrize("side", SIDES)
def test_a_frame_over_the_limit_goes_through_wsproto_as_it_arrives(side: str) -> None:
    """Memory stays bounded: a frame larger than the message limit is not gathered here."""
    data = sender(side).send(BytesMessage(b"z" * 10_000))
    frames = WholeFrames(reader(side), 1000, masked=side == "client")
    events = [event for event in frames.events(data[:3000]) if isinstance(event, BytesMessage)]
    assert events and not events[-1].message_finished  # wsproto's partial frame, at once
    header = 4 + (4 if side == "client" else 0)
    assert b"".join(map(bytes, (event.data for event in events))) == b"z" * (3000 - header)
