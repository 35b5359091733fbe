"""A response's declared ``Content-Length``, enforced on its body: pure, no I/O.

Both adapters pass a response body across chunk by chunk. When the app declared a
length, :class:`DeclaredLength` clips what goes beyond it (RFC 9112 6.3: the
recipient would read it as the start of the next response) and tells how much is
missing at the end, so the adapter can abort the connection rather than leave the
client waiting for bytes that never come.
"""

from __future__ import annotations

from typing import Final

_NO_BODY_STATUSES: Final = frozenset({204, 304})


class DeclaredLength:
    """How much of a declared body has passed, and what is left.

    ``declared`` is None when the response declares no length: nothing is clipped
    and nothing is missing. A response to ``HEAD``, and a 204 or 304, may declare a
    length and send no body (RFC 9110 8.6): nothing is missing there either.
    """

    __slots__ = ("_body_expected", "dropped", "remaining")

    def __init__(self, declared: int | None, *, method: str = "GET", status: int = 200) -> None:
        self.remaining = declared
        """Bytes still to come; None when no length was declared."""
        self.dropped = 0
        """Bytes clipped so far because they went past the declared length."""
        self._body_expected = method != "HEAD" and status not in _NO_BODY_STATUSES

    @property
    def complete(self) -> bool:
        """True once every declared byte has passed (never when none was declared)."""
        return self.remaining == 0

    def clip(self, chunk: bytes) -> bytes:
        """``chunk`` as far as the declared length allows; counts the rest in ``dropped``."""
        remaining = self.remaining
        if remaining is None:
            return chunk
        size = len(chunk)
        if size <= remaining:
            self.remaining = remaining - size
            return chunk
        self.remaining = 0
        self.dropped += size - remaining
        return chunk[:remaining]

    def shortfall(self) -> int:
        """Declared bytes that never came, once the body has ended (0 when none)."""
        if not self.remaining or not self._body_expected:
            return 0
        return self.remaining


UNDECLARED: Final = DeclaredLength(None)
"""A body with no declared length: nothing is clipped or missing, so one serves all."""
