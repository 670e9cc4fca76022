"""Object storage (S3): each chunk its own object, the compiled video and poster beside them.

videos/<id>/chunks/000000.chunk, 000001.chunk, ...   one object per appended chunk
videos/<id>/compiled/000042.webm                     the join of chunks 0..41
videos/<id>/compiled/000042.jpg                      its poster frame
videos/<id>/segments/000000.seg, 000001.seg, ...     chunks folded into >= 5 MiB pieces
videos/<id>/segments/000001.json, ...                 the fold's state after each segment

A compiled object is named by the chunk count it reflects, so a join never overwrites the
object a reader is being sent to, and running a join twice for one count writes the same key.
"""
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Callable, Iterator

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.errors import StorageUnavailable
from chalicelib.settings import get_settings

# Parts of 8 MiB, 4 at a time: about 32 MiB of buffers at most, whatever the video's
# length, and far from the 10,000-part cap (an 80 GB video); S3 needs 5 MiB per part.
_UPLOAD = TransferConfig(multipart_threshold=8 * 1024 * 1024,
                         multipart_chunksize=8 * 1024 * 1024,
                         max_concurrency=4)
READ_BLOCK = 1024 * 1024
# Chunks are fetched ahead of their reader, several at a time: S3 latency, not bandwidth,
# is what a sequential read of many small objects waits on. At most PREFETCH chunks and
# about PREFETCH_BYTES are in flight, so memory stays bounded whatever the chunk size.
PREFETCH = 8
PREFETCH_BYTES = 24 * 1024 * 1024
# Parts of a composed object sent or copied at once: copies take no bandwidth of ours.
_COMPOSE_CONCURRENCY = 8


def chunk_key(video_id: int, index: int) -> str:
    return f"videos/{video_id}/chunks/{index:06d}.chunk"


def compiled_key(video_id: int, chunk_count: int, extension: str) -> str:
    return f"videos/{video_id}/compiled/{chunk_count:06d}.{extension}"


def prefetch_in_order(indices: list[int], fetch: Callable[[int], bytes],
                      window: int = PREFETCH) -> Iterator[bytes]:
    """fetch(i) for each index, in order, with up to `window` fetches running ahead."""
    with ThreadPoolExecutor(max_workers=window) as pool:
        futures = [pool.submit(fetch, i) for i in indices[:window]]
        for position in range(len(indices)):
            ahead = position + window
            if ahead < len(indices):
                futures.append(pool.submit(fetch, indices[ahead]))
            yield futures[position].result()
            futures[position] = None  # let the bytes go


def segment_key(video_id: int, number: int) -> str:
    return f"videos/{video_id}/segments/{number:06d}.seg"


def segment_state_key(video_id: int, segment_count: int) -> str:
    return f"videos/{video_id}/segments/{segment_count:06d}.json"


class ChunkMissing(Exception):
    """A chunk the catalog counts is not in S3 yet: its append is still in flight."""

    def __init__(self, index: int):
        super().__init__(f"chunk {index} is not stored")
        self.index = index


class ObjectStore:
    def __init__(self, client=None, bucket: str | None = None):
        self._client = client
        self._bucket = bucket

    @property
    def client(self):
        return self._client or aws.s3()

    @property
    def bucket(self) -> str:
        return self._bucket or get_settings().bucket_name

    def put_chunk(self, video_id: int, index: int, body: bytes) -> None:
        try:
            self.put_object(chunk_key(video_id, index), body)
        except (BotoCoreError, ClientError) as error:
            raise StorageUnavailable(f"the chunk could not be stored: {error}") from error

    def open_chunk(self, video_id: int, index: int) -> BinaryIO:
        """A streaming body of one chunk; read it in blocks, never whole."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=chunk_key(video_id, index))
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise ChunkMissing(index) from error
            raise
        return response["Body"]

    def read_chunk(self, video_id: int, index: int) -> bytes:
        return b"".join(self.iter_chunk_blocks(video_id, index))

    def iter_chunk_blocks(self, video_id: int, index: int) -> Iterator[bytes]:
        body = self.open_chunk(video_id, index)
        try:
            while block := body.read(READ_BLOCK):
                yield block
        finally:
            body.close()

    def put_object(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def get_object(self, key: str, first_byte: int = 0) -> bytes:
        """The object's bytes from first_byte to its end."""
        extra = {"Range": f"bytes={first_byte}-"} if first_byte else {}
        return self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()

    def start_composition(self, key: str, content_type: str) -> "Composition":
        return Composition(self.client, self.bucket, key, content_type)

    def upload_file(self, path: str, key: str, content_type: str) -> None:
        self.client.upload_file(path, self.bucket, key, Config=_UPLOAD, ExtraArgs={
            "ContentType": content_type,
            # Played in the page (a <video> element or a new tab), not downloaded.
            "ContentDisposition": "inline",
        })

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def presigned_get(self, key: str) -> str:
        # Signed on each request: a URL dies with the temporary credentials that signed it.
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=get_settings().presigned_url_seconds)


class Composition:
    """One object written from parts (a multipart upload). Each part is sent, or copied by
    S3 from another object without passing through here (UploadPartCopy), in the background
    as soon as it is known, in any order; complete() waits for them. Every part but the
    last must be at least 5 MiB, S3's smallest."""

    def __init__(self, client, bucket: str, key: str, content_type: str):
        self._client = client
        self.key = key
        upload_id = client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, ContentDisposition="inline")["UploadId"]
        self._bucket = bucket
        self._common = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
        self._pool = ThreadPoolExecutor(max_workers=_COMPOSE_CONCURRENCY)
        self._parts: dict[int, Future] = {}

    def send(self, number: int, body: bytes) -> None:
        self._parts[number] = self._pool.submit(
            lambda: self._client.upload_part(PartNumber=number, Body=body, **self._common)["ETag"])

    def copy(self, number: int, source_key: str) -> None:
        source = {"Bucket": self._bucket, "Key": source_key}
        self._parts[number] = self._pool.submit(
            lambda: self._client.upload_part_copy(PartNumber=number, CopySource=source,
                                                  **self._common)["CopyPartResult"]["ETag"])

    def complete(self) -> None:
        try:
            parts = [{"PartNumber": n, "ETag": self._parts[n].result()} for n in sorted(self._parts)]
            self._client.complete_multipart_upload(MultipartUpload={"Parts": parts}, **self._common)
        except BaseException:
            self.abort()
            raise
        finally:
            self._pool.shutdown()

    def abort(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        try:
            self._client.abort_multipart_upload(**self._common)
        except (BotoCoreError, ClientError):
            # Completed or aborted already, or S3 is out of reach: the error that led here
            # is the one to report. The parts of an upload left behind stay until a
            # lifecycle rule (AbortIncompleteMultipartUpload) removes them.
            pass
