"""``FileWrapper``: the ``wsgi.file_wrapper`` that ``WSGIToASGI`` offers WSGI apps."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO


class FileWrapper:
    """``wsgi.file_wrapper``: a file as a response iterable.

    The bridge sends it with the ASGI ``http.response.pathsend`` extension when the
    server offers it and the file is a regular file read from its start; otherwise
    it is read in blocks in the worker thread.
    """

    __slots__ = ("block_size", "filelike")

    def __init__(self, filelike: IO[bytes], block_size: int = 65536) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = max(self.block_size, 65536)
        while block := read(size):
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendable_path(self) -> str | None:
        """The file's absolute path, when sending it by path gives the same bytes."""
        name = getattr(self.filelike, "name", None)
        if not isinstance(name, str):
            return None
        try:
            if self.filelike.tell() != 0:
                return None
            opened = os.fstat(self.filelike.fileno())
            path = os.path.realpath(name)
            on_disk = os.stat(path)
        except (OSError, AttributeError, ValueError):
            return None
        if (opened.st_dev, opened.st_ino) != (on_disk.st_dev, on_disk.st_ino):
            return None
        return path
