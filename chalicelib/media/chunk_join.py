"""The join that copes with anything ffmpeg can read: the chunks, read in order, grouped into
files (chalicelib.media.files) and joined by ffmpeg.

- One file (MediaRecorder with a timeslice): its bytes are piped into ffmpeg and
  stream-copied into a file in the work directory, where the muxer can write Duration and
  Cues (WebM, Matroska) or put the moov first (fragmented MP4 becomes MP4).
- Complete files with the same streams: each remuxed, then joined by stream copy.
- Complete files that differ: re-encoded to one format, a job per file
  (chalicelib.media.reencode), or refused when the stage says so.

Both write whole files to the work directory and a re-encode runs at about real time, so a
deployment bounds them (on Lambda: /tmp, and 900 s for the re-encode of one file); a
recording beyond either bound fails at once with a reason that says so, instead of filling
the disk or running out of time.
"""
import functools
import os
import shutil
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

from chalicelib import prefetch
from chalicelib.errors import NotPlayable
from chalicelib.media import containers, verify
from chalicelib.media import reencode as media_reencode
from chalicelib.media.containers import Container
from chalicelib.media.ffmpeg import REENCODE_CONTAINER, Ffmpeg
from chalicelib.media.files import ChunkFiles
from chalicelib.media.joins import PreparedJoin
from chalicelib.media.probe import MediaInfo
from chalicelib.media.stream_check import structure_walk
from chalicelib.models import JoinMethod, Video
from chalicelib.ports import ObjectStore


class VideoReencode(Protocol):
    def reencode(self, video: Video, files: list[tuple[str, MediaInfo]], output: str) -> None:
        """Re-encode the video's complete files that differ into `output`, or hand the work
        to other jobs and raise HandedOff."""


@dataclass(frozen=True)
class JoinedVideo:
    path: str
    container: Container
    info: MediaInfo
    files: int  # how many complete files the chunks held
    method: JoinMethod

    @property
    def content_type(self) -> str:
        return self.container.content_type_for(has_video=self.info.video is not None)


@dataclass(frozen=True)
class _Part:
    path: str
    container: Container
    info: MediaInfo


@dataclass(frozen=True)
class JoinLimits:
    allow_reencode: bool = True
    max_reencode_seconds: float = 0  # seconds of media one re-encode job may take; 0: no bound
    free_bytes: Callable[[str], int] = lambda path: shutil.disk_usage(path).free


def check_work_space(limits: JoinLimits, work_dir: str, needed: int, what: str) -> None:
    free = limits.free_bytes(work_dir)
    if needed > free:
        raise NotPlayable(f"{what} needs {_megabytes(needed)} of work space and the join has "
                          f"{_megabytes(free)}: the recording is too large to join here")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


# Re-encodes complete files that differ (each a path and its probe) into one MP4 at a path.
Reencode = Callable[[list[tuple[str, MediaInfo]], str], None]


def join_chunks(ffmpeg: Ffmpeg, chunks: Iterable[bytes | Iterator[bytes]], work_dir: str,
                limits: JoinLimits = JoinLimits(), reencode: Reencode | None = None) -> JoinedVideo:
    """Join chunks (each given as bytes or as an iterator of blocks), in order, into one
    file whose duration matches what went in. Whether it decodes is for
    chalicelib.media.verify to say (the join job runs it while the file uploads).
    `reencode`: how complete files that differ are re-encoded (the join job hands the files
    to its steps, chalicelib.reencodes); by default every step in this process."""
    parts: list[_Part] = []
    for index, blocks in enumerate(ChunkFiles(chunks)):
        container = containers.sniff(blocks.head[:containers.SNIFF_BYTES])
        if container is None:
            raise NotPlayable(
                "the first chunk does not start with a WebM, Matroska or MP4 header"
                if index == 0 else "a chunk holds an unknown kind of file")
        path = os.path.join(work_dir, f"part-{index:06d}.{container.extension}")
        stream_end = ffmpeg.remux_stream(structure_walk(container, blocks), container, path)
        info = ffmpeg.probe(path)
        if not info.streams or not info.duration or stream_end is None:
            raise NotPlayable(f"file {index + 1} of the recording holds no complete "
                              "audio or video frame")
        # The file must reach as far as its stream's timestamps did. It may last longer:
        # Chromium's video track can end well before its audio after a capture stall.
        verify.check_duration(min(info.duration, stream_end), stream_end,
                              f"file {index + 1}'s timestamps")
        parts.append(_Part(path, container, info))
    if not parts:
        raise NotPlayable("there are no chunks to join")
    if len(parts) == 1:  # one stream: its remux is the video, probed and checked above
        only = parts[0]
        return JoinedVideo(only.path, only.container, only.info, files=1, method=JoinMethod.REMUX)
    # The parts joined take about as much room again as the parts.
    check_work_space(limits, work_dir, sum(os.path.getsize(p.path) for p in parts),
                     f"joining {len(parts)} files")
    if _same_format(parts):
        container, method = parts[0].container, JoinMethod.CONCAT
        path = os.path.join(work_dir, f"joined.{container.extension}")
        ffmpeg.concat_copy([p.path for p in parts], container, path)
    elif limits.allow_reencode:
        container, method = REENCODE_CONTAINER, JoinMethod.REENCODE
        path = os.path.join(work_dir, f"joined.{container.extension}")
        try:
            (reencode or functools.partial(media_reencode.reencode, ffmpeg,
                                           max_piece_seconds=limits.max_reencode_seconds))(
                [(p.path, p.info) for p in parts], path)
        except NotPlayable as error:
            raise NotPlayable(f"the chunks are complete files whose streams differ "
                              f"({_describe_difference(parts)}); {error.message}") from None
    else:
        raise NotPlayable("the chunks are complete files whose streams differ ("
                          + _describe_difference(parts) + ") and re-encoding is off")
    info = ffmpeg.probe(path)
    verify.check_duration(info.duration, sum(p.info.duration for p in parts), "the parts joined")
    return JoinedVideo(path, container, info, files=len(parts), method=method)


def _same_format(parts: list[_Part]) -> bool:
    return len({p.container for p in parts}) == 1 and len({p.info.streams for p in parts}) == 1


def _describe_difference(parts: list[_Part]) -> str:
    first = parts[0]
    for number, part in enumerate(parts[1:], start=2):
        if part.info.streams != first.info.streams:
            return f"file 1 has {first.info.describe()}, file {number} has {part.info.describe()}"
        if part.container != first.container:
            return f"file 1 is {first.container.name}, file {number} is {part.container.name}"
    return "they differ"


@dataclass
class _PreparedFile(PreparedJoin):
    """A joined file in the work directory, uploaded whole."""
    store: ObjectStore
    ffmpeg: Ffmpeg

    def upload(self) -> None:
        self.store.upload_file(self.preview_path, self.key, self.content_type)

    def verify(self) -> None:
        verify.check_audio_continuous(self.ffmpeg, self.preview_path)
        verify.check_decodes(self.ffmpeg, self.preview_path, self.info.duration)

    def abort(self) -> None:
        self.store.delete(self.key)


# Chunks are fetched ahead this much at a time: a larger one (a piece PUT to S3, up to 5 GB)
# is streamed into ffmpeg a block at a time, so memory stays bounded.
READ_BLOCK = 8 * 1024 * 1024


def _chunk(store: ObjectStore, video_id: int, index: int) -> bytes | Iterator[bytes]:
    """A chunk's bytes, or, for a chunk larger than READ_BLOCK, its blocks as they are read."""
    first = store.read_chunk(video_id, index, max_bytes=READ_BLOCK)
    return first if len(first) < READ_BLOCK else _blocks(store, video_id, index, first)


def _blocks(store: ObjectStore, video_id: int, index: int, first: bytes) -> Iterator[bytes]:
    block, offset = first, 0
    while block:
        yield block
        offset += len(block)
        if len(block) < READ_BLOCK:
            return
        block = store.read_chunk(video_id, index, first_byte=offset, max_bytes=READ_BLOCK)


class ChunkJoin:
    """Reads every stored chunk (fetched ahead) and joins them with ffmpeg. Never declines."""

    def __init__(self, store: ObjectStore, ffmpeg: Ffmpeg, limits: JoinLimits,
                 reencoder: "VideoReencode | None" = None):
        self.store = store
        self.ffmpeg = ffmpeg
        self.limits = limits
        self.reencoder = reencoder  # the re-encode in steps (chalicelib.reencodes), if any

    def prepare(self, video: Video, work_dir: str) -> PreparedJoin:
        # The remux of the recording is about as large as the recording.
        check_work_space(self.limits, work_dir, video.byte_count, "the recording")
        indices = video.stored_chunk_indices()
        chunks = prefetch.prefetch_in_order(
            indices, functools.partial(_chunk, self.store, video.video_id),
            prefetch.window_for(min(video.byte_count, READ_BLOCK * len(indices)), len(indices)))
        reencode = functools.partial(self.reencoder.reencode, video) if self.reencoder else None
        joined = join_chunks(self.ffmpeg, chunks, work_dir, self.limits, reencode)
        key = self.store.compiled_key(video.video_id, video.chunk_count, joined.container.extension)
        return _PreparedFile(key=key, container=joined.container, info=joined.info,
                             method=joined.method, byte_size=os.path.getsize(joined.path),
                             preview_path=joined.path, store=self.store, ffmpeg=self.ffmpeg)
