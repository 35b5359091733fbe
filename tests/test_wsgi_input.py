"""``wsgi.input`` on its own, fed by a scripted ``fetch`` instead of an ASGI server."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import BadRequest, ClientDisconnected
from bridge._wsgi_input import WSGIInput


class Fetch:
    """Plays the adapter's ``fetch``: chunks in order, then a disconnect if asked."""

    def __init__(self, *chunks: bytes, disconnect: bool = False) -> None:
        self.chunks = list(chunks)
        self.disconnect = disconnect
        self.calls = 0

    def __call__(self) -> tuple[bytes, bool]:
        self.calls += 1
        if not self.chunks:
            if self.disconnect:
                raise ClientDisconnected("gone")
            raise AssertionError("fetched past the end of the body")
        chunk = self.chunks.pop(0)
        return chunk, bool(self.chunks) or self.disconnect


def body(*chunks: bytes) -> tuple[WSGIInput, Fetch]:
    fetch = Fetch(*chunks)
    return WSGIInput(fetch), fetch


# read()


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param((b"hello world",), id="one-chunk"),
        pytest.param((b"hel", b"lo ", b"world"), id="three-chunks"),
        pytest.param((b"", b"hello", b"", b" world", b""), id="empty-chunks-between"),
        pytest.param((b"h", b"e", b"l", b"l", b"o", b" ", b"world"), id="tiny-chunks"),
    ],
)
@pytest.mark.parametrize("size", [-1, None])
def test_read_all(chunks: tuple[bytes, ...], size: int | None) -> None:
    stream, fetch = body(*chunks)
    assert stream.read(size) == b"hello world"
    assert fetch.calls == len(chunks)
    assert stream.read(size) == b""
    assert fetch.calls == len(chunks)  # past the end: no more fetching


def test_read_without_argument() -> None:
    stream, _ = body(b"ab", b"cd")
    assert stream.read() == b"abcd"
    assert stream.read() == b""


def test_read_sized_pulls_only_what_it_needs() -> None:
    stream, fetch = body(b"abc", b"def", b"ghi")
    assert stream.read(2) == b"ab"
    assert fetch.calls == 1
    assert stream.read(1) == b"c"
    assert fetch.calls == 1  # served from the buffer
    assert stream.read(4) == b"defg"
    assert fetch.calls == 3
    assert stream.read(100) == b"hi"  # fewer only at the end
    assert stream.read(100) == b""
    assert stream.read(1) == b""
    assert fetch.calls == 3


def test_read_zero_fetches_nothing() -> None:
    stream, fetch = body(b"abc")
    assert stream.read(0) == b""
    assert fetch.calls == 0


def test_read_returns_bytes_not_bytearray() -> None:
    stream, _ = body(b"abc", b"def")
    assert type(stream.read(4)) is bytes
    assert type(stream.read()) is bytes
    assert type(stream.readline()) is bytes


def test_first_chunk_and_no_more() -> None:
    fetch = Fetch()
    stream = WSGIInput(fetch, first=b"line 1\nrest", more=False)
    assert stream.readline() == b"line 1\n"
    assert stream.read() == b"rest"
    assert stream.read(5) == b""
    assert fetch.calls == 0


def test_empty_body_reads_nothing() -> None:
    fetch = Fetch()
    stream = WSGIInput(fetch, more=False)
    assert stream.read() == b""
    assert stream.read(10) == b""
    assert stream.readline() == b""
    assert stream.readlines() == []
    assert list(stream) == []
    assert fetch.calls == 0


# readline(), readlines(), iteration


def test_readline_across_chunks() -> None:
    stream, fetch = body(b"one\ntw", b"o\nthr", b"ee")
    assert stream.readline() == b"one\n"
    assert fetch.calls == 1
    assert stream.readline() == b"two\n"
    assert fetch.calls == 2
    assert stream.readline() == b"three"  # the last line has no newline
    assert stream.readline() == b""
    assert stream.readline() == b""


@pytest.mark.parametrize(
    ("size", "lines"),
    [
        pytest.param(0, [b"", b""], id="zero"),
        pytest.param(1, [b"a", b"b"], id="one"),
        pytest.param(4, [b"abcd", b"efgh"], id="shorter-than-line"),
        pytest.param(9, [b"abcdefgh\n", b"xy"], id="whole-line"),
        pytest.param(50, [b"abcdefgh\n", b"xy"], id="longer-than-line"),
        pytest.param(-1, [b"abcdefgh\n", b"xy"], id="negative"),
        pytest.param(None, [b"abcdefgh\n", b"xy"], id="none"),
    ],
)
def test_readline_size(size: int | None, lines: list[bytes]) -> None:
    stream, _ = body(b"abc", b"defgh\nxy")
    assert [stream.readline(size), stream.readline(size)] == lines


def test_readline_with_size_does_not_fetch_past_it() -> None:
    stream, fetch = body(b"abcd", b"efgh")
    assert stream.readline(3) == b"abc"
    assert fetch.calls == 1


def test_readlines() -> None:
    stream, _ = body(b"a\nb", b"\n\nc")
    assert stream.readlines() == [b"a\n", b"b\n", b"\n", b"c"]
    assert stream.readlines() == []


@pytest.mark.parametrize(
    ("hint", "lines"),
    [
        pytest.param(1, [b"aa\n"], id="stops-after-first"),
        pytest.param(3, [b"aa\n"], id="exactly-first"),
        pytest.param(4, [b"aa\n", b"bb\n"], id="into-second"),
        pytest.param(0, [b"aa\n", b"bb\n", b"cc\n"], id="zero-means-all"),
        pytest.param(-1, [b"aa\n", b"bb\n", b"cc\n"], id="negative-means-all"),
        pytest.param(None, [b"aa\n", b"bb\n", b"cc\n"], id="none-means-all"),
    ],
)
def test_readlines_hint(hint: int | None, lines: list[bytes]) -> None:
    stream, _ = body(b"aa\nbb\ncc\n")
    assert stream.readlines(hint) == lines


def test_iteration_yields_lines() -> None:
    stream, fetch = body(b"x\ny", b"\nz")
    assert iter(stream) is stream
    assert list(stream) == [b"x\n", b"y\n", b"z"]
    assert list(stream) == []
    assert fetch.calls == 2


def test_mixed_reads_share_one_buffer() -> None:
    stream, _ = body(b"head\nbo", b"dy\ntail")
    assert stream.read(2) == b"he"
    assert stream.readline() == b"ad\n"
    assert next(stream) == b"body\n"
    assert stream.read() == b"tail"


# readinto()


def test_readinto_bytearray() -> None:
    stream, _ = body(b"abc", b"def")
    target = bytearray(4)
    assert stream.readinto(target) == 4
    assert target == b"abcd"
    assert stream.readinto(target) == 2
    assert target == b"efcd"  # only the first two bytes were written
    assert stream.readinto(target) == 0


def test_readinto_memoryview() -> None:
    stream, _ = body(b"0123456789")
    storage = bytearray(b"..........")
    assert stream.readinto(memoryview(storage)[2:5]) == 3
    assert storage == b"..012....."


# Disconnects and limits


def test_disconnect_mid_body_raises_client_disconnected() -> None:
    fetch = Fetch(b"partial ", disconnect=True)
    stream = WSGIInput(fetch)
    assert stream.read(3) == b"par"  # what arrived can be read
    with pytest.raises(ClientDisconnected) as caught:
        stream.read()
    assert isinstance(caught.value, OSError)  # apps catching OSError see it too


@pytest.mark.parametrize(
    "method",
    [
        pytest.param(lambda s: s.read(), id="read"),
        pytest.param(lambda s: s.read(100), id="read-size"),
        pytest.param(lambda s: s.readline(), id="readline"),
        pytest.param(lambda s: s.readlines(), id="readlines"),
        pytest.param(list, id="iteration"),
        pytest.param(lambda s: s.readinto(bytearray(100)), id="readinto"),
    ],
)
def test_every_read_reports_a_disconnect(method: Callable[[WSGIInput], object]) -> None:
    stream = WSGIInput(Fetch(b"no newline here", disconnect=True))
    with pytest.raises(OSError) as caught:
        method(stream)
    assert type(caught.value) is ClientDisconnected


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param((b"12345", b"67890", b"x"), id="over-in-last-chunk"),
        pytest.param((b"12345678901",), id="over-in-one-chunk"),
    ],
)
def test_body_over_limit_is_a_413(chunks: tuple[bytes, ...]) -> None:
    stream = WSGIInput(Fetch(*chunks), limit=10)
    with pytest.raises(BadRequest) as caught:
        stream.read()
    assert caught.value.status_hint == 413
    assert "10 bytes" in str(caught.value)


def test_body_at_limit_is_fine() -> None:
    stream = WSGIInput(Fetch(b"12345", b"67890"), limit=10)
    assert stream.read() == b"1234567890"


def test_first_chunk_over_limit_is_refused_at_once() -> None:
    with pytest.raises(BadRequest) as caught:
        WSGIInput(Fetch(), first=b"12345", limit=4)
    assert caught.value.status_hint == 413


def test_limit_stops_fetching() -> None:
    fetch = Fetch(b"12345", b"67890", b"more", b"never fetched")
    stream = WSGIInput(fetch, limit=8)
    with pytest.raises(BadRequest):
        stream.read()
    assert fetch.calls == 2
    assert stream.read(5) == b"12345"  # what was accepted can still be read
    for _ in range(2):  # but the body never silently ends short
        with pytest.raises(BadRequest):
            stream.read()
    assert fetch.calls == 2


def test_file_like_extras() -> None:
    stream, fetch = body(b"x")
    assert stream.readable() is True
    stream.close()  # a no-op: the server owns the connection
    assert stream.read() == b"x"
    assert fetch.calls == 1


# Differential: any mix of reads over any chunking reads what io.BytesIO reads.

_OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["read", "readline", "readlines", "iter"]),
        st.one_of(st.none(), st.integers(min_value=-1, max_value=40)),
    ),
    max_size=12,
)


@given(
    chunks=st.lists(st.binary(max_size=24).map(lambda b: b.replace(b"\x00", b"\n")), max_size=8),
    operations=_OPERATIONS,
)
@settings(max_examples=300, deadline=None)
def test_reads_match_a_file_of_the_same_bytes(
    chunks: list[bytes], operations: list[tuple[str, int | None]]
) -> None:
    stream, _ = body(*(chunks or [b""]))
    reference = io.BytesIO(b"".join(chunks))
    for name, size in operations:
        if name == "iter":
            assert next(iter(stream), None) == next(iter(reference), None)
        elif name == "readlines":
            assert stream.readlines(size) == reference.readlines(size)
        else:
            assert getattr(stream, name)(size) == getattr(reference, name)(size), (name, size)
    assert stream.read() == reference.read()
