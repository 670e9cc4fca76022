"""Where a video's objects live in the bucket; only the stores use this.

videos/<id>/chunks/000000.chunk, 000001.chunk, ...   one object per appended chunk
videos/<id>/compiled/000042.webm                     the join of chunks 0..41
videos/<id>/compiled/000042.jpg                      its poster frame
videos/<id>/compiled/draft-000002.webm               a video composed from segments: the
                                                     multipart upload the fold started when it
                                                     committed segment 1 of 2, completed by a join
videos/<id>/compiled/000042.h264.mp4                 its H.264/AAC MP4 rendition
videos/<id>/rendition/000042/plan.json, ...         the steps' files while that rendition is
                                                     made (the pieces' sources, the encoded
                                                     pieces, the audio), removed once it is
videos/<id>/reencode/000042/plan.json, ...          the same for the re-encode of complete
                                                     files that differ (a join's source)
videos/<id>/segments/000000.seg, 000001.seg, ...     chunks folded into >= 5 MiB pieces
videos/<id>/segments/000001.json, ...                the fold's state after each segment
videos/<id>/segments/000003-000031457280.seg         segment 3 extended with the pieces after
                                                     it, up to that offset after the head
videos/<id>/segments/000004.extended.json           where the extension of the last of 4
                                                     segments ends
videos/<id>/pieces/<piece id>                        a large piece PUT by the client, until
                                                     its commit moves it to chunks/

A compiled object is named by the chunk count it reflects, or a composed one by the segment
count its draft started at (one draft per count, completed once), so a join never overwrites
the object a reader is being sent to.
"""


def chunk_key(video_id: int, index: int) -> str:
    return f"videos/{video_id}/chunks/{index:06d}.chunk"


def segment_key(video_id: int, number: int, extended_to: int | None = None) -> str:
    if extended_to is not None:
        return f"videos/{video_id}/segments/{number:06d}-{extended_to:012d}.seg"
    return f"videos/{video_id}/segments/{number:06d}.seg"


def extension_key(video_id: int, segment_count: int) -> str:
    return f"videos/{video_id}/segments/{segment_count:06d}.extended.json"


def fold_state_key(video_id: int, segment_count: int) -> str:
    return f"videos/{video_id}/segments/{segment_count:06d}.json"


def compiled_key(video_id: int, chunk_count: int, extension: str) -> str:
    return f"videos/{video_id}/compiled/{chunk_count:06d}.{extension}"


def rendition_key(video_id: int, chunk_count: int) -> str:
    return f"videos/{video_id}/compiled/{chunk_count:06d}.h264.mp4"


# The jobs made of steps whose files pass through the bucket (chalicelib.renditions, and
# chalicelib.reencodes for complete files that differ).
WORK_JOBS = ("rendition", "reencode")


def work_prefix(video_id: int, job: str, chunk_count: int | None = None) -> str:
    if job not in WORK_JOBS:
        raise ValueError(f"not a job that stores work: {job!r}")
    prefix = f"videos/{video_id}/{job}/"
    return prefix if chunk_count is None else f"{prefix}{chunk_count:06d}/"


def draft_key(video_id: int, segment_count: int, extension: str) -> str:
    return f"videos/{video_id}/compiled/draft-{segment_count:06d}.{extension}"


def download_name(compiled: str) -> str:
    """The file name a compiled object is saved as: video-<id>.<its extension>."""
    _, video_id, _, name = compiled.split("/")
    return f"video-{video_id}.{name.rsplit('.', 1)[-1]}"


def video_prefix(video_id: int) -> str:
    return f"videos/{video_id}/"


def piece_key(video_id: int, piece_id: str) -> str:
    return f"videos/{video_id}/pieces/{piece_id}"


def source_prefixes(video_id: int) -> list[str]:
    """What a video is made from (chunks, segments and their state, pieces, the files of a
    re-encode's steps), not what it is."""
    return [f"videos/{video_id}/{part}/" for part in ("chunks", "segments", "pieces", "reencode")]
