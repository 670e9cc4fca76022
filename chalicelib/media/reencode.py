"""Complete files that differ (a recorder restarted with another camera, size or codec),
re-encoded to one format in pieces: each file's video is cut at keyframes into pieces of
bounded length, each piece encoded on its own (by its own job: chalicelib.reencodes), and
the audio of all the files is encoded in one pass, then the pieces and the audio are joined
by stream copy (rendition.assemble).

    plan_parts -> split_file (each long file) -> encode_part (one job per piece) -+-> join
                                              -> encode_audio (one job)          -+

- **plan_parts** places each file one after another, each lasting its own duration (the
  longer of its streams, as a player would play it), and chooses the one format: the first
  video's frame size fitted into 1080p (rendition.output_size) at its frame rate, constant.
  A file whose video is longer than the piece length is cut at its keyframes
  (rendition.cut_at_keyframes, the rendition's rule), each cut moved to the output's
  nearest frame, so the pieces of a file hold its frames once each; a piece longer than one
  job may encode (`max_piece_seconds`: its keyframes are too far apart) fails the plan.
- **split_file** stream-copies a long file's video into a file per piece, cut at packet
  numbers (the rendition's split_video), so each piece's job reads its own frames only and
  its decoder starts at a keyframe.
- **encode_part** encodes one piece's video to that format (black frames for a file with no
  video), exactly as many frames as its place in the joined video holds, starting at that
  place: the pieces then follow each other as they are, and the join places each at its own
  start.
- **encode_audio** makes each file's audio (silence for a file with none) exactly as long
  as the file, resampled to 48 kHz stereo, and encodes them together in one pass: AAC
  encoded per file or per piece would gain a priming delay at every boundary. Each file's
  video and audio last the same time, so they stay together across any number of files.

Encoder settings are the rendition's (rendition.VIDEO_OPTIONS, AUDIO_OPTIONS): the result
is H.264/AAC in MP4, which plays everywhere, so such a video needs no rendition.
"""
import dataclasses
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from chalicelib.errors import NotPlayable
from chalicelib.media import rendition
from chalicelib.media.ffmpeg import Ffmpeg, Packet, frame_rate
from chalicelib.media.probe import MediaInfo


# Every piece in one time base whatever its file's was, so the pieces of files that differ
# are described alike and join under one index (mp4_join): 90 kHz, MP4's usual video clock,
# places frames of any rate within 6 microseconds.
PIECE_MP4 = dict(rendition.PIECE_MP4, **{"enc_time_base:v": "1:90000", "video_track_timescale": 90000})


@dataclass(frozen=True)
class Part:
    """A file of the recording."""
    index: int
    start: float  # seconds: where the file starts in the joined video
    seconds: float  # how long it lasts there
    video: bool  # whether the file has video (else black frames)
    audio: bool  # whether it has audio (else silence)


@dataclass(frozen=True)
class Piece:
    """What one job encodes: a file's video, or a stretch of it that starts at a keyframe."""
    index: int  # its job's number, in the joined video's order
    file: int  # the file (Part.index) it is cut from
    offset: float  # seconds into the file's video where it starts, on the output's frames
    seconds: float  # how long it lasts in the joined video
    first_frame: int = 0  # its first packet among the file's video packets (where it is cut)
    frames: int = 0  # how many packets it holds, when the file is cut (0: the whole file)

    def describe(self, files: int) -> str:
        """How a failure names it: the file, and where in the file when it is cut."""
        return f"file {self.file + 1}" + (f" from {self.offset:.2f} s" if files > 1 else "")


@dataclass(frozen=True)
class Plan:
    parts: list[Part]
    width: int
    height: int
    rate: float  # frames a second
    video: bool  # whether any file has video (else the join is audio only)
    audio: bool  # whether any has audio
    pieces: list[Piece] = dataclasses.field(default_factory=list)  # in the joined video's order

    def pieces_of(self, file: int) -> list[Piece]:
        return [piece for piece in self.pieces if piece.file == file]

    def start_of(self, piece: Piece) -> float:
        """Where a piece starts in the joined video."""
        return round(self.parts[piece.file].start + piece.offset, 6)

    def describe(self, index: int) -> str:
        piece = self.pieces[index]
        return piece.describe(len(self.pieces_of(piece.file)))

    def same_files(self, other: "Plan") -> bool:
        """Whether two plans place the same files in the same format, however they cut them
        (a plan's cuts follow from its files' packets: the same files, the same cuts)."""
        return dataclasses.replace(self, pieces=[]) == dataclasses.replace(other, pieces=[])

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def from_json(cls, body: bytes) -> "Plan":
        fields = json.loads(body)
        parts = [Part(**part) for part in fields["parts"]]
        # A plan stored before files were cut into pieces: a piece per file.
        pieces = ([Piece(**piece) for piece in fields["pieces"]] if "pieces" in fields
                  else [Piece(part.index, part.index, 0.0, part.seconds) for part in parts])
        return cls(**{**fields, "parts": parts, "pieces": pieces})


def plan_parts(infos: list[MediaInfo], packets: list[list[Packet] | None] | None = None,
               piece_seconds: float = 0, max_piece_seconds: float = 0) -> Plan:
    """The files' places in the joined video, the format they are encoded to, and the
    pieces: a file whose video packets are given and last longer than a third more than
    piece_seconds is cut at keyframes into pieces of about piece_seconds (0: a piece per
    file). A piece longer than max_piece_seconds (0: no bound) fails the plan, saying why."""
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
    rate = frame_rate(videos[0].frame_rate) if videos else 0.0
    pieces: list[Piece] = []
    if videos:
        for part in parts:
            file_packets = packets[part.index] if packets else None
            cuts = _cuts(file_packets, part, rate, piece_seconds) if part.video else [(0.0, 0)]
            for n, (offset, first_frame) in enumerate(cuts):
                last = n + 1 == len(cuts)
                end = part.seconds if last else cuts[n + 1][0]
                frames = 0 if len(cuts) == 1 else (len(file_packets) if last else cuts[n + 1][1]) - first_frame
                pieces.append(Piece(len(pieces), part.index, offset, round(end - offset, 6),
                                    first_frame, frames))
    plan = Plan(parts, width, height, rate, bool(videos), any(part.audio for part in parts), pieces)
    longest = max(pieces, key=lambda piece: piece.seconds, default=None)
    if longest and max_piece_seconds and longest.seconds > max_piece_seconds:
        why = " without a keyframe to cut it at" if piece_seconds and packets else ""
        raise NotPlayable(
            f"{longest.describe(len(plan.pieces_of(longest.file)))} lasts {_duration(longest.seconds)}"
            f"{why}, longer than one re-encode job may take (at most {_duration(max_piece_seconds)} "
            "are re-encoded by one job)")
    return plan


def _cuts(packets: list[Packet] | None, part: Part, rate: float,
          piece_seconds: float) -> list[tuple[float, int]]:
    """(offset into the file's video, first packet) of each of a file's pieces. The cuts
    are the rendition's, at keyframes; each offset is moved to the nearest frame of the
    output (frames at multiples of 1/rate from the file's first video frame), so the
    pieces' frames add up to the file's."""
    if not packets or not _may_cut(part.seconds, piece_seconds):
        return [(0.0, 0)]
    # (the frame size is the rendition's, for its own pieces: not used here)
    pieces = rendition.cut_at_keyframes(packets, (2, 2), piece_seconds, piece_seconds * 4 / 3)
    first, cuts = packets[0].pts, [(0.0, 0)]
    for piece in pieces[1:]:
        offset = round(round((piece.start - first) * rate) / rate, 6)
        if cuts[-1][0] < offset < part.seconds:
            cuts.append((offset, piece.first_frame))
    return cuts


def _may_cut(seconds: float | None, piece_seconds: float) -> bool:
    """Whether a file this long is cut into pieces: it lasts more than a third longer than
    a piece (the rendition's bound on a piece, cut_at_keyframes' max_seconds)."""
    return bool(piece_seconds and seconds and seconds > piece_seconds * 4 / 3)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} minutes"


def split_file(ffmpeg: Ffmpeg, source: str, plan: Plan, file: int, out_dir: str) -> list[str]:
    """The sources of a file's pieces: the file itself when it is one piece, else its video
    stream-copied into a Matroska file per piece (in out_dir), each checked to hold its
    frames."""
    pieces = plan.pieces_of(file)
    if len(pieces) == 1:
        return [source]
    pattern = os.path.join(out_dir, f"cut-{file:05d}-%05d.mkv")
    ffmpeg.split_video(source, [piece.first_frame for piece in pieces[1:]], pattern,
                       timeout=rendition.STEP_TIMEOUT_SECONDS)
    paths = []
    for n, piece in enumerate(pieces):
        path = pattern % n
        found = ffmpeg.video_packets(path) if os.path.exists(path) else []
        if len(found) != piece.frames:
            raise NotPlayable(f"the cut of {piece.describe(len(pieces))} holds {len(found)} frames, "
                              f"not {piece.frames}")
        paths.append(path)
    return paths


def encode_part(ffmpeg: Ffmpeg, source: str | None, plan: Plan, piece: Piece, out_path: str) -> None:
    """Encode one piece's video (`source`: its file from split_file) to the plan's format,
    in MP4, placed at the piece's start: a piece from inside a file exactly the frames of its
    place, a file's last piece as far as its video goes. Running it again replaces out_path."""
    part = plan.parts[piece.file]
    start = plan.start_of(piece)
    partial = out_path + ".partial"
    # Frames at multiples of 1/rate before the piece's end: an inner piece's length is a
    # whole number of frames (less rounding), a file's last piece ends where the file does.
    frames = math.ceil(piece.seconds * plan.rate - 1e-3)
    ffmpeg.encode_part(source if part.video else None, partial, dict(rendition.VIDEO_OPTIONS, **PIECE_MP4),
                       (plan.width, plan.height), plan.rate, start, frames,
                       fill=piece != plan.pieces_of(piece.file)[-1],
                       timeout=rendition.STEP_TIMEOUT_SECONDS)
    found = ffmpeg.start_time(partial)
    if found is None or abs(found - start) > 0.002:
        os.unlink(partial)
        raise NotPlayable(f"{plan.describe(piece.index)} was encoded to start at {found} s, "
                          f"not {start:.3f} s")
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
    """The encoded pieces and the audio joined by stream copy, index first."""
    rendition.assemble(ffmpeg, pieces, audio, out_path)


def file_packets(ffmpeg: Ffmpeg, files: list[tuple[str, MediaInfo]],
                 piece_seconds: float) -> list[list[Packet] | None]:
    """The video packets of each file that may be cut into pieces (read without decoding);
    None for the others."""
    return [ffmpeg.video_packets(path) if info.video and _may_cut(info.duration, piece_seconds)
            else None for path, info in files]


def reencode(ffmpeg: Ffmpeg, files: list[tuple[str, MediaInfo]], out_path: str,
             workers: int | None = None, piece_seconds: float = 0,
             max_piece_seconds: float = 0) -> None:
    """Every step in this process, the pieces' encodes and the audio on `workers` threads
    (each an ffmpeg): what the join's jobs do, without the queue."""
    plan = plan_parts([info for _, info in files], file_packets(ffmpeg, files, piece_seconds),
                      piece_seconds, max_piece_seconds)
    if not plan.video:
        encode_audio(ffmpeg, [path for path, _ in files], plan, out_path, faststart=True)
        return
    work = os.path.dirname(out_path)
    sources = [source for (path, _), part in zip(files, plan.parts)
               for source in split_file(ffmpeg, path, plan, part.index, work)]
    pieces = [os.path.join(work, f"reencoded-{piece.index:06d}.mp4") for piece in plan.pieces]
    audio = os.path.join(work, "reencoded-audio.m4a") if plan.audio else None
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        jobs = [pool.submit(encode_part, ffmpeg, source, plan, piece, out)
                for source, piece, out in zip(sources, plan.pieces, pieces)]
        if audio:
            jobs.append(pool.submit(encode_audio, ffmpeg, [path for path, _ in files], plan, audio))
        for job in jobs:
            job.result()
    join(ffmpeg, pieces, audio, out_path)
