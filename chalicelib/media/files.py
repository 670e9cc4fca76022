"""Chunks grouped into files, by their first bytes and never by Content-Type.

A chunk that starts with a container header starts the next file; any other continues the
one before (MediaRecorder with a timeslice cuts one stream at arbitrary bytes, and only its
first piece has the header; a client that restarts its recorder sends a header each time).
"""
from typing import Iterable, Iterator

from chalicelib.media import containers


class File:
    """The blocks of one file within the chunk sequence. Iterating it pulls chunks until the
    next chunk that starts with a header, which it leaves to the next file."""

    def __init__(self, head: bytes, rest: Iterator[bytes], chunks: "ChunkFiles"):
        self.head = head
        self._rest = rest
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        yield from self._rest
        for first, blocks in self._chunks.continuations():
            yield first
            yield from blocks


class ChunkFiles:
    """Groups chunks into files: a chunk that starts with a header starts the next file.

    Chunks are read in order, once; a file is consumed before the next one is looked at, so
    at most one chunk's first block is held beyond what ffmpeg is reading.
    """

    def __init__(self, chunks: Iterable[bytes | Iterator[bytes]]):
        self._chunks = iter(chunks)
        self._next_file: tuple[bytes, Iterator[bytes]] | None = None

    def _next_chunk(self) -> tuple[bytes, Iterator[bytes]] | None:
        for chunk in self._chunks:
            blocks = iter([chunk]) if isinstance(chunk, bytes) else iter(chunk)
            first = next(blocks, b"")
            if first:
                return first, blocks
        return None

    def continuations(self) -> Iterator[tuple[bytes, Iterator[bytes]]]:
        while self._next_file is None:
            chunk = self._next_chunk()
            if chunk is None:
                return
            if containers.sniff(chunk[0][:containers.SNIFF_BYTES]) is not None:
                self._next_file = chunk
                return
            yield chunk

    def __iter__(self) -> Iterator[File]:
        first = self._next_chunk()
        if first is None:
            return
        # The first file's header may arrive cut into tiny chunks: gather enough to sniff.
        head, rest = first
        while len(head) < containers.SNIFF_BYTES:
            head, rest = head + b"".join(rest), iter(())
            more = self._next_chunk()
            if more is None:
                break
            head, rest = head + more[0], more[1]
        while True:
            file = File(head, rest, self)
            yield file
            for _ in file:  # whatever the consumer left unread belongs to this file
                pass
            if self._next_file is None:
                return
            (head, rest), self._next_file = self._next_file, None
