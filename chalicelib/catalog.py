"""The video catalog (DynamoDB): the id counter and one record per video.

Every change is a single conditional UpdateItem, so concurrent appends and joins never
lose an update: an append claims the next chunk index atomically, a join records its result
only if no newer join has already done so.

Item with video_id 0 is the id counter; video records start at 1.
"""
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from chalicelib import aws

COUNTER_ID = 0


@dataclass(frozen=True)
class Video:
    video_id: int
    token_hash: str
    chunk_count: int  # chunk indices claimed so far: the next append gets this index
    byte_count: int
    created_at: float
    updated_at: float
    lost_chunks: frozenset = frozenset()  # indices whose upload failed after being claimed
    join_requested_at: float | None = None  # a join was asked for by an append
    join_urgent_at: float | None = None  # a join was asked for by someone waiting to play
    join_started_at: float | None = None
    joining_chunks: int | None = None  # the chunk count the running join is joining
    compiled_chunks: int | None = None  # the chunk count the compiled object reflects
    compiled_key: str | None = None
    poster_key: str | None = None
    media: dict = field(default_factory=dict)  # container, content type, duration, codecs...
    failed_chunks: int | None = None  # the chunk count whose join failed
    error: str | None = None
    segment_count: int = 0  # segments folded from the chunks so far (chalicelib.segments)
    segmented_bytes: int = 0  # chunk bytes those segments (and the stream's head) hold
    segments_off: str | None = None  # why this video cannot be folded, when it cannot

    def stored_chunk_indices(self) -> list[int]:
        return [i for i in range(self.chunk_count) if i not in self.lost_chunks]

    def joining_now(self, now: float, stall_seconds: int) -> bool:
        """A join of exactly the chunks stored now is running (and not presumed lost)."""
        return (self.join_started_at is not None and now - self.join_started_at < stall_seconds
                and self.joining_chunks == self.chunk_count)

    def join_pending(self, now: float, stall_seconds: int) -> bool:
        """A join is queued or running, and not so long ago that it must have been lost."""
        moments = [t for t in (self.join_requested_at, self.join_urgent_at, self.join_started_at)
                   if t is not None]
        return any(now - t < stall_seconds for t in moments)

    def status(self, now: float, stall_seconds: int) -> str:
        if not self.stored_chunk_indices():
            return "empty"
        if self.compiled_chunks == self.chunk_count:
            return "ready"
        if self.failed_chunks == self.chunk_count:
            return "failed"
        if self.join_pending(now, stall_seconds):
            return "processing"
        return "recording"


class ConditionFailed(Exception):
    """The record is missing, or not in the state the write required."""


def _plain(value: Any) -> Any:
    """DynamoDB numbers arrive as Decimal; the rest of the code wants int and float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def _dynamo(value: Any) -> Any:
    """The reverse of _plain: DynamoDB refuses Python floats."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    return value


def _video(item: dict) -> Video:
    item = _plain(item)
    return Video(
        video_id=item["video_id"], token_hash=item["token_hash"],
        chunk_count=item["chunk_count"], byte_count=item["byte_count"],
        created_at=item["created_at"], updated_at=item["updated_at"],
        lost_chunks=frozenset(item.get("lost_chunks", ())),
        join_requested_at=item.get("join_requested_at"),
        join_urgent_at=item.get("join_urgent_at"),
        join_started_at=item.get("join_started_at"),
        joining_chunks=item.get("joining_chunks"),
        compiled_chunks=item.get("compiled_chunks"), compiled_key=item.get("compiled_key"),
        poster_key=item.get("poster_key"), media=item.get("media", {}),
        failed_chunks=item.get("failed_chunks"), error=item.get("error"),
        segment_count=item.get("segment_count", 0), segmented_bytes=item.get("segmented_bytes", 0),
        segments_off=item.get("segments_off"),
    )


def _is_condition_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class Catalog:
    def __init__(self, table=None):
        self._table = table

    @property
    def table(self):
        return self._table or aws.videos_table()

    def _update(self, video_id: int, condition=None, **kwargs) -> dict:
        if condition is not None:
            kwargs["ConditionExpression"] = condition
        try:
            return self.table.update_item(Key={"video_id": video_id}, **kwargs)
        except ClientError as error:
            if _is_condition_failure(error):
                raise ConditionFailed(video_id) from error
            raise

    def create(self, token_hash: str) -> Video:
        counter = self.table.update_item(
            Key={"video_id": COUNTER_ID}, UpdateExpression="ADD last_id :one",
            ExpressionAttributeValues={":one": 1}, ReturnValues="UPDATED_NEW")
        video_id = int(counter["Attributes"]["last_id"])
        now = _dynamo(time.time())
        item = {"video_id": video_id, "token_hash": token_hash, "chunk_count": 0,
                "byte_count": 0, "created_at": now, "updated_at": now}
        self.table.put_item(Item=item, ConditionExpression=Attr("video_id").not_exists())
        return _video(item)

    def get(self, video_id: int) -> Video | None:
        item = self.table.get_item(Key={"video_id": video_id}, ConsistentRead=True).get("Item")
        if item is None or video_id == COUNTER_ID:
            return None
        return _video(item)

    def claim_chunk(self, video_id: int, size: int, token_hash: str | None,
                    now: float) -> tuple[int, float | None]:
        """Reserve the next chunk index, count its bytes and note that a join is wanted.

        Returns the index and when a join was already requested (None if none was).
        Raises ConditionFailed when the video does not exist or the token hash differs.
        """
        condition = Attr("video_id").exists() & Attr("chunk_count").exists()
        if token_hash is not None:
            condition = condition & Attr("token_hash").eq(token_hash)
        result = self._update(
            video_id, condition,
            UpdateExpression=("SET chunk_count = chunk_count + :one, byte_count = byte_count + :size, "
                              "updated_at = :now, "
                              "join_requested_at = if_not_exists(join_requested_at, :now)"),
            ExpressionAttributeValues={":one": 1, ":size": size, ":now": _dynamo(now)},
            # The whole old item (under 1 KB): UPDATED_OLD may leave out an attribute that
            # if_not_exists did not change, which is exactly the one this needs.
            ReturnValues="ALL_OLD")
        old = _plain(result["Attributes"])
        return old["chunk_count"], old.get("join_requested_at")

    def release_chunk(self, video_id: int, index: int, size: int) -> None:
        """Mark a claimed index as never stored (its upload failed), so joins skip it."""
        self._update(video_id, UpdateExpression="ADD lost_chunks :index, byte_count :minus",
                     ExpressionAttributeValues={":index": {index}, ":minus": -size})

    def request_join(self, video_id: int, now: float, stall_seconds: int,
                     urgent: bool = False) -> bool:
        """Note that a join is wanted; False if one of that kind is already pending and not
        stalled. At most one join of each kind is pending per video."""
        attribute = "join_urgent_at" if urgent else "join_requested_at"
        try:
            self._update(
                video_id,
                Attr(attribute).not_exists() | Attr(attribute).lt(_dynamo(now - stall_seconds)),
                UpdateExpression=f"SET {attribute} = :now",
                ExpressionAttributeValues={":now": _dynamo(now)})
        except ConditionFailed:
            return False
        return True

    def renew_join_request(self, video_id: int, now: float) -> None:
        """A waiting join put itself back on the queue: it is still pending, not stalled."""
        self._update(video_id, UpdateExpression="SET join_requested_at = :now",
                     ExpressionAttributeValues={":now": _dynamo(now)})

    def start_join(self, video_id: int, now: float) -> Video:
        """Take the pending request: appends from now on ask for another join."""
        result = self._update(
            video_id, Attr("video_id").exists(),
            UpdateExpression=("SET join_started_at = :now, joining_chunks = chunk_count "
                              "REMOVE join_requested_at, join_urgent_at"),
            ExpressionAttributeValues={":now": _dynamo(now)}, ReturnValues="ALL_NEW")
        return _video(result["Attributes"])

    def finish_join(self, video_id: int, chunk_count: int, compiled_key: str,
                    poster_key: str | None, media: dict) -> str | None:
        """Record a compiled object unless a newer one is recorded already.

        Returns the key of the compiled object this one replaces, for deletion.
        Raises ConditionFailed when a join of more chunks finished first.
        """
        names = {"#media": "media", "#error": "error"}
        values = {":n": chunk_count, ":key": compiled_key, ":media": _dynamo(media)}
        expression = "SET compiled_chunks = :n, compiled_key = :key, #media = :media"
        if poster_key is not None:
            expression += ", poster_key = :poster"
            values[":poster"] = poster_key
        expression += " REMOVE join_started_at, joining_chunks, failed_chunks, #error"
        if poster_key is None:
            expression += ", poster_key"
        result = self._update(
            video_id, Attr("compiled_chunks").not_exists() | Attr("compiled_chunks").lt(chunk_count),
            UpdateExpression=expression, ExpressionAttributeNames=names,
            ExpressionAttributeValues=values, ReturnValues="UPDATED_OLD")
        return result.get("Attributes", {}).get("compiled_key")

    def fail_join(self, video_id: int, chunk_count: int, reason: str) -> None:
        self._update(
            video_id, Attr("compiled_chunks").not_exists() | Attr("compiled_chunks").lt(chunk_count),
            UpdateExpression=("SET failed_chunks = :n, #error = :reason "
                              "REMOVE join_started_at, joining_chunks"),
            ExpressionAttributeNames={"#error": "error"},
            ExpressionAttributeValues={":n": chunk_count, ":reason": reason})

    def commit_segment(self, video_id: int, segment_count: int, segmented_bytes: int) -> None:
        """Count one more folded segment. Raises ConditionFailed when another job committed
        that segment first, or the video was found unfoldable."""
        previous = segment_count - 1
        counted = Attr("segment_count").eq(previous)
        if previous == 0:
            counted = counted | Attr("segment_count").not_exists()
        self._update(video_id, counted & Attr("segments_off").not_exists(),
                     UpdateExpression="SET segment_count = :n, segmented_bytes = :bytes",
                     ExpressionAttributeValues={":n": segment_count, ":bytes": segmented_bytes})

    def stop_segments(self, video_id: int, reason: str) -> None:
        self._update(video_id, UpdateExpression="SET segments_off = :reason",
                     ExpressionAttributeValues={":reason": reason})

    def end_join(self, video_id: int) -> None:
        """A join that stopped without a result (it will be retried)."""
        self._update(video_id, UpdateExpression="REMOVE join_started_at, joining_chunks")
