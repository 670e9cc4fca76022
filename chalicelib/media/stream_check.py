"""The structure of a WebM/Matroska stream, checked while its bytes go into ffmpeg.

ffmpeg's demuxer resyncs past damaged bytes without an error: a chunk cut short and then
sent again whole leaves a hole, and ffmpeg says nothing of it. So the chunk join walks every
element and block header as the bytes go by, with the reader the fold uses
(chalicelib.media.matroska): bytes that cannot be what a recorder wrote (Damaged) fail the
join with their position. A structure that is only unusual (a finished file's Cues,
elements of unknown size) ends the walk without a verdict, and ffmpeg's checks stand.
"""
from typing import Iterable, Iterator

from chalicelib.errors import NotPlayable
from chalicelib.media.matroska import Damaged, Head, Incomplete, Index, Unsupported, read_head, scan_clusters

# The walk goes on every this many bytes, from the last cluster boundary it reached: memory
# holds about a window and a cluster, whatever the recording's length.
WINDOW = 1024 * 1024


class StreamCheck:
    def __init__(self):
        self._pending = bytearray()
        self._offset = 0  # where _pending starts in the recording's bytes
        self._head: Head | None = None
        self._index = Index()
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
                self._head = read_head(self._pending)
                del self._pending[:self._head.size]
                self._offset = self._head.size
            scan = scan_clusters(bytes(self._pending), self._offset, self._head, self._index)
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
