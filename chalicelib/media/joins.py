"""How a join strategy plugs into the join job (chalicelib.joiner).

The job asks each strategy in turn, in the order `chalicelib.wiring` lists them, to prepare the join of
a video's chunks. A strategy declines (None) or returns a PreparedJoin: a video made in the
job's work directory or on its way to the store, that the job then uploads, verifies and
makes a poster of at once, and records; or aborts, leaving nothing behind. The strategy
that prepared a join owns whatever it started (a multipart upload, a local file) until
upload or abort ends it.

Adding a strategy: one module with a class like these, and one line in the list of
`chalicelib.wiring.join_strategies`.
"""
import abc
from dataclasses import dataclass
from typing import Protocol

from chalicelib.media.containers import Container
from chalicelib.media.probe import MediaInfo
from chalicelib.models import JoinMethod, MediaSummary, Video


@dataclass
class PreparedJoin(abc.ABC):
    key: str  # where the compiled object is published
    container: Container
    info: MediaInfo  # its duration and streams
    method: JoinMethod
    byte_size: int
    preview_path: str  # a local file that starts as the video does: the poster comes from it

    @property
    def content_type(self) -> str:
        return self.container.content_type_for(has_video=self.info.video is not None)

    @abc.abstractmethod
    def upload(self) -> None:
        """Publish the object at key."""

    @abc.abstractmethod
    def verify(self) -> None:
        """Decode it (chalicelib.media.verify's windows); NotPlayable when it does not."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Remove whatever upload() wrote or started; safe after a failed or no upload."""

    def summary(self) -> MediaSummary:
        video, audio = self.info.video, self.info.audio
        return MediaSummary(
            container=self.container.name, content_type=self.content_type,
            duration=self.info.duration, byte_size=self.byte_size, join_method=self.method,
            audio_only=video is None, video_codec=video.codec if video else None,
            width=video.width if video else None, height=video.height if video else None,
            audio_codec=audio.codec if audio else None)


class JoinStrategy(Protocol):
    def prepare(self, video: Video, work_dir: str) -> PreparedJoin | None:
        """Join the chunks the video record counts, or decline. NotPlayable when they do
        not make a video; ChunkMissing when one is not stored yet; FoldSuperseded when
        another job's fold got ahead (the job reads the record again and asks again)."""

