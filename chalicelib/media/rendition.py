"""An H.264/AAC MP4 rendition of a ready video, made in pieces that run in parallel.

Chromium records WebM with VP8, VP9 or AV1 and Opus, which iOS Safari does not play. The
rendition re-encodes it to what every iPhone plays. A re-encode runs at about real time per
vCPU, so one job over a long recording would outlast Lambda's 900 s; instead the video is
cut into pieces of `target_seconds` that are encoded at once, each by its own job, and
joined by stream copy. Each step below is a function of files alone, so that each can run
in a different process or machine (an SQS message per piece, S3 objects between them):

    copy_audio  -> encode_audio (one job)                        -+-> assemble
    plan_pieces -> split_pieces -> encode_piece (one job per piece) -+

A recording whose video already plays everywhere (H.264 from Chromium's
`video/x-matroska;codecs=avc1` or `video/webm;codecs=h264`, often with Opus) is not
re-encoded: copy_video copies its video into the one piece, and only the audio is encoded.

Why each step is done as it is:

- **plan_pieces** reads the packets of the video without decoding them (ffmpeg's framecrc
  of a stream copy: timestamp and keyframe flag of every packet; the layer has no
  ffprobe, this is what `ffprobe -show_packets` would print) and cuts only at keyframes: a
  piece must start with a frame that decodes alone, or its encoder would have nothing to
  start from. A piece ends where the next one starts, so the pieces cover every frame
  once. Where keyframes are further apart than `max_seconds` the piece is longer and its
  `note` says so; nothing is cut between keyframes.
- **copy_audio** stream-copies the audio track alone, before the video is cut: the audio
  job reads a few percent of the source's bytes, and starts while the pieces are planned
  and split (at an hour, the one audio pass is the longest job of all).
- **split_pieces** stream-copies the video into one file per piece with ffmpeg's segment
  muxer, cutting at packet numbers (not at times, which are rounded): every packet lands
  in exactly one file, so the frames of the pieces add up to the frames of the video, and
  each file keeps the source's timestamps. A piece's job then reads its own few megabytes
  instead of the whole recording.
- **encode_piece** re-encodes one piece's file, video only, with VIDEO_OPTIONS below,
  keeping the source's timestamps (-copyts, the demuxer's time base, and no frame rate
  conversion: a screen recording sends no frame while nothing moves, and that timing is
  kept as it was). It writes a new file and renames it into place, so a piece encoded
  again (a retried job) replaces the first attempt whole.
- **encode_audio** encodes the whole audio track in one pass: AAC is made of 1024-sample
  frames with a priming delay, so audio encoded in pieces would click or gap at every
  boundary; audio is cheap to encode (tens of times real time), so one job is enough.
- **assemble** joins the encoded pieces by stream copy (chalicelib.media.mp4_join: a new
  index from the pieces' sample tables, the samples' bytes copied once), placing each
  piece at its own start time: a piece's last frame lasts until the next piece starts,
  even after a pause with no frames, so nothing drifts however many pieces there are. The
  audio goes beside the video with the offset the source had between them, and the index
  goes first so the phone can play while it downloads.

Encoder choices (VIDEO_OPTIONS, AUDIO_OPTIONS):

- H.264 **High profile, level 4.1**, 4:2:0 8-bit: every iPhone since the 4S (2011) and
  every iPad since the 2nd generation decode it in hardware, which covers every device
  that runs a Safari still in use; Main would only add the iPhone 4 and older at a cost in
  size. Level 4.1 allows 1920x1080 at 30 fps, so frames are fitted into 1920x1080
  (1080x1920 upright) and never enlarged, keeping a square-pixel, even frame size (4:2:0
  needs even sides; a captured window can be odd). A 1080p recording at more than 30 fps
  exceeds what 4.1 promises (every iPhone since the 5s, 2013, plays 4.2); its frames are
  kept, not dropped, because the recording's timing is what the rendition must keep.
- **libx264 preset veryfast, CRF 23**, as the joins' re-encode already uses: veryfast is
  about 3 times faster than the default preset (medium) for about 10-15 % more bits at the
  same quality; CRF 23 is x264's default quality, fair for screen content and video
  calls. A maxrate of 8 Mbit/s (16 Mbit buffer) bounds the spikes of a busy screen for
  playback over a mobile network; quality elsewhere is set by the CRF.
- **AAC-LC 128 kbit/s, 48 kHz**, stereo as the joins' re-encode, or mono when the source
  is mono (a microphone): the same sound, and the encoder's work halved (7.3 s instead of
  12.1 s for 10 minutes of Chromium's mono Opus, ffmpeg 7.0.2 here).

A Piece is plain data (dataclasses.asdict / Piece(**fields)) for a job message.
"""
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chalicelib.errors import NotPlayable
from chalicelib.media import mp4_join, verify
from chalicelib.media.ebml import Unsupported
from chalicelib.media.ffmpeg import Ffmpeg, Packet
from chalicelib.media.probe import MediaInfo

VIDEO_OPTIONS = {"c:v": "libx264", "preset": "veryfast", "crf": 23, "profile:v": "high",
                 "level:v": "4.1", "pix_fmt": "yuv420p", "maxrate": "8M", "bufsize": "16M",
                 # every decoded frame is encoded once, at its own time (no frame rate
                 # conversion), in the time base the source's container gave it
                 "fps_mode": "passthrough", "enc_time_base:v": "demux",
                 # one colour description for every encode (the pixels are converted to
                 # it: ffmpeg._fitted): a screen's sRGB primaries, the BT.601 matrix
                 # Chromium converts its captures with, limited range
                 "color_primaries": "bt709", "color_trc": "bt709", "colorspace": "smpte170m",
                 "color_range": "tv"}
AUDIO_OPTIONS = {"c:a": "aac", "b:a": "128k", "ar": 48000, "ac": 2}
MP4 = {"f": "mp4", "fflags": "+bitexact"}
# A piece's index goes first, so the assembly reads it with one ranged read of its head.
PIECE_MP4 = dict(MP4, movflags="+faststart")
LARGEST_FRAME = (1920, 1080)  # level 4.1: 1080p; upright frames fit 1080x1920
# A Lambda job stops at 900 s: an ffmpeg that would outlast it is stopped first, with a
# reason, while the job can still report it.
STEP_TIMEOUT_SECONDS = 840.0
# Timestamps of the pieces and the source are in milliseconds (WebM) or finer.
_SAME_TIME = 0.0015
# H.264 profiles an iPhone decodes (ffmpeg's names); 10-bit and 4:4:4 ones need a rendition.
_PLAYABLE_H264 = {None, "Baseline", "Constrained Baseline", "Main", "High"}


@dataclass(frozen=True)
class Piece:
    index: int
    start: float  # seconds, in the source's timestamps: its first frame, a keyframe
    end: float  # seconds: where the next piece starts (the end of the video for the last)
    first_frame: int  # the number of its first packet among the video's packets
    frames: int  # how many packets (frames) it holds
    width: int  # the rendition's frame size, the same for every piece
    height: int
    note: str | None = None  # why it is longer than max_seconds, when it is

    @property
    def seconds(self) -> float:
        return self.end - self.start


def needs_rendition(info: MediaInfo) -> bool:
    """Whether a recording needs the rendition to play everywhere: H.264 (8-bit 4:2:0
    profiles) with AAC or no audio plays as it is. A recording with no video is left
    alone: the rendition is a video's."""
    video, audio = info.video, info.audio
    if video is None:
        return False
    plays = (video.codec == "h264" and video.profile in _PLAYABLE_H264
             and (audio is None or audio.codec == "aac"))
    return not plays


def copies_video(info: MediaInfo) -> bool:
    """Whether the recording's video already plays everywhere: H.264 in a profile a phone
    decodes, within 1080p (either way up) with even sides. Its rendition then copies the
    video as it is (copy_video) and encodes only the audio: a remux, not a re-encode."""
    video = info.video
    return (video is not None and video.codec == "h264" and video.profile in _PLAYABLE_H264
            and bool(video.width and video.height)
            and output_size(video.width, video.height) == (video.width, video.height))


def copy_video(ffmpeg: Ffmpeg, source_path: str, out_path: str) -> Piece:
    """The recording's video, copied into MP4 with its timestamps: the one piece of a
    rendition whose video plays as it is (copies_video), in encode_piece's place."""
    partial = out_path + ".partial"
    ffmpeg.copy_video(source_path, partial, PIECE_MP4, timeout=STEP_TIMEOUT_SECONDS)
    packets = ffmpeg.video_packets(partial)
    if not packets:
        os.unlink(partial)
        raise NotPlayable("the recording has no video frames to render")
    info = ffmpeg.probe(partial)
    end = max(p.pts + p.duration for p in packets)
    os.replace(partial, out_path)
    return Piece(0, packets[0].pts, end, 0, len(packets), info.video.width, info.video.height,
                 note="the recording's own H.264, copied")


def output_size(width: int, height: int) -> tuple[int, int]:
    """The frame size of the rendition: the source's, fitted into 1080p (either way up),
    never enlarged, both sides even."""
    longest, shortest = LARGEST_FRAME
    scale = min(1.0, longest / max(width, height), shortest / min(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def plan_pieces(ffmpeg: Ffmpeg, source_path: str, target_seconds: float = 45,
                max_seconds: float = 60) -> list[Piece]:
    """Where to cut the video: at keyframes, pieces of about target_seconds, none longer
    than max_seconds unless its keyframes are further apart (then its note says so)."""
    info = ffmpeg.probe(source_path)
    if info.video is None or not info.video.width or not info.video.height:
        raise NotPlayable("the recording has no video to render")
    packets = ffmpeg.video_packets(source_path)
    if not packets:
        raise NotPlayable("the recording has no video frames to render")
    size = output_size(info.video.width, info.video.height)
    return cut_at_keyframes(packets, size, target_seconds, max_seconds)


def cut_at_keyframes(packets: list[Packet], size: tuple[int, int], target_seconds: float,
                     max_seconds: float) -> list[Piece]:
    """The plan, from the video's packets in file order (the first always starts a piece:
    a decoder starts at the first keyframe whatever comes before)."""
    if not 0 < target_seconds <= max_seconds:
        raise ValueError("pieces need 0 < target_seconds <= max_seconds")
    cuts = [(0, packets[0].pts)] + [(n, p.pts) for n, p in enumerate(packets) if p.keyframe and n]
    end = max(p.pts + p.duration for p in packets)
    if len(packets) > 1 and packets[-1].duration == 0:  # the container did not say: one gap
        end = max(end, packets[-1].pts + (packets[-1].pts - packets[0].pts) / (len(packets) - 1))
    pieces, at = [], 0
    while True:
        first, start = cuts[at]
        reachable = [k for k in range(at + 1, len(cuts)) if cuts[k][1] - start <= max_seconds]
        note = None
        if end - start <= max_seconds or at + 1 == len(cuts):
            following = None
            if end - start > max_seconds:
                note = (f"no keyframe after {start:.2f} s: the last piece lasts "
                        f"{end - start:.1f} s (more than {max_seconds:g} s)")
        elif reachable:
            following = min(reachable, key=lambda k: abs(cuts[k][1] - start - target_seconds))
        else:
            following = at + 1
            note = (f"no keyframe within {max_seconds:g} s of {start:.2f} s: the next is at "
                    f"{cuts[following][1]:.2f} s, so this piece lasts "
                    f"{cuts[following][1] - start:.1f} s")
        next_frame, piece_end = cuts[following] if following is not None else (len(packets), end)
        pieces.append(Piece(len(pieces), start, piece_end, first, next_frame - first,
                            size[0], size[1], note))
        if following is None:
            return pieces
        at = following


def copy_audio(ffmpeg: Ffmpeg, source_path: str, out_path: str) -> str | None:
    """Stream-copy the recording's audio track alone into out_path (Matroska): the input
    of encode_audio. None (nothing written) when the recording has no audio."""
    if ffmpeg.probe(source_path).audio is None:
        return None
    ffmpeg.copy_audio(source_path, out_path)
    return out_path


def split_pieces(ffmpeg: Ffmpeg, source_path: str, pieces: list[Piece], out_dir: str) -> list[str]:
    """Stream-copy each piece's frames of the source's video into a file of its own (in
    out_dir): the input of encode_piece. Checked: each file holds its piece's frames."""
    pattern = os.path.join(out_dir, "source-%05d.mkv")
    ffmpeg.split_video(source_path, [piece.first_frame for piece in pieces[1:]], pattern,
                       timeout=STEP_TIMEOUT_SECONDS)
    paths = [pattern % piece.index for piece in pieces]
    for piece, path in zip(pieces, paths):
        _check_holds(ffmpeg.video_packets(path) if os.path.exists(path) else [], piece,
                     "the cut of the source")
    return paths


def encode_piece(ffmpeg: Ffmpeg, source_path: str, piece: Piece, out_path: str) -> None:
    """Encode one piece to H.264 in MP4 (video only, the source's timestamps).
    source_path: the piece's file from split_pieces. Running it again replaces out_path."""
    _check_holds(ffmpeg.video_packets(source_path), piece, "the piece's source file")
    partial = out_path + ".partial"
    ffmpeg.encode_video(source_path, partial, dict(VIDEO_OPTIONS, **PIECE_MP4),
                        (piece.width, piece.height), timeout=STEP_TIMEOUT_SECONDS)
    try:
        _check_holds(ffmpeg.video_packets(partial), piece, "the encoded piece")
    except NotPlayable:
        os.unlink(partial)
        raise
    os.replace(partial, out_path)


def encode_audio(ffmpeg: Ffmpeg, source_path: str, out_path: str) -> str | None:
    """Encode the whole audio track to AAC in MP4 in one pass, timestamps kept; None
    (nothing written) when the recording has no audio. source_path: the recording, or the
    audio alone as copy_audio copies it. Mono stays mono (half the encoder's work)."""
    audio = ffmpeg.probe(source_path).audio
    if audio is None:
        return None
    partial = out_path + ".partial"
    channels = 1 if audio.channels == "mono" else 2
    ffmpeg.encode_audio(source_path, partial, dict(AUDIO_OPTIONS, ac=channels, **MP4),
                        timeout=STEP_TIMEOUT_SECONDS)
    os.replace(partial, out_path)
    return out_path


def assemble(ffmpeg: Ffmpeg, piece_paths: list[str], audio_path: str | None, out_path: str,
             frames: int | None = None) -> None:
    """Join the encoded pieces (in order) by stream copy, each at its own start time, with
    the audio beside them and the index first (chalicelib.media.mp4_join), into out_path.
    Checked as join_heads and check_joined check."""
    joined = join_heads([mp4_join.read_file_head(path) for path in piece_paths],
                        mp4_join.read_file_head(audio_path) if audio_path else None, frames)
    partial = out_path + ".partial"
    mp4_join.write(joined, piece_paths + ([audio_path] if audio_path else []), partial)
    try:
        check_joined(ffmpeg, joined, partial)
    except NotPlayable:
        os.unlink(partial)
        raise
    os.replace(partial, out_path)


def join_heads(piece_heads: list[tuple[bytes, bytes]], audio_head: tuple[bytes, bytes] | None,
               frames: int | None = None) -> mp4_join.Joined:
    """How the pieces and the audio join (mp4_join), from their heads (ftyp, moov); a piece
    or audio the join cannot take is NotPlayable, and so is a join that does not hold
    `frames` frames, the plan's count (None: whatever the pieces hold)."""
    try:
        joined = mp4_join.join([mp4_join.track(*head) for head in piece_heads],
                               mp4_join.track(*audio_head) if audio_head else None)
    except Unsupported as error:
        raise NotPlayable(f"the pieces cannot be joined: {error}") from error
    if frames is not None and joined.frames != frames:
        raise NotPlayable(f"the joined rendition holds {joined.frames} frames, the plan {frames}")
    return joined


def check_joined(ffmpeg: Ffmpeg, joined: mp4_join.Joined, path: str) -> MediaInfo:
    """What ffmpeg reads of the joined file at path (the whole file, or its head alone:
    ffmpeg reads the tracks' durations and codecs from the index): NotPlayable unless it
    lasts as long as the pieces and the audio do."""
    info = ffmpeg.probe(path)
    verify.check_duration(info.duration, max(joined.video_end, joined.audio_end or 0.0),
                          "its pieces and audio")
    return info


def _check_holds(packets: list[Packet], piece: Piece, what: str) -> None:
    if len(packets) != piece.frames or abs(packets[0].pts - piece.start) > _SAME_TIME:
        found = f"{len(packets)} frames from {packets[0].pts:.3f} s" if packets else "no frames"
        raise NotPlayable(f"{what} does not hold piece {piece.index} ({piece.frames} frames "
                          f"from {piece.start:.3f} s): it holds {found}")


@dataclass
class Rendition:
    """What render did and how long each step took (seconds of wall time)."""
    pieces: list[Piece]
    audio_copy_seconds: float = 0.0
    plan_seconds: float = 0.0
    split_seconds: float = 0.0
    piece_seconds: list[float] = field(default_factory=list)  # each encode_piece, by index
    audio_seconds: float = 0.0
    encode_seconds: float = 0.0  # from the end of the split to the last job done
    assemble_seconds: float = 0.0
    total_seconds: float = 0.0


def render(ffmpeg: Ffmpeg, source: str, out: str, workers: int | None = None,
           target_seconds: float = 45, max_seconds: float = 60,
           work_dir: str | None = None) -> Rendition:
    """All the steps in this process, the jobs on a pool of `workers` threads (each runs
    an ffmpeg), in the order the rendition job runs them: the audio copied out and its
    encode started first (the longest single job), then the video planned, split and its
    pieces encoded in order."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=work_dir) as work:
        if copies_video(ffmpeg.probe(source)):
            video = os.path.join(work, "piece-00000.mp4")
            piece = copy_video(ffmpeg, source, video)
            audio = encode_audio(ffmpeg, source, os.path.join(work, "audio.m4a"))
            assemble(ffmpeg, [video], audio, out, piece.frames)
            return Rendition([piece], total_seconds=time.monotonic() - started)
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            audio_source = copy_audio(ffmpeg, source, os.path.join(work, "audio-source.mka"))
            copied = time.monotonic()
            audio = (pool.submit(_timed, encode_audio, ffmpeg, audio_source,
                                 os.path.join(work, "audio.m4a")) if audio_source else None)
            pieces = plan_pieces(ffmpeg, source, target_seconds, max_seconds)
            planned = time.monotonic()
            sources = split_pieces(ffmpeg, source, pieces, work)
            split = time.monotonic()
            encoded = [os.path.join(work, f"piece-{piece.index:05d}.mp4") for piece in pieces]
            jobs = [pool.submit(_timed, encode_piece, ffmpeg, path, piece, output)
                    for path, piece, output in zip(sources, pieces, encoded)]
            piece_seconds = [job.result()[1] for job in jobs]
            audio_path, audio_seconds = audio.result() if audio else (None, 0.0)
        encoded_at = time.monotonic()
        assemble(ffmpeg, encoded, audio_path, out, sum(piece.frames for piece in pieces))
        done = time.monotonic()
    return Rendition(pieces, copied - started, planned - copied, split - planned, piece_seconds,
                     audio_seconds, encoded_at - split, done - encoded_at, done - started)


def render_single_pass(ffmpeg: Ffmpeg, source: str, out: str) -> float:
    """The reference: the same encoder settings in one ffmpeg over the whole recording
    (what a single job would do). Returns its wall time in seconds."""
    started = time.monotonic()
    info = ffmpeg.probe(source)
    if info.video is None or not info.video.width or not info.video.height:
        raise NotPlayable("the recording has no video to render")
    partial = out + ".partial"
    ffmpeg.encode_video(source, partial, dict(VIDEO_OPTIONS, movflags="+faststart", **MP4),
                        output_size(info.video.width, info.video.height),
                        audio_options=AUDIO_OPTIONS if info.audio else None,
                        keep_timestamps=False)
    os.replace(partial, out)
    return time.monotonic() - started


def _timed(step, *args):
    started = time.monotonic()
    result = step(*args)
    return result, time.monotonic() - started

