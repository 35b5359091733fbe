"""Unmasking client frames in C (``bridge._websocket_masking``) against wsproto's own.

The same client bytes, cut at random places (so that a payload's chunks start at every
offset of the 4-byte key), go through a wsproto server connection as it is and through
one given the C masker: the events must be the same, frame by frame.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    TextMessage,
)
from wsproto.frame_protocol import XorMaskerSimple

from bridge import _websocket_masking
from bridge._websocket_masking import unmask_in_c

from .websocket_a2w import Echo, RawClient, StandIn, accepted

pytestmark = pytest.mark.skipif(
    not _websocket_masking.AVAILABLE, reason="the websockets library (its C masking) is missing"
)


def client_bytes(rng: random.Random) -> bytes:
    """A client's frames: messages of many sizes, fragmented ones with a ping inside,
    text with multi-byte characters, then a close."""
    client = Connection(ConnectionType.CLIENT)  # open from the start: no handshake
    data = b""
    for size in (0, 1, 3, 5, 125, 126, 127, 65535, 65536, 300_001):
        data += client.send(BytesMessage(rng.randbytes(size)))
    data += client.send(TextMessage("héllo wörld ✓" * 100))
    data += client.send(BytesMessage(rng.randbytes(1001), message_finished=False))
    data += client.send(Ping(b"between"))
    data += client.send(BytesMessage(rng.randbytes(2002), message_finished=True))
    data += client.send(TextMessage("ünïcode ", message_finished=False))
    data += client.send(TextMessage("split", message_finished=True))
    return data + client.send(CloseConnection(4000, "done"))


def server_connection() -> Connection:
    return Connection(ConnectionType.SERVER)


def events(conn: Connection, data: bytes, cuts: list[int]) -> list[Any]:
    seen: list[Any] = []
    start = 0
    for end in [*cuts, len(data)]:
        conn.receive_data(data[start:end])
        start = end
        for event in conn.events():
            if isinstance(event, Message):
                seen.append(
                    (
                        type(event).__name__,
                        bytes(event.data)
                        if isinstance(event.data, (bytes, bytearray))
                        else event.data,
                        event.message_finished,
                    )
                )
            else:
                seen.append(event)
    return seen


@pytest.mark.parametrize("seed", range(8))
def test_the_same_events_as_wsproto_wherever_the_bytes_are_cut(seed: int) -> None:
    rng = random.Random(seed)
    data = client_bytes(rng)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    fast = server_connection()
    assert unmask_in_c(fast)
    assert events(fast, data, cuts) == events(server_connection(), data, cuts)


def test_a_connection_that_has_read_bytes_is_left_as_it_is() -> None:
    conn = server_connection()
    conn.receive_data(b"\x82")  # the first byte of a frame: wsproto holds it
    assert not unmask_in_c(conn)


def test_without_the_library_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_websocket_masking, "AVAILABLE", False)
    conn = server_connection()
    decoder = conn._proto._frame_decoder
    assert not unmask_in_c(conn)
    assert conn._proto._frame_decoder is decoder


@pytest.mark.parametrize("available", [True, False])
def test_the_adapter_unmasks_in_c_when_it_can(
    make_adapter: Any, monkeypatch: pytest.MonkeyPatch, available: bool
) -> None:
    calls: list[int] = []
    real = _websocket_masking._apply_mask
    assert real is not None

    def counting(data: bytes | bytearray, key: bytes) -> bytes:
        calls.append(len(data))
        return real(data, key)

    # Without the library there is no C function at all.
    monkeypatch.setattr(_websocket_masking, "_apply_mask", counting if available else None)
    monkeypatch.setattr(_websocket_masking, "AVAILABLE", available)
    payload = os.urandom(200_000)
    with StandIn(make_adapter(Echo(), lifespan="off")) as server:
        client = RawClient(server.client_sock)
        accepted(client.open())
        client.send(BytesMessage(payload))
        assert client.message() == payload
        client.send(CloseConnection(1000))
        client.closed()
        server.finished()
    assert (sum(calls) >= len(payload)) is available


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 65536, 100_003])
def test_mask_is_wsprotos_masking_with_or_without_c(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, key = os.urandom(size), os.urandom(4)
    expected = bytes(XorMaskerSimple(key).process(bytearray(data)))
    assert _websocket_masking.mask(data, key) == expected
    monkeypatch.setattr(_websocket_masking, "_apply_mask", None)
    assert _websocket_masking.mask(data, key) == expected
