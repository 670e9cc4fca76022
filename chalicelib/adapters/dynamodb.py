"""The video catalog on DynamoDB: the id counter and one item per video.

Every change is a single conditional UpdateItem, so concurrent appends and joins never
lose an update: an append claims the next chunk index atomically, a join records its result
only if no newer join has already done so. The item with video_id 0 is the id counter;
videos start at 1.

Ids come in blocks, so that creates do not all write the counter item (one item takes on
the order of 1,000 writes a second): each DynamoCatalog (one per process, one per Lambda
instance) reserves `id_block_size` ids at once with one atomic `ADD last_id :block` and hands
them out from memory. Ids stay unique positive integers from the one counter, and roughly
increasing: instances interleave their blocks, so a later video may get a lower id than an
earlier one. The counter is the highest id ever reserved. An instance that stops (recycled,
crashed, scaled in) before using up its block leaves the rest of it unused: a gap of up to
`id_block_size - 1` ids that no video will ever have. So does a reservation whose answer is
lost (the SDK retries the ADD) and, as with a block of 1, a create whose video write fails.
With a block of 1 (the `local` stage) ids count up 1, 2, 3 with no gap but those.

A video never joined carries `expires_at` (TTL_ATTRIBUTE, the table's time-to-live attribute
in the deployment template): a day after the expiry sweep would remove it, so DynamoDB drops
the record even if the sweep stops running. Its first join removes the attribute: a joined
video stays until it is deleted.
"""
import contextlib
from decimal import Decimal
from typing import Any, Callable

from boto3.dynamodb.conditions import Attr
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from chalicelib import aws
from chalicelib.adapters.id_blocks import IdBlocks
from chalicelib.errors import ConditionFailed
from chalicelib.models import MediaSummary, Rendition, RenditionState, Video

COUNTER_ID = 0
TTL_ATTRIBUTE = "expires_at"
TTL_GRACE_SECONDS = 24 * 3600
_SERVICE = "DynamoDB"


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
    media = item.get("media")
    return Video(
        video_id=item["video_id"], token_hash=item["token_hash"],
        chunk_count=item["chunk_count"], byte_count=item["byte_count"],
        created_at=item["created_at"], updated_at=item["updated_at"],
        lost_chunks=frozenset(item.get("lost_chunks", ())),
        join_requested_at=item.get("join_requested_at"),
        join_urgent_at=item.get("join_urgent_at"),
        join_started_at=item.get("join_started_at"), join_alive_at=item.get("join_alive_at"),
        joining_chunks=item.get("joining_chunks"), join_attempt=item.get("join_attempt", 0),
        compiled_chunks=item.get("compiled_chunks"), compiled_key=item.get("compiled_key"),
        poster_key=item.get("poster_key"),
        media=MediaSummary.from_dict(media) if media else None,
        failed_chunks=item.get("failed_chunks"), error=item.get("error"),
        segment_count=item.get("segment_count", 0), segmented_bytes=item.get("segmented_bytes", 0),
        segments_off=item.get("segments_off"),
        last_chunk_size=item.get("last_chunk_size"), last_chunk_digest=item.get("last_chunk_digest"),
        finalized_at=item.get("finalized_at"), playback_token_hash=item.get("playback_token_hash"),
        rendition=Rendition.from_dict(item["rendition"]) if item.get("rendition") else None,
    )


def _current(error: ClientError) -> Video | None:
    """The record a failed conditional write found (ReturnValuesOnConditionCheckFailure)."""
    item = error.response.get("Item")
    if not item:
        return None
    deserializer = TypeDeserializer()
    return _video({name: deserializer.deserialize(value) for name, value in item.items()})


def _abandoned(updated_before: float):
    return Attr("compiled_chunks").not_exists() & Attr("updated_at").lt(_dynamo(updated_before))


class DynamoCatalog:
    def __init__(self, table_of_this_thread: Callable[[], Any], expire_after_seconds: int,
                 id_block_size: int = 1):
        # A boto3 Table must not be shared between threads (chalice local serves each
        # request on its own): it is handed a getter of this thread's Table.
        self._table_of_this_thread = table_of_this_thread
        self._keep_unjoined_seconds = expire_after_seconds + TTL_GRACE_SECONDS
        self._ids = IdBlocks(id_block_size, self._reserve_ids)

    def _expires_at(self, now: float) -> int:
        return int(now) + self._keep_unjoined_seconds

    @property
    def table(self):
        return self._table_of_this_thread()

    @contextlib.contextmanager
    def _conditional(self, video_id: int):
        """A conditional write whose condition does not hold raises ConditionFailed, with the
        record as the write found it where DynamoDB returns it; any other failure of the
        service, StorageUnavailable."""
        with aws.service_errors(_SERVICE):
            try:
                yield
            except ClientError as error:
                if aws.error_code(error) == "ConditionalCheckFailedException":
                    raise ConditionFailed(video_id, _current(error)) from error
                raise

    def _update(self, video_id: int, condition=None, **kwargs) -> dict:
        """One conditional UpdateItem of an existing record: UpdateItem would otherwise create
        the item, and a join finishing after a delete would bring the video back."""
        exists = Attr("video_id").exists()
        kwargs["ConditionExpression"] = exists if condition is None else exists & condition
        with self._conditional(video_id):
            return self.table.update_item(Key={"video_id": video_id}, **kwargs)

    def _reserve_ids(self, count: int) -> int:
        """One atomic ADD on the counter item: the `count` ids up to its new value are this
        instance's alone."""
        with aws.service_errors(_SERVICE):
            counter = self.table.update_item(
                Key={"video_id": COUNTER_ID}, UpdateExpression="ADD last_id :block",
                ExpressionAttributeValues={":block": count}, ReturnValues="UPDATED_NEW")
        return int(counter["Attributes"]["last_id"])

    @property
    def last_reserved_id(self) -> int:
        """The counter: the highest id any instance reserved (0 before the first)."""
        with aws.service_errors(_SERVICE):
            item = self.table.get_item(Key={"video_id": COUNTER_ID}, ConsistentRead=True).get("Item")
        return int(item["last_id"]) if item else 0

    def create(self, token_hash: str, playback_token_hash: str, now: float) -> Video:
        video_id = self._ids.next_id()
        with aws.service_errors(_SERVICE):
            item = {"video_id": video_id, "token_hash": token_hash,
                    "playback_token_hash": playback_token_hash, "chunk_count": 0,
                    "byte_count": 0, "created_at": _dynamo(now), "updated_at": _dynamo(now),
                    TTL_ATTRIBUTE: self._expires_at(now)}
            self.table.put_item(Item=item, ConditionExpression=Attr("video_id").not_exists())
        return _video(item)

    def set_playback_token(self, video_id: int, playback_token_hash: str) -> None:
        self._update(video_id, UpdateExpression="SET playback_token_hash = :hash",
                     ExpressionAttributeValues={":hash": playback_token_hash})

    def get(self, video_id: int) -> Video | None:
        if video_id == COUNTER_ID:
            return None
        with aws.service_errors(_SERVICE):
            item = self.table.get_item(Key={"video_id": video_id}, ConsistentRead=True).get("Item")
        return None if item is None else _video(item)

    def claim_chunk(self, video_id: int, size: int, digest: str, token_hash: str | None,
                    now: float, first: int | None = None) -> Video:
        condition = Attr("finalized_at").not_exists()
        if token_hash is not None:
            condition = condition & Attr("token_hash").eq(token_hash)
        if first is not None:
            condition = condition & Attr("byte_count").eq(first)
        else:
            condition = condition & ~(Attr("last_chunk_digest").eq(digest)
                                      & Attr("last_chunk_size").eq(size))
        result = self._update(
            video_id, condition,
            UpdateExpression=("SET chunk_count = chunk_count + :one, byte_count = byte_count + :size, "
                              "updated_at = :now, last_chunk_size = :size, last_chunk_digest = :digest, "
                              f"join_requested_at = if_not_exists(join_requested_at, :now), "
                              f"{TTL_ATTRIBUTE} = :expires"),
            ExpressionAttributeValues={":one": 1, ":size": size, ":digest": digest,
                                       ":now": _dynamo(now), ":expires": self._expires_at(now)},
            # The whole old item (under 1 KB): UPDATED_OLD may leave out an attribute that
            # if_not_exists did not change, which is exactly the one this needs.
            ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        before = result["Attributes"]
        if "compiled_chunks" in before:
            self._keep_forever(video_id)  # joined before: a chunk more must not make it expire
        return _video(before)

    def _keep_forever(self, video_id: int) -> None:
        """A video joined once stays until it is deleted: no time-to-live. (An UpdateItem
        cannot set an attribute only where another exists, hence this second write, made
        only when a video that was joined takes another chunk.)"""
        try:
            self._update(video_id, UpdateExpression=f"REMOVE {TTL_ATTRIBUTE}")
        except ConditionFailed:
            pass  # deleted meanwhile

    def unclaim_chunk(self, video_id: int, before: Video, digest: str) -> bool:
        restored = {"chunk_count": before.chunk_count, "byte_count": before.byte_count,
                    "updated_at": _dynamo(before.updated_at),
                    "last_chunk_size": before.last_chunk_size,
                    "last_chunk_digest": before.last_chunk_digest,
                    "join_requested_at": _dynamo(before.join_requested_at)}
        kept = {name: value for name, value in restored.items() if value is not None}
        expression = "SET " + ", ".join(f"{name} = :{name}" for name in kept)
        removed = [name for name, value in restored.items() if value is None]
        if removed:
            expression += " REMOVE " + ", ".join(removed)
        unchanged = (Attr("chunk_count").eq(before.chunk_count + 1)
                     & Attr("last_chunk_digest").eq(digest))
        try:
            self._update(video_id, unchanged, UpdateExpression=expression,
                         ExpressionAttributeValues={f":{name}": value for name, value in kept.items()})
        except ConditionFailed:
            return False
        return True

    def finalize(self, video_id: int, now: float) -> Video:
        result = self._update(video_id, UpdateExpression="SET finalized_at = if_not_exists(finalized_at, :now)",
                              ExpressionAttributeValues={":now": _dynamo(now)}, ReturnValues="ALL_NEW")
        return _video(result["Attributes"])

    def release_chunk(self, video_id: int, index: int, size: int) -> None:
        self._update(video_id, UpdateExpression="ADD lost_chunks :index, byte_count :minus",
                     ExpressionAttributeValues={":index": {index}, ":minus": -size})

    def request_join(self, video_id: int, now: float, stall_seconds: int,
                     urgent: bool = False) -> bool:
        attribute = "join_urgent_at" if urgent else "join_requested_at"
        try:
            self._update(
                video_id,
                Attr(attribute).not_exists() | Attr(attribute).lte(_dynamo(now - stall_seconds)),
                UpdateExpression=f"SET {attribute} = :now",
                ExpressionAttributeValues={":now": _dynamo(now)})
        except ConditionFailed:
            return False
        return True

    def renew_join_request(self, video_id: int, now: float) -> None:
        self._update(video_id, UpdateExpression="SET join_requested_at = :now",
                     ExpressionAttributeValues={":now": _dynamo(now)})

    def start_join(self, video_id: int, now: float, attempt: int = 1) -> Video:
        result = self._update(
            video_id,
            UpdateExpression=("SET join_started_at = :now, join_alive_at = :now, "
                              "joining_chunks = chunk_count, join_attempt = :attempt "
                              "REMOVE join_requested_at, join_urgent_at"),
            ExpressionAttributeValues={":now": _dynamo(now), ":attempt": attempt}, ReturnValues="ALL_NEW")
        return _video(result["Attributes"])

    def renew_join_lease(self, video_id: int, started_at: float, now: float) -> bool:
        try:
            self._update(video_id, Attr("join_started_at").eq(_dynamo(started_at)),
                         UpdateExpression="SET join_alive_at = :now",
                         ExpressionAttributeValues={":now": _dynamo(now)})
        except ConditionFailed:
            return False
        return True

    def finish_join(self, video_id: int, chunk_count: int, compiled_key: str,
                    poster_key: str | None, media: MediaSummary) -> list[str]:
        names = {"#media": "media", "#error": "error"}
        values = {":n": chunk_count, ":key": compiled_key, ":media": _dynamo(media.as_dict())}
        expression = "SET compiled_chunks = :n, compiled_key = :key, #media = :media"
        if poster_key is not None:
            expression += ", poster_key = :poster"
            values[":poster"] = poster_key
        # The rendition was of the older object: forgotten, and its object replaced.
        expression += (" REMOVE join_started_at, join_alive_at, joining_chunks, failed_chunks, #error, "
                       "rendition, " + TTL_ATTRIBUTE)
        if poster_key is None:
            expression += ", poster_key"
        result = self._update(
            video_id, Attr("compiled_chunks").not_exists() | Attr("compiled_chunks").lt(chunk_count),
            UpdateExpression=expression, ExpressionAttributeNames=names,
            ExpressionAttributeValues=values, ReturnValues="UPDATED_OLD")
        old = result.get("Attributes", {})
        old_keys = [old.get(name) for name in ("compiled_key", "poster_key")]
        old_keys.append((old.get("rendition") or {}).get("key"))
        return [key for key in old_keys if key and key not in (compiled_key, poster_key)]

    def request_rendition(self, video_id: int, chunk_count: int, now: float,
                          stall_seconds: int) -> bool:
        stalled = (Attr("rendition.chunks").eq(chunk_count)
                   & Attr("rendition.state").eq(RenditionState.PENDING.value)
                   & Attr("rendition.requested_at").lte(_dynamo(now - stall_seconds)))
        wanted = Attr("compiled_chunks").eq(chunk_count) & (
            Attr("rendition").not_exists() | Attr("rendition.chunks").lt(chunk_count) | stalled)
        pending = Rendition(chunk_count, RenditionState.PENDING, requested_at=now)
        try:
            self._update(video_id, wanted, UpdateExpression="SET rendition = :rendition",
                         ExpressionAttributeValues={":rendition": _dynamo(pending.as_dict())})
        except ConditionFailed:
            return False
        return True

    def renew_rendition(self, video_id: int, chunk_count: int, now: float) -> bool:
        pending = (Attr("rendition.chunks").eq(chunk_count)
                   & Attr("rendition.state").eq(RenditionState.PENDING.value))
        try:
            self._update(video_id, pending, UpdateExpression="SET rendition.requested_at = :now",
                         ExpressionAttributeValues={":now": _dynamo(now)})
        except ConditionFailed:
            return False
        return True

    def finish_rendition(self, video_id: int, rendition: Rendition) -> list[str]:
        current = Attr("compiled_chunks").eq(rendition.chunks) & (
            Attr("rendition").not_exists() | Attr("rendition.chunks").lte(rendition.chunks))
        result = self._update(video_id, current, UpdateExpression="SET rendition = :rendition",
                              ExpressionAttributeValues={":rendition": _dynamo(rendition.as_dict())},
                              ReturnValues="UPDATED_OLD")
        key = (result.get("Attributes", {}).get("rendition") or {}).get("key")
        return [key] if key and key != rendition.key else []

    def fail_join(self, video_id: int, chunk_count: int, reason: str) -> None:
        self._update(
            video_id, Attr("compiled_chunks").not_exists() | Attr("compiled_chunks").lt(chunk_count),
            UpdateExpression=("SET failed_chunks = :n, #error = :reason "
                              "REMOVE join_started_at, join_alive_at, joining_chunks"),
            ExpressionAttributeNames={"#error": "error"},
            ExpressionAttributeValues={":n": chunk_count, ":reason": reason})

    def end_join(self, video_id: int) -> None:
        self._update(video_id, UpdateExpression="REMOVE join_started_at, join_alive_at, joining_chunks")

    def commit_segment(self, video_id: int, segment_count: int, segmented_bytes: int) -> None:
        previous = segment_count - 1
        counted = Attr("segment_count").eq(previous)
        if previous == 0:
            counted = counted | Attr("segment_count").not_exists()
        self._update(video_id, counted & Attr("segments_off").not_exists(),
                     UpdateExpression="SET segment_count = :n, segmented_bytes = :bytes",
                     ExpressionAttributeValues={":n": segment_count, ":bytes": segmented_bytes})

    def delete(self, video_id: int, updated_before: float | None = None) -> None:
        condition = Attr("video_id").exists()
        if updated_before is not None:
            condition = condition & _abandoned(updated_before)
        with self._conditional(video_id):
            self.table.delete_item(Key={"video_id": video_id}, ConditionExpression=condition)

    def abandoned(self, updated_before: float, limit: int = 100) -> list[int]:
        # A scan: this runs from a schedule, a few times an hour, not per request.
        found: list[int] = []
        scan = {"FilterExpression": _abandoned(updated_before) & Attr("video_id").gt(COUNTER_ID),
                "ProjectionExpression": "video_id"}
        with aws.service_errors(_SERVICE):
            while len(found) < limit:
                page = self.table.scan(**scan)
                found += [int(item["video_id"]) for item in page.get("Items", [])]
                if "LastEvaluatedKey" not in page:
                    break
                scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found)[:limit]

    def stop_segments(self, video_id: int, reason: str) -> None:
        self._update(video_id, UpdateExpression="SET segments_off = :reason",
                     ExpressionAttributeValues={":reason": reason})

