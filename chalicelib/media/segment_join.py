"""The segment join: a folded recording (chalicelib.media.fold) composed by S3 without
moving its bulk bytes.

It folds what is left, writes a new head (chalicelib.media.live_formats: for WebM the
stream's EBML header and Tracks, Info with a Duration and Cues pointing at the keyframes;
for fragmented MP4 the ftyp, a moov that states the duration and a sidx indexing every
fragment) and composes the compiled object as one multipart upload: part 1 is the head with
segment 0, part n + 1 is segment n copied by S3 (UploadPartCopy, started before the last
fold), and the chunks after the last segment are the last part. Declines a video that
cannot be folded or holds less than a segment: the chunk join takes it.

Its checks read back only the start and the end windows (chalicelib.media.verify) from the
segments; the fold has already parsed every frame or sample header in between.
"""
import contextlib
import os
from dataclasses import dataclass

from chalicelib.errors import NotPlayable
from chalicelib.media import containers, verify
from chalicelib.media.ffmpeg import Ffmpeg
from chalicelib.media.fold import Folded, Folder, FoldState
from chalicelib.media.joins import PreparedJoin
from chalicelib.media.ebml import Unsupported
from chalicelib.media.probe import MediaInfo
from chalicelib.models import JoinMethod, Video
from chalicelib.ports import Composition, ObjectStore


@dataclass
class _PreparedComposition(PreparedJoin):
    composition: Composition
    store: ObjectStore
    ffmpeg: Ffmpeg
    decodes: list[tuple[str, float | None]]  # (file, seconds from its start) to decode

    def upload(self) -> None:
        self.composition.complete()

    def verify(self) -> None:
        for path, seconds in self.decodes:
            self.ffmpeg.decode(path, seconds=seconds)
        # The last window runs to the end: where its frames end is the video's length.
        last, _ = self.decodes[-1]
        verify.check_ends_where_stated(self.ffmpeg.media_end(last), self.info.duration)

    def abort(self) -> None:
        self.composition.abort()
        self.store.delete(self.key)  # it may have been completed before the check failed


class SegmentJoin:
    def __init__(self, folder: Folder, store: ObjectStore, ffmpeg: Ffmpeg):
        self.folder = folder
        self.store = store
        self.ffmpeg = ffmpeg

    def prepare(self, video: Video, work_dir: str) -> PreparedJoin | None:
        if video.segments_off is not None:
            return None
        with contextlib.ExitStack() as on_failure:
            # The last segment's extension, when one is fresh, stands in for it.
            state = self.folder.extended(video, self.folder.state(video))
            composition, copied = None, 1  # segment 0 goes into part 1, with the head
            if state.sizes:
                # The part numbers of the segments folded already are known: S3 copies
                # them while the rest is folded.
                composition = self._compose(video, state.format.decoded_head(state.head), state)
                on_failure.callback(composition.abort)
                copied = self._copy(composition, video, copied, state)
            folded = self.folder.fold_final(video, state)
            if folded is None or not folded.state.sizes:
                return None
            try:
                scan = folded.format.scan(folded.rest, folded.state.body_bytes, folded.head,
                                          folded.state.index)
            except Unsupported as why:
                return self.folder.stop(video, str(why))
            if not scan.index.cues:
                return None  # nowhere to seek to: leave it to ffmpeg
            if composition is None:
                composition = self._compose(video, folded.head, folded.state)
                on_failure.callback(composition.abort)
            self._copy(composition, video, copied, folded.state)
            prepared = self._finish(video, folded, scan.whole(folded.rest), scan.index,
                                    composition, work_dir)
            on_failure.pop_all()
            return prepared

    def _finish(self, video: Video, folded: Folded, rest: bytes, index,
                composition: Composition, work_dir: str) -> PreparedJoin:
        state, head = folded.state, folded.head
        body_end = state.body_bytes + len(rest)
        first = (folded.format.write_head(head, index, body_end, True)
                 + self.store.read_segment(video.video_id, 0))
        composition.send(1, first)
        if rest:
            composition.send(len(state.sizes) + 1, rest)
        container = containers.sniff(head.raw)
        head_path = os.path.join(work_dir, f"head.{container.extension}")
        with open(head_path, "wb") as out:
            out.write(first)
        duration = head.seconds(index.end)
        streams = self.ffmpeg.probe(head_path).streams
        if not streams:
            raise NotPlayable("the recording holds no complete audio or video frame")
        decodes = []
        for number, window in enumerate(verify.edge_windows(duration)):
            if window.start == 0 and window.seconds is not None:
                decodes.append((head_path, window.seconds))  # the start: in the head's file
                continue
            path = os.path.join(work_dir, f"window-{number}.{container.extension}")
            self._write_from(video, folded, index, rest, path, head.ticks(window.start))
            decodes.append((path, None))
        return _PreparedComposition(
            key=composition.key, container=container, info=MediaInfo(duration, streams),
            method=JoinMethod.SEGMENTS,
            byte_size=len(first) + sum(state.sizes[1:]) + len(rest), preview_path=head_path,
            composition=composition, store=self.store, ffmpeg=self.ffmpeg, decodes=decodes)

    def _compose(self, video: Video, head, state: FoldState) -> Composition:
        """The draft the fold filled while recording, when it is still open; else a new
        upload at the key named by the chunk count."""
        if state.draft is not None:
            draft = self.store.resume_composition(state.draft["key"], state.draft["upload_id"],
                                                  list_parts=True)
            if draft is not None:
                return draft
        container = containers.sniff(head.raw)
        key = self.store.compiled_key(video.video_id, video.chunk_count, container.extension)
        return self.store.start_composition(key, container.content_type_for(head.has_video))

    @staticmethod
    def _copy(composition: Composition, video: Video, copied: int, state: FoldState) -> int:
        """Have S3 copy segments copied..n-1 of the n in `state` into their parts, but those
        a draft holds already (an extension replaces its segment's part); returns n."""
        for number in range(copied, len(state.sizes)):
            extended_to = _extended_to(state, number)
            if number + 1 in composition.held and extended_to is None:
                continue
            composition.copy_segment(number + 1, video.video_id, number, state.sizes[number],
                                     extended_to)
        return max(copied, len(state.sizes))

    def _write_from(self, video: Video, folded: Folded, index, rest: bytes, path: str,
                    from_ticks: int) -> None:
        """A file of a head and the pieces from the last keyframe at or before from_ticks
        to the end, read back from the segments and the rest."""
        state = folded.state
        start = max((at for time, at in index.cues if time <= from_ticks), default=0)
        with open(path, "wb") as out:
            out.write(folded.format.write_head(folded.head, index, state.body_bytes + len(rest), False))
            segment_start = 0
            for number, size in enumerate(state.sizes):
                if start < segment_start + size:
                    out.write(self.store.read_segment(video.video_id, number,
                                                      first_byte=max(0, start - segment_start),
                                                      extended_to=_extended_to(state, number)))
                segment_start += size
            out.write(rest[max(0, start - segment_start):])


def _extended_to(state: FoldState, number: int) -> int | None:
    """Where segment `number`'s extension ends, when the state uses it in its place."""
    return state.extended_to if number == len(state.sizes) - 1 else None
