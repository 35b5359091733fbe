"""The bounds of one WebSocket connection under ``ASGIToWSGI`` (no wsproto needed)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The bounds of one connection."""

    high_water: int = 1048576
    """Bytes buffered each way before the sending side waits."""
    max_message_size: int = 16777216
    """The largest message the app receives; a larger one closes the connection with 1009."""
    ping_interval: float | None = 20.0
    """Seconds of silence from the client before a ping; None: never ping."""
    ping_timeout: float = 20.0
    """Seconds to wait for the pong before the connection counts as lost (1006)."""
    close_timeout: float = 10.0
    """Seconds to wait for the client's close frame, and to write the last bytes."""
