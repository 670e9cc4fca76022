"""The structure of a recording, checked while its bytes go into ffmpeg.

ffmpeg's demuxers resync past damaged bytes without an error: a chunk cut short and then
sent again whole leaves a hole, and ffmpeg says nothing of it. So the chunk join walks the
structure as the bytes go by, and bytes that cannot be what a recorder wrote fail the join
with their position:

- A live-written stream (StreamCheck): with the reader the fold uses
  (chalicelib.media.live_formats), every Matroska element and block header, or every MP4
  fragment's moof (sequence numbers, decode times, where its samples lie). A structure that
  is only unusual (a finished file's Cues, a moov with samples) ends the walk without a
  verdict; ffmpeg's checks stand.
- MP4 (BoxCheck), as well: the top-level boxes, which must be boxes an MP4 has, one after
  another to the end.
"""
from typing import Iterable, Iterator

from chalicelib.errors import NotPlayable
from chalicelib.media import containers, live_formats
from chalicelib.media.containers import Container
from chalicelib.media.ebml import Damaged, Incomplete, Unsupported

# The walk goes on every this many bytes, from the last cluster boundary it reached: memory
# holds about a window and a cluster, whatever the recording's length.
WINDOW = 1024 * 1024


class StreamCheck:
    def __init__(self, stream: live_formats.LiveFormat):
        self._format = stream
        self._pending = bytearray()
        self._offset = 0  # where _pending starts in the recording's bytes
        self._head = None
        self._index = stream.new_index()
        self._done = False

    def walk(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        """The blocks, unchanged, checked as they pass; NotPlayable at the first damage."""
        for block in blocks:
            self._feed(block, final=False)
            yield block
        self._feed(b"", final=True)

    def _feed(self, block: bytes, final: bool) -> None:
        if self._done:
            return
        self._pending += block
        if len(self._pending) < WINDOW and not final:
            return
        try:
            if self._head is None:
                self._head = self._format.read_head(self._pending)
                del self._pending[:self._head.size]
                self._offset = self._head.size
            scan = self._format.scan(bytes(self._pending), self._offset, self._head, self._index)
        except Incomplete:
            return  # the head is not whole yet
        except Damaged as damage:
            raise NotPlayable(f"the recording is damaged: {damage}") from None
        except Unsupported:
            self._done, self._pending = True, bytearray()
            return
        if scan.boundaries:
            last, mark = scan.boundaries[-1]
            self._index = scan.index.at(mark)
            del self._pending[:last]
            self._offset += last


# Top-level boxes of MP4 files, fragmented (what MediaRecorder writes) or not.
_MP4_BOXES = {b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"sidx", b"ssix", b"mfra", b"free",
              b"skip", b"wide", b"uuid", b"meta", b"emsg", b"prft", b"pdin", b"udta"}


class BoxCheck:
    """The top-level boxes of an MP4 stream, walked as the bytes pass, holding only the
    header of the box being read."""

    def __init__(self):
        self._header = bytearray()
        self._at = 0  # the stream's bytes seen so far
        self._next = 0  # where the next box starts
        self._to_the_end = False  # a box of size 0 runs to the end of the file

    def walk(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        for block in blocks:
            self._feed(block)
            yield block

    def _feed(self, block: bytes) -> None:
        end = self._at + len(block)
        while not self._to_the_end and self._next < end:
            self._header += block[max(0, self._next + len(self._header) - self._at):][:16 - len(self._header)]
            if len(self._header) < 8 or (self._header[:4] == b"\0\0\0\x01" and len(self._header) < 16):
                break  # the header goes on in the next block
            size, kind = int.from_bytes(self._header[:4], "big"), bytes(self._header[4:8])
            if size == 1:
                size = int.from_bytes(self._header[8:16], "big")
            if kind not in _MP4_BOXES or (0 < size < 8):
                raise NotPlayable(f"the recording is damaged: no MP4 box at byte {self._next} "
                                  f"({kind!r}): bytes out of order or missing")
            self._to_the_end = size == 0
            self._next += size
            self._header.clear()
        self._at = end


def structure_walk(container: Container, blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The blocks of one file, walked by the check for its container."""
    if container is containers.MP4:
        return BoxCheck().walk(StreamCheck(live_formats.FRAGMENTED_MP4).walk(blocks))
    return StreamCheck(live_formats.MATROSKA).walk(blocks)
