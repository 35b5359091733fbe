"""How long and how often each group measures (full run and ``--quick``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .load import LoadGenerator


@dataclass
class Settings:
    quick: bool
    rounds: int
    """Interleaved rounds: each round measures every implementation once, in turn."""
    duration: float
    """Seconds of wrk load per measurement."""
    warmup: float
    """Seconds of wrk load per server before the first round (not recorded); 0: just
    20 sequential requests."""
    inprocess_requests: int
    """Requests per in-process measurement of the hello app."""
    stream_repeats: int
    """10 MiB responses per in-process stream measurement."""
    big_rounds: int
    """Rounds of the 256 MiB downloads and of the first-byte probe."""
    bursts: int
    """Measured bursts of 64 blocking requests in the concurrency group."""
    log_dir: Path
    uvicorn_http: str
    load: LoadGenerator

    @classmethod
    def make(
        cls,
        *,
        quick: bool,
        log_dir: Path,
        uvicorn_http: str,
        load: LoadGenerator,
        rounds: int | None = None,
        duration: float | None = None,
    ) -> Settings:
        if quick:
            settings = cls(
                quick=True,
                rounds=2,
                duration=1.0,
                warmup=0.0,
                inprocess_requests=400,
                stream_repeats=3,
                big_rounds=1,
                bursts=3,
                log_dir=log_dir,
                uvicorn_http=uvicorn_http,
                load=load,
            )
        else:
            settings = cls(
                quick=False,
                rounds=5,
                duration=5.0,
                warmup=1.0,
                inprocess_requests=3000,
                stream_repeats=10,
                big_rounds=5,
                bursts=10,
                log_dir=log_dir,
                uvicorn_http=uvicorn_http,
                load=load,
            )
        if rounds is not None:
            settings.rounds = rounds
            settings.big_rounds = rounds
            settings.bursts = rounds
        if duration is not None:
            settings.duration = duration
        return settings
