"""Complete files that differ (a recorder restarted with another camera, size or codec),
re-encoded to one format in pieces: each file's video is a piece of its own, encoded on its
own (by its own job: chalicelib.reencodes), and the audio of all of them is encoded in one
pass, then the pieces and the audio are joined by stream copy (rendition.assemble).

    plan_parts -> encode_part (one job per file)  -+-> join
               -> encode_audio (one job)          -+

- **plan_parts** places each file one after another, each lasting its own duration (the
  longer of its streams, as a player would play it), and chooses the one format: the first
  video's frame size fitted into 1080p (rendition.output_size) at its frame rate, constant.
- **encode_part** encodes one file's video to that format (black frames for a file with no
  video), starting at the file's place in the joined video: the pieces then follow each
  other as they are, and the join places each at its own start.
- **encode_audio** makes each file's audio (silence for a file with none) exactly as long
  as the file, resampled to 48 kHz stereo, and encodes them together in one pass: AAC
  encoded per file would gain a priming delay at every boundary. Each file's video and
  audio last the same time, so they stay together across any number of files.

Encoder settings are the rendition's (rendition.VIDEO_OPTIONS, AUDIO_OPTIONS): the result
is H.264/AAC in MP4, which plays everywhere, so such a video needs no rendition.
"""
import dataclasses
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from chalicelib.errors import NotPlayable
from chalicelib.media import rendition
from chalicelib.media.ffmpeg import Ffmpeg, frame_rate
from chalicelib.media.probe import MediaInfo


@dataclass(frozen=True)
class Part:
    index: int
    start: float  # seconds: where the file starts in the joined video
    seconds: float  # how long it lasts there
    video: bool  # whether the file has video (else black frames)
    audio: bool  # whether it has audio (else silence)


@dataclass(frozen=True)
class Plan:
    parts: list[Part]
    width: int
    height: int
    rate: float  # frames a second
    video: bool  # whether any file has video (else the join is audio only)
    audio: bool  # whether any has audio

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def from_json(cls, body: bytes) -> "Plan":
        fields = json.loads(body)
        return cls(**{**fields, "parts": [Part(**part) for part in fields["parts"]]})


def plan_parts(infos: list[MediaInfo]) -> Plan:
    """The files' places in the joined video, and the format they are encoded to."""
    parts, start = [], 0.0
    for index, info in enumerate(infos):
        if not info.duration:
            raise NotPlayable(f"file {index + 1} of the recording has no duration")
        parts.append(Part(index, round(start, 6), info.duration, info.video is not None,
                          info.audio is not None))
        start += info.duration
    videos = [info.video for info in infos if info.video]
    width, height = rendition.output_size(videos[0].width or 1280, videos[0].height or 720) \
        if videos else (0, 0)
    return Plan(parts, width, height, frame_rate(videos[0].frame_rate) if videos else 0.0,
                bool(videos), any(part.audio for part in parts))


def encode_part(ffmpeg: Ffmpeg, source: str, plan: Plan, part: Part, out_path: str) -> None:
    """Encode one file's video (`source`: the file) to the plan's format, in MP4, placed at
    the file's start. Running it again replaces out_path."""
    partial = out_path + ".partial"
    ffmpeg.encode_part(source if part.video else None, partial, dict(rendition.VIDEO_OPTIONS, **rendition.MP4),
                       (plan.width, plan.height), plan.rate, part.start, part.seconds,
                       timeout=rendition.STEP_TIMEOUT_SECONDS)
    start = ffmpeg.start_time(partial)
    if start is None or abs(start - part.start) > 0.002:
        os.unlink(partial)
        raise NotPlayable(f"file {part.index + 1} was encoded to start at {start} s, not {part.start:.3f} s")
    os.replace(partial, out_path)


def encode_audio(ffmpeg: Ffmpeg, sources: list[str | None], plan: Plan, out_path: str,
                 faststart: bool = False) -> None:
    """Encode the audio of every file in one pass (`sources`: each file, or its audio alone;
    None for a file without audio), each part as long as its file, into AAC in MP4 (with
    `faststart`, the index first: the audio is the whole video)."""
    partial = out_path + ".partial"
    options = dict(rendition.AUDIO_OPTIONS, **rendition.MP4)
    if faststart:
        options["movflags"] = "+faststart"
    ffmpeg.encode_audio_parts([(source if part.audio else None, part.seconds)
                               for source, part in zip(sources, plan.parts)],
                              partial, options, timeout=rendition.STEP_TIMEOUT_SECONDS)
    os.replace(partial, out_path)


def join(ffmpeg: Ffmpeg, pieces: list[str], audio: str | None, out_path: str) -> None:
    """The encoded files and the audio joined by stream copy, index first."""
    rendition.assemble(ffmpeg, pieces, audio, out_path)


def reencode(ffmpeg: Ffmpeg, files: list[tuple[str, MediaInfo]], out_path: str,
             workers: int | None = None) -> None:
    """Every step in this process, the files' encodes and the audio on `workers` threads
    (each an ffmpeg): what the join's jobs do, without the queue."""
    plan = plan_parts([info for _, info in files])
    if not plan.video:
        encode_audio(ffmpeg, [path for path, _ in files], plan, out_path, faststart=True)
        return
    work = os.path.dirname(out_path)
    pieces = [os.path.join(work, f"reencoded-{part.index:06d}.mp4") for part in plan.parts]
    audio = os.path.join(work, "reencoded-audio.m4a") if plan.audio else None
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        jobs = [pool.submit(encode_part, ffmpeg, path, plan, part, piece)
                for (path, _), part, piece in zip(files, plan.parts, pieces)]
        if audio:
            jobs.append(pool.submit(encode_audio, ffmpeg, [path for path, _ in files], plan, audio))
        for job in jobs:
            job.result()
    join(ffmpeg, pieces, audio, out_path)
