"""Folding a recording into segments while it goes on, and assembling the compiled object
from them by S3 copies: against moto's S3 and DynamoDB, with the real ffmpeg.

The check that matters: the assembled video holds exactly the recorder's packets (ffmpeg's
framemd5 of a stream copy, which hashes every packet with its timestamps), is seekable,
and decodes; and the join that assembles it reads only what was not folded yet.
"""
import io
import subprocess

import pytest

from chalicelib import aws
from chalicelib.adapters.keys import segment_key
from chalicelib.errors import StorageUnavailable
from chalicelib.media import ebml, matroska
from chalicelib.media.fold import SEGMENT_BYTES, Extension
from chalicelib.settings import get_settings
from tests.helpers import object_bytes, record, status_of
from tests.inspect_media import matroska_has_cues
from tests.media_factory import ffmpeg, unseekable_stream

CHUNK = 300_000


def long_recording(clusters: str = "sized") -> bytes:
    """About 19 MB of WebM: three segments and some, in 300 KB chunks.

    ffmpeg (like Firefox) writes each cluster with its size; Chromium writes clusters of
    unknown size, which `clusters="unknown"` imitates by rewriting the size fields."""
    data = unseekable_stream("webm", "vp8", "opus", seconds=30.0, video_bitrate="5M")
    assert len(data) > 3 * SEGMENT_BYTES
    return data if clusters == "sized" else with_unknown_cluster_sizes(data)


def with_unknown_cluster_sizes(data: bytes) -> bytes:
    head = matroska.read_head(data)
    scan = matroska.scan_clusters(data[head.size:], 0, head, matroska.Index())
    rewritten = bytearray(data)
    for start, _ in scan.boundaries:
        at = head.size + start + 4  # after the Cluster ID
        _, _, data_start = ebml.element_at(data, at - 4)
        width = data_start - at
        rewritten[at:data_start] = ((1 << (7 * width + 1)) - 1).to_bytes(width, "big")  # all ones
    return bytes(rewritten)


def in_chunks(data: bytes) -> list[bytes]:
    return [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]


def compiled(video_id: int, catalog) -> bytes:
    return object_bytes(catalog.get(video_id).compiled_key)


def packets(data: bytes, tmp_path, name: str) -> list[str]:
    """Every packet's stream, timestamps, size and hash, in file order."""
    path = tmp_path / name
    path.write_bytes(data)
    result = subprocess.run([ffmpeg(), "-v", "error", "-i", str(path), "-map", "0", "-c", "copy",
                             "-f", "framemd5", "-"], capture_output=True, check=True)
    return [line for line in result.stdout.decode().splitlines() if not line.startswith("#")]


def decode_errors(data: bytes, tmp_path, *options: str) -> str:
    path = tmp_path / "decode.webm"
    path.write_bytes(data)
    result = subprocess.run([ffmpeg(), "-v", "error", *options, "-i", str(path), "-f", "null", "-"],
                            capture_output=True)
    return result.stderr.decode()


class ChunkReads:
    """Counts the chunk objects read through the S3 client."""

    def __init__(self):
        self.keys: list[str] = []
        aws.s3().meta.events.register("before-call.s3.GetObject", self._seen)

    def _seen(self, params, **_):
        if "/chunks/" in params["url_path"]:
            self.keys.append(params["url_path"])


@pytest.mark.parametrize("clusters", ["sized", "unknown"])
def test_a_recording_folded_while_it_goes_on_is_assembled_by_copies(on_moto, tmp_path, clusters):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    data = long_recording(clusters)
    chunks = in_chunks(data)
    video_id, token = record(services, chunks, fold_every=5)
    folded = catalog.get(video_id)
    assert folded.segment_count == 3
    reads = ChunkReads()
    assert joiner.run(video_id) == "joined"
    # Only the chunks after the last segment were read; the segments were copied by S3.
    unfolded = len(chunks) - folded.segmented_bytes // CHUNK
    assert 0 < len(reads.keys) <= unfolded + 1
    status = status_of(service, video_id, token)
    assert (status["status"], status["join_method"], status["container"]) == ("ready", "segments", "webm")
    assert status["duration"] == pytest.approx(30.0, abs=0.1)
    output = compiled(video_id, catalog)
    assert status["byte_size"] == len(output)
    assert packets(output, tmp_path, "out.webm") == packets(data, tmp_path, "in.webm")
    assert matroska_has_cues(io.BytesIO(output))
    assert decode_errors(output, tmp_path) == ""
    assert decode_errors(output, tmp_path, "-ss", "27") == ""  # a seek through the Cues
    assert status["poster_url"]


def test_a_recording_nobody_folded_is_folded_by_its_join(on_moto, tmp_path):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    data = long_recording()
    video_id, token = record(services, in_chunks(data))
    assert catalog.get(video_id).segment_count == 0
    assert joiner.run(video_id) == "joined"
    assert status_of(service, video_id, token)["join_method"] == "segments"
    assert catalog.get(video_id).segment_count == 3
    assert packets(compiled(video_id, catalog), tmp_path, "out.webm") == packets(data, tmp_path, "in.webm")


@pytest.mark.parametrize("clusters", ["sized", "unknown"])
def test_a_recording_cut_mid_frame_keeps_every_whole_frame(on_moto, tmp_path, clusters):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    data = long_recording(clusters)
    cut_short = data[:-5000]  # as a recording still going on: its last chunk ends mid-frame
    video_id, token = record(services, in_chunks(cut_short), fold_every=10)
    assert joiner.run(video_id) == "joined"
    assert status_of(service, video_id, token)["join_method"] == "segments"
    whole = packets(data, tmp_path, "in.webm")
    kept = packets(compiled(video_id, catalog), tmp_path, "out.webm")
    assert kept == whole[:len(kept)] and len(whole) - 3 <= len(kept) < len(whole)
    assert decode_errors(compiled(video_id, catalog), tmp_path) == ""


def test_a_long_audio_only_recording_is_assembled_too(on_moto, tmp_path):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    data = unseekable_stream("matroska", None, "pcm", seconds=70.0)  # Chromium can record PCM
    video_id, token = record(services, in_chunks(data), fold_every=5)
    assert joiner.run(video_id) == "joined"
    status = status_of(service, video_id, token)
    assert (status["join_method"], status["content_type"], status["poster_url"]) == (
        "segments", "audio/x-matroska", None)
    assert status["duration"] == pytest.approx(70.0, abs=0.1)
    output = compiled(video_id, catalog)
    assert packets(output, tmp_path, "out.mkv") == packets(data, tmp_path, "in.mkv")
    assert decode_errors(output, tmp_path, "-ss", "68") == ""


def test_two_jobs_folding_at_once_commit_each_segment_once(on_moto, tmp_path):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    data = long_recording()
    video_id, _ = record(services, in_chunks(data))
    stale = catalog.get(video_id)
    joiner.folder.fold(stale)
    committed = catalog.get(video_id).segment_count
    assert committed == 3
    joiner.folder.fold(stale)  # a second job that read the record before the first committed
    assert catalog.get(video_id).segment_count == committed
    assert joiner.run(video_id) == "joined"
    assert packets(compiled(video_id, catalog), tmp_path, "out.webm") == packets(data, tmp_path, "in.webm")


def test_chunks_out_of_order_stop_the_fold_and_fail_the_join(on_moto):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    chunks = in_chunks(long_recording())
    chunks[30], chunks[31] = chunks[31], chunks[30]
    video_id, token = record(services, chunks)
    assert joiner.run(video_id) == "failed"
    assert catalog.get(video_id).segments_off  # left to ffmpeg, which says what is wrong
    assert status_of(service, video_id, token)["status"] == "failed"


def test_a_second_file_is_joined_from_the_chunks(on_moto, tmp_path):
    services = on_moto
    service, joiner, catalog = services.videos, services.joiner, services.backend.catalog
    chunks = in_chunks(long_recording()) + [unseekable_stream("webm", "vp8", "opus", seconds=2.0,
                                                              video_bitrate="4M")]
    video_id, token = record(services, chunks, fold_every=5)
    assert joiner.run(video_id) == "joined"
    assert "another file" in catalog.get(video_id).segments_off
    status = status_of(service, video_id, token)
    assert status["join_method"] == "concat"
    assert status["duration"] == pytest.approx(32.0, abs=0.2)


def test_a_waiting_join_folds_what_has_arrived(clocked_on_moto):
    services = clocked_on_moto
    joiner, clock, catalog = services.joiner, services.videos.clock, services.backend.catalog
    video_id, _ = record(services, in_chunks(long_recording()))
    clock.now += 2  # still recording
    assert joiner.run(video_id, urgent=False) == "waiting for the recording to pause"
    video = catalog.get(video_id)
    assert video.segment_count == 3
    listing = aws.s3().list_objects_v2(Bucket=get_settings().bucket_name,
                                       Prefix=f"videos/{video_id}/segments/")
    sizes = {o["Key"]: o["Size"] for o in listing["Contents"]}
    assert all(sizes[segment_key(video_id, n)] >= SEGMENT_BYTES for n in range(3))


def extended_objects(video_id: int) -> dict[str, int]:
    listing = aws.s3().list_objects_v2(Bucket=get_settings().bucket_name,
                                       Prefix=f"videos/{video_id}/segments/")
    return {o["Key"]: o["Size"] for o in listing["Contents"] if "-" in o["Key"].rsplit("/", 1)[-1]}


def test_a_waiting_join_extends_the_last_segment_with_the_clusters_after_it(on_moto, tmp_path):
    services = on_moto
    catalog, store, folder = services.backend.catalog, services.backend.store, services.joiner.folder
    data = long_recording()
    chunks = in_chunks(data)
    video_id, token = record(services, chunks[:-6], fold_every=5)
    folder.fold(catalog.get(video_id))
    video = catalog.get(video_id)
    assert video.segment_count == 3
    state = folder.state(video)
    first = Extension.from_json(store.read_extension(video_id, 3), state.format)
    # The last segment, then the whole clusters after it, byte for byte.
    head_size = video.segmented_bytes - state.body_bytes
    assert object_bytes(segment_key(video_id, 2, first.extended_to)) == (
        object_bytes(segment_key(video_id, 2)) + data[video.segmented_bytes:head_size + first.extended_to])
    for chunk in chunks[-6:-2]:
        service_append(services, video_id, token, chunk)
    folder.fold(catalog.get(video_id))
    second = Extension.from_json(store.read_extension(video_id, 3), state.format)
    assert second.extended_to > first.extended_to
    # One extension is kept: the one the state names.
    assert list(extended_objects(video_id)) == [segment_key(video_id, 2, second.extended_to)]
    for chunk in chunks[-2:]:
        service_append(services, video_id, token, chunk)
    reads = ChunkReads()
    assert services.joiner.run(video_id) == "joined"
    # Only the chunks after the extension were read.
    assert 0 < len(reads.keys) <= len(chunks) - second.chunk
    assert catalog.get(video_id).segment_count == 3
    output = compiled(video_id, catalog)
    assert packets(output, tmp_path, "out.webm") == packets(data, tmp_path, "in.webm")
    assert decode_errors(output, tmp_path, "-ss", "27") == ""


def test_an_extension_older_than_a_segment_s_worth_is_passed_over(on_moto, tmp_path):
    services = on_moto
    catalog, folder = services.backend.catalog, services.joiner.folder
    data = long_recording()
    chunks = in_chunks(data)
    segments_of_two = 2 * SEGMENT_BYTES // CHUNK + 4
    video_id, token = record(services, chunks[:segments_of_two], fold_every=5)
    folder.fold(catalog.get(video_id))
    assert catalog.get(video_id).segment_count == 2
    assert extended_objects(video_id)
    for chunk in chunks[segments_of_two:]:  # more than a segment's worth, not folded
        service_append(services, video_id, token, chunk)
    assert services.joiner.run(video_id) == "joined"
    # The join folded on from the last segment, not from its extension.
    assert catalog.get(video_id).segment_count == 3
    assert packets(compiled(video_id, catalog), tmp_path, "out.webm") == packets(data, tmp_path, "in.webm")


def test_a_draft_that_is_gone_leaves_the_join_to_compose_from_the_segments(on_moto, tmp_path):
    services = on_moto
    catalog, bucket = services.backend.catalog, get_settings().bucket_name
    data = long_recording()
    video_id, _ = record(services, in_chunks(data), fold_every=5)
    [draft] = aws.s3().list_multipart_uploads(Bucket=bucket)["Uploads"]
    # The bucket's lifecycle rule aborts a multipart upload left open for a day.
    aws.s3().abort_multipart_upload(Bucket=bucket, Key=draft["Key"], UploadId=draft["UploadId"])
    assert services.joiner.run(video_id) == "joined"
    video = catalog.get(video_id)
    assert video.compiled_key == f"videos/{video_id}/compiled/{video.chunk_count:06d}.webm"
    assert packets(compiled(video_id, catalog), tmp_path, "out.webm") == packets(data, tmp_path, "in.webm")


def test_a_recording_that_goes_on_after_a_join_gets_another_draft(on_moto, tmp_path):
    services = on_moto
    catalog, folder = services.backend.catalog, services.joiner.folder
    data = long_recording()
    chunks = in_chunks(data)
    first_part = 2 * SEGMENT_BYTES // CHUNK + 10
    video_id, token = record(services, chunks[:first_part], fold_every=5)
    folder.fold(catalog.get(video_id))
    assert catalog.get(video_id).segment_count == 2
    assert services.joiner.run(video_id) == "joined"
    first_key = catalog.get(video_id).compiled_key
    assert first_key == f"videos/{video_id}/compiled/draft-000002.webm"
    for number, chunk in enumerate(chunks[first_part:], start=1):
        service_append(services, video_id, token, chunk)
        if number % 5 == 0:
            folder.fold(catalog.get(video_id))
    video = catalog.get(video_id)
    assert video.segment_count == 3
    # The first draft was completed by the join: the next segment started another, which
    # holds every segment after the first.
    state = folder.state(video)
    assert state.draft["key"] == f"videos/{video_id}/compiled/draft-000003.webm"
    parts = aws.s3().list_parts(Bucket=get_settings().bucket_name, Key=state.draft["key"],
                                UploadId=state.draft["upload_id"])["Parts"]
    assert [part["PartNumber"] for part in parts] == [2, 3]
    assert services.joiner.run(video_id) == "joined"
    assert catalog.get(video_id).compiled_key == state.draft["key"]
    assert packets(compiled(video_id, catalog), tmp_path, "out.webm") == packets(data, tmp_path, "in.webm")


def test_a_composed_video_whose_frames_end_elsewhere_than_its_head_says_fails(on_moto, monkeypatch):
    services = on_moto
    data = long_recording()
    video_id, token = record(services, in_chunks(data), fold_every=5)
    # An index gone wrong: the duration the join states is half again the frames' length.
    real = matroska.Head.seconds
    monkeypatch.setattr(matroska.Head, "seconds", lambda head, ticks: 1.5 * real(head, ticks))
    assert services.joiner.run(video_id) == "failed"
    error = services.backend.catalog.get(video_id).error
    assert "frames end at 30.0" in error and "its head says it lasts 45.0" in error


def test_ffmpeg_reads_where_a_stream_s_frames_end(tmp_path):
    from chalicelib.media.ffmpeg import Ffmpeg
    path = tmp_path / "stream.webm"
    path.write_bytes(unseekable_stream("webm", "vp8", "opus", seconds=3.0))
    assert Ffmpeg(ffmpeg()).media_end(str(path)) == pytest.approx(3.0, abs=0.05)


def test_segment_0_is_not_extended(on_moto):
    services = on_moto
    catalog, store = services.backend.catalog, services.backend.store
    chunks = in_chunks(long_recording())[:SEGMENT_BYTES // CHUNK + 8]
    video_id, _ = record(services, chunks, fold_every=5)
    services.joiner.folder.fold(catalog.get(video_id))
    assert catalog.get(video_id).segment_count == 1
    assert store.read_extension(video_id, 1) is None
    assert extended_objects(video_id) == {}


def service_append(services, video_id: int, token: str, chunk: bytes) -> None:
    services.videos.append(video_id, token, chunk)


def test_a_composition_that_fails_leaves_no_object_and_no_upload(on_moto):
    store, bucket = on_moto.backend.store, get_settings().bucket_name
    composition = store.start_composition("videos/1/compiled/000001.webm", "video/webm")
    composition.send(1, b"x" * SEGMENT_BYTES)
    composition.copy_segment(2, video_id=1, segment=99, size=SEGMENT_BYTES)  # no such segment
    with pytest.raises(StorageUnavailable, match="S3 refused the call"):
        composition.complete()
    client = aws.s3()
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_finalized_recording_keeps_only_its_compiled_video_and_poster(on_moto, tmp_path):
    services = on_moto
    data = long_recording()
    video_id, token = record(services, in_chunks(data), fold_every=5)
    services.videos.finalize(video_id, token)
    assert services.joiner.run(video_id) == "joined"
    listing = aws.s3().list_objects_v2(Bucket=get_settings().bucket_name, Prefix=f"videos/{video_id}/")
    keys = sorted(o["Key"] for o in listing["Contents"])
    catalog = services.backend.catalog
    # The video is the draft the fold filled while recording, completed by the join.
    compiled_key = catalog.get(video_id).compiled_key
    assert compiled_key == f"videos/{video_id}/compiled/draft-000002.webm"
    assert keys == sorted([f"videos/{video_id}/compiled/{len(in_chunks(data)):06d}.jpg", compiled_key])
    assert aws.s3().list_multipart_uploads(Bucket=get_settings().bucket_name).get("Uploads", []) == []
    assert packets(compiled(video_id, catalog), tmp_path, "out.webm") == packets(data, tmp_path, "in.webm")
    assert status_of(services.videos, video_id, token)["status"] == "ready"


def test_a_chunk_larger_than_a_fold_holds_is_streamed_into_the_chunk_join(on_moto, tmp_path, monkeypatch):
    """A piece PUT to S3 can be gigabytes: the fold does not read it whole, and the chunk
    join streams it into ffmpeg a block at a time (both limits made small here)."""
    from chalicelib.media import chunk_join, fold
    monkeypatch.setattr(fold, "FOLD_READ_BYTES", 6 * 1024 * 1024)
    monkeypatch.setattr(chunk_join, "READ_BLOCK", 1024 * 1024)
    reads = []
    store = on_moto.backend.store
    real_read = store.read_chunk
    monkeypatch.setattr(store, "read_chunk", lambda *args, **kwargs: reads.append(kwargs) or real_read(*args, **kwargs))
    services = on_moto
    data = long_recording()
    chunks = [data[:CHUNK], data[CHUNK:CHUNK + 8_000_000]] + in_chunks(data[CHUNK + 8_000_000:])
    video_id, token = record(services, chunks, fold_every=3)
    assert services.joiner.run(video_id) == "joined"
    assert services.backend.catalog.get(video_id).segments_off == (
        f"chunk 1 is larger than {6 * 1024 * 1024} bytes")
    status = status_of(services.videos, video_id, token)
    assert (status["status"], status["join_method"]) == ("ready", "remux")
    assert packets(compiled(video_id, services.backend.catalog), tmp_path, "out.webm") == packets(
        data, tmp_path, "in.webm")
    assert all(read.get("max_bytes") for read in reads)  # never a whole chunk in one read
    assert max(read["max_bytes"] for read in reads) <= 6 * 1024 * 1024 + 1
