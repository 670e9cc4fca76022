"""A new head for a live WebM/Matroska stream's clusters, which makes it seekable: Info
with a Duration, the stream's own Tracks and other elements, and Cues that point at the
clusters' keyframes. The clusters stay byte for byte as the recorder wrote them."""
import struct

from chalicelib.media import ebml
from chalicelib.media.ebml import UNKNOWN_SIZE
from chalicelib.media.matroska import (
    CUE_CLUSTER_POSITION,
    CUE_POINT,
    CUE_TIME,
    CUE_TRACK,
    CUE_TRACK_POSITIONS,
    CUES,
    DURATION,
    INFO,
    SEEK,
    SEEK_HEAD,
    SEEK_ID,
    SEEK_POSITION,
    SEGMENT,
    TRACKS,
    Head,
)


def _cues(cues: list[list[int]], track: int, clusters_at: int) -> bytes:
    points = b"".join(
        ebml.element(CUE_POINT, ebml.fixed_uint(CUE_TIME, time) + ebml.element(
            CUE_TRACK_POSITIONS,
            ebml.element(CUE_TRACK, bytes([track])) + ebml.fixed_uint(CUE_CLUSTER_POSITION, clusters_at + at)))
        for time, at in cues)
    return ebml.id_bytes(CUES) + ebml.size_bytes(len(points), 8) + points


def _seek_head(targets: list[tuple[int, int]]) -> bytes:
    return ebml.element(SEEK_HEAD, b"".join(
        ebml.element(SEEK, ebml.element(SEEK_ID, ebml.id_bytes(target)) + ebml.fixed_uint(SEEK_POSITION, at))
        for target, at in targets))


def write_head(head: Head, end_ticks: int, cues: list[list[int]] | None) -> bytes:
    """A new head for the stream's clusters: Info with a Duration, the kept elements, and
    Cues when given.

    The Segment's size stays unknown, as the live stream had it: a Segment of known size
    may not hold Clusters of unknown size (ffmpeg reports it as an error), and Chromium
    writes its clusters that way. Cues and Duration are what make the file seekable.
    """
    info = ebml.element(INFO, b"".join(ebml.element(e, b) for e, b in head.info)
                    + ebml.element(DURATION, struct.pack(">d", float(end_ticks))))
    kept = [ebml.element(e, b) for e, b in head.kept]
    targets = [INFO] + [e for e, _ in head.kept if e == TRACKS] + ([CUES] if cues else [])
    seek_length = len(_seek_head([(t, 0) for t in targets]))
    positions = {INFO: seek_length}
    at = seek_length + len(info)
    for (element, _), body in zip(head.kept, kept):
        positions.setdefault(element, at)
        at += len(body)
    positions[CUES] = at
    index = _cues(cues, head.cue_track, at + len(_cues(cues, head.cue_track, 0))) if cues else b""
    body = _seek_head([(t, positions[t]) for t in targets]) + info + b"".join(kept) + index
    return head.ebml + ebml.id_bytes(SEGMENT) + UNKNOWN_SIZE.to_bytes(8, "big") + body
