"""The MP4 join of a rendition's pieces (chalicelib.media.mp4_join), on pieces the real
ffmpeg encoded: what tests/integration/test_rendition.py checks of the whole rendition
(frame times, durations, audio against video) holds through it; here, what it is made of.
"""
import dataclasses
import os
import struct
import subprocess

import pytest

from chalicelib.errors import NotPlayable
from chalicelib.media import mp4_join, rendition
from chalicelib.media.ffmpeg import Ffmpeg
from tests.inspect_media import mp4_chunks
from tests.media_factory import recording_file

GIB = 1 << 30


@pytest.fixture(scope="module")
def ffmpeg():
    return Ffmpeg(os.environ["FFMPEG_BINARY"])


@pytest.fixture(scope="module")
def parts(ffmpeg, tmp_path_factory):
    """A 6 s recording's encoded pieces (2 s each), its AAC audio, and the plan."""
    work = tmp_path_factory.mktemp("mp4-join")
    source = recording_file(str(work / "source.webm"), seconds=6)
    pieces = rendition.plan_pieces(ffmpeg, source, 2, 3)
    encoded = [str(work / f"piece-{piece.index}.mp4") for piece in pieces]
    for path, piece, out in zip(rendition.split_pieces(ffmpeg, source, pieces, str(work)), pieces, encoded):
        rendition.encode_piece(ffmpeg, path, piece, out)
    audio = rendition.encode_audio(ffmpeg, source, str(work / "audio.m4a"))
    return work, source, pieces, encoded, audio


def samples(path, stream: str) -> list[tuple[str, str]]:
    """(size, CRC) of every packet of one stream, in decode order: the samples' bytes."""
    result = subprocess.run([os.environ["FFMPEG_BINARY"], "-v", "error", "-i", str(path), "-map",
                             f"0:{stream}:0", "-c", "copy", "-f", "framecrc", "-"],
                            capture_output=True, check=True)
    return [tuple(field.strip() for field in line.split(",")[4:6])
            for line in result.stdout.decode().splitlines() if line and not line.startswith("#")]


def test_every_sample_is_copied_as_it_is(ffmpeg, parts):
    work, _, pieces, encoded, audio = parts
    out = str(work / "joined.mp4")
    rendition.assemble(ffmpeg, encoded, audio, out, sum(piece.frames for piece in pieces))
    assert samples(out, "v") == [sample for path in encoded for sample in samples(path, "v")]
    assert samples(out, "a") == samples(audio, "a")
    assert os.path.getsize(out) == rendition.join_heads([mp4_join.read_file_head(path) for path in encoded],
                                                            mp4_join.read_file_head(audio)).size


def test_audio_and_video_are_interleaved_about_a_second_at_a_time(ffmpeg, parts):
    work, _, pieces, encoded, audio = parts
    out = str(work / "interleaved.mp4")
    rendition.assemble(ffmpeg, encoded, audio, out)
    chunks = mp4_chunks(out)
    assert {handler for _, handler, _ in chunks} == {"vide", "soun"}
    assert len(chunks) >= 2 * 6  # about a second each, for 6 s of each track
    # in file order, no chunk is further than a chunk's length from the one before
    times = [seconds for _, _, seconds in chunks]
    assert max(abs(b - a) for a, b in zip(times, times[1:])) <= mp4_join.CHUNK_SECONDS + 0.2


def test_pieces_not_encoded_alike_are_refused_and_nothing_is_written(ffmpeg, parts):
    work, source, pieces, encoded, audio = parts
    other = dataclasses.replace(pieces[1], width=160, height=120)
    odd = str(work / "odd-piece.mp4")
    rendition.encode_piece(ffmpeg, rendition.split_pieces(ffmpeg, source, pieces, str(work))[1], other, odd)
    out = str(work / "odd.mp4")
    with pytest.raises(NotPlayable, match="piece 1 was not encoded as piece 0 was"):
        rendition.assemble(ffmpeg, [encoded[0], odd, *encoded[2:]], audio, out)
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")


def test_a_piece_that_lasts_into_the_next_is_refused(parts):
    _, _, _, encoded, audio = parts
    tracks = [mp4_join.track(*mp4_join.read_file_head(path)) for path in encoded]
    # piece 1 said to start a frame after piece 0 does: piece 0's frames would overlap it
    tracks[1] = dataclasses.replace(tracks[1], starts_at=tracks[0].starts_at + 40)
    with pytest.raises(NotPlayable, match="piece 0 lasts past the start of piece 1"):
        mp4_join.join(tracks, mp4_join.track(*mp4_join.read_file_head(audio)))


def _head_boxes(head: bytes) -> dict[str, tuple[int, int]]:
    """Top-level (offset, size field) of the head's boxes, the mdat's header last."""
    found, at = {}, 0
    while at + 8 <= len(head):
        size, kind = struct.unpack_from(">I4s", head, at)
        found[kind.decode()] = (at, size)
        if kind == b"mdat":
            break
        at += size
    return found


@pytest.mark.parametrize("sample_bytes, wide", [(1000, False), (40 * 1024 * 1024, True)])
def test_offsets_are_64_bit_when_the_file_passes_4_gib(parts, sample_bytes, wide):
    _, _, _, encoded, audio = parts
    tracks = []
    for path in encoded:  # the same tables with every sample sample_bytes long
        track = mp4_join.track(*mp4_join.read_file_head(path))
        count = len(track.sizes)
        tracks.append(dataclasses.replace(track, sizes=[sample_bytes] * count,
                                          positions=[48 + n * sample_bytes for n in range(count)]))
    joined = mp4_join.join(tracks, mp4_join.track(*mp4_join.read_file_head(audio)))
    head = _head_boxes(joined.head)
    assert (joined.size > 4 * GIB) is wide
    assert (b"co64" in joined.head, b"stco" in joined.head) == (wide, not wide)
    at, size = head["mdat"]
    if wide:  # a 64-bit size follows the type
        assert size == 1 and struct.unpack_from(">Q", joined.head, at + 8)[0] == joined.size - at
    else:
        assert size == joined.size - at
    assert len(joined.head) + sum(span[2] for span in joined.spans) == joined.size


def test_the_plan_s_frames_are_what_the_pieces_hold(parts):
    _, _, pieces, encoded, audio = parts
    joined = mp4_join.join([mp4_join.track(*mp4_join.read_file_head(path)) for path in encoded])
    assert joined.frames == sum(piece.frames for piece in pieces) == 150
    assert joined.audio_end is None and joined.video_end == pytest.approx(6.0, abs=0.001)
