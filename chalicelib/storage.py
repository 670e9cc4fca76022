"""Object storage (S3): each chunk its own object, the compiled video and poster beside them.

videos/<id>/chunks/000000.chunk, 000001.chunk, ...   one object per appended chunk
videos/<id>/compiled/000042.webm                     the join of chunks 0..41
videos/<id>/compiled/000042.jpg                      its poster frame

A compiled object is named by the chunk count it reflects, so a join never overwrites the
object a reader is being sent to, and running a join twice for one count writes the same key.
"""
from typing import BinaryIO, Iterator

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


def chunk_key(video_id: int, index: int) -> str:
    return f"videos/{video_id}/chunks/{index:06d}.chunk"


def compiled_key(video_id: int, chunk_count: int, extension: str) -> str:
    return f"videos/{video_id}/compiled/{chunk_count:06d}.{extension}"


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
            self.client.put_object(Bucket=self.bucket, Key=chunk_key(video_id, index),
                                   Body=body, ContentType="application/octet-stream")
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

    def iter_chunk_blocks(self, video_id: int, index: int) -> Iterator[bytes]:
        body = self.open_chunk(video_id, index)
        try:
            while block := body.read(READ_BLOCK):
                yield block
        finally:
            body.close()

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
