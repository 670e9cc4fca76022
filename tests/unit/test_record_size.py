"""A video's record stays the same size however many chunks it takes: every catalog write
sets counters and the last chunk's size and digest, none appends to a list or map per
chunk or per segment (DynamoDB refuses an item over 400 KB, and reads and writes of an item
are billed by its size). Only `lost_chunks` grows, by one index per chunk whose upload
failed and could not be undone, which a recording does not do per chunk."""
import dataclasses
import json

from chalicelib import wiring
from chalicelib.settings import get_settings


def record_size(services, video_id: int) -> int:
    """The record serialized, every field of it (there is no Video-to-item function in the
    DynamoDB adapter to measure with)."""
    video = services.backend.catalog.get(video_id)
    def plain(value):  # lost_chunks is a frozenset, media's join_method an enum
        return sorted(value) if isinstance(value, frozenset) else str(value)
    return len(json.dumps(dataclasses.asdict(video), default=plain))


def test_thirty_thousand_chunks_leave_the_record_the_size_of_one():
    services = wiring.build(get_settings(), wiring.memory_backend())
    created = services.videos.create()
    video_id, token = created.view.video.video_id, created.upload_token
    sizes = {}
    for index in range(30_000):
        services.videos.append(video_id, token, b"%08d" % index)  # small, each its own digest
        if index + 1 in (1, 100, 30_000):
            sizes[index + 1] = record_size(services, video_id)
    assert services.backend.catalog.get(video_id).chunk_count == 30_000
    # Only digits change: the counters' (1 -> 30000 chunks, 8 -> 240000 bytes) and the
    # times' (a float's repr varies by a few). One entry per chunk would add 30,000.
    assert sizes[30_000] - sizes[1] <= 32
    assert sizes[30_000] - sizes[100] <= 24
    assert sizes[30_000] < 1024
