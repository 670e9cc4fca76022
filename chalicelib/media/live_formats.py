"""The live-written stream formats a fold can take, behind one interface.

MediaRecorder writes one of two shapes, both a head followed by self-contained pieces:
WebM/Matroska (a head up to the first Cluster, then Clusters: chalicelib.media.matroska)
and fragmented MP4 (ftyp and an empty moov, then moof+mdat fragments:
chalicelib.media.fmp4). For either, a fold cuts the pieces into segments at their
boundaries, and a join writes a new head (durations and an index) before them and has S3
copy the pieces byte for byte. This module picks the format from a stream's first bytes
and gives the fold and the segment join the same five operations for both.

Offsets are counted from the first byte after the head ("body" bytes): the pieces keep
them wherever the new head puts them.
"""
from dataclasses import dataclass
from typing import Any, Callable

from chalicelib.media import containers, fmp4, matroska
from chalicelib.media.seekable_head import write_head as write_matroska_head


@dataclass(frozen=True)
class LiveFormat:
    name: str
    read_head: Callable[[Any], Any]  # the head, once the bytes reach the first piece
    decoded_head: Callable[[str], Any]  # a head from Head.encoded()
    new_index: Callable[[], Any]
    index_from_json: Callable[[dict], Any]
    # scan(body bytes from a piece boundary, their offset, head, index) -> Scan
    scan: Callable[[Any, int, Any, Any], Any]
    # write_head(head, index, body_end, seekable) -> the new head's bytes
    write_head: Callable[[Any, Any, int, bool], bytes]


def _matroska_head(head, index, body_end: int, seekable: bool) -> bytes:
    # Matroska's Cues point at clusters; where they end does not matter.
    return write_matroska_head(head, index.end, index.cues if seekable else None)


MATROSKA = LiveFormat("matroska", matroska.read_head, matroska.Head.decoded, matroska.Index,
                      matroska.Index.from_json, matroska.scan_clusters, _matroska_head)
FRAGMENTED_MP4 = LiveFormat("fragmented mp4", fmp4.read_head, fmp4.Head.decoded, fmp4.Index,
                            fmp4.Index.from_json, fmp4.scan, fmp4.write_head)


def of_stream(first_bytes) -> LiveFormat | None:
    """The format of a stream from its first bytes (containers.SNIFF_BYTES of them);
    None for anything else."""
    container = containers.sniff(bytes(first_bytes[:containers.SNIFF_BYTES]))
    if container is None:
        return None
    return FRAGMENTED_MP4 if container is containers.MP4 else MATROSKA
