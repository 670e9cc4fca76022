"""The object store on S3: chunks, segments and compiled videos as objects, laid out as
`chalicelib.adapters.keys` says; compiled objects composed by multipart uploads.

What a video is made from (chunks, segments, the fold's state) is written with the tag
SOURCE_TAG. Those objects are removed when the video is ready, or by the expiry sweep when
it is abandoned; the deployment's bucket lifecycle rule also expires objects with this tag
after some weeks, so none outlives a sweep that failed or a record whose time-to-live ran
out first."""
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.adapters.keys import (
    chunk_key,
    compiled_key,
    download_name,
    draft_key,
    extension_key,
    fold_state_key,
    piece_key,
    rendition_key,
    segment_key,
    source_prefixes,
    video_prefix,
    work_prefix,
)
from chalicelib.errors import ChunkMissing, StorageUnavailable, UploadGone
from chalicelib.transfers import TransferCounter, carried

_SERVICE = "S3"
SOURCE_TAG = ("lifecycle", "source")
_SOURCE_TAGGING = "=".join(SOURCE_TAG)
_NOT_FOUND = ("NoSuchKey", "404", "NotFound")
# Parts of 8 MiB, 4 at a time: about 32 MiB of buffers at most, whatever the video's
# length, and far from the 10,000-part cap (an 80 GB video); S3 needs 5 MiB per part.
_UPLOAD = TransferConfig(multipart_threshold=8 * 1024 * 1024,
                         multipart_chunksize=8 * 1024 * 1024,
                         max_concurrency=4)
# Parts of a composed object sent or copied at once: copies take no bandwidth of ours, and
# each waits on S3 (a first byte, then its copy) most of its time. A 60-minute recording
# has about 220 segments to copy once it is over. (chalicelib.aws sizes the connection
# pool for this.)
COMPOSE_CONCURRENCY = 32
# Parts sent (not copied) held in memory at once by a composition: one who makes parts
# faster than S3 takes them (a rendition streamed from its pieces) waits at send(), instead
# of holding the whole object in memory. Eight 8 MiB parts: 64 MiB.
SENDS_IN_FLIGHT = 8


class S3Store:
    def __init__(self, client, bucket: str, presigned_url_seconds: int):
        self.client = client
        self.bucket = bucket
        self.presigned_url_seconds = presigned_url_seconds
        self.transfers = TransferCounter()  # what this store moved (chalicelib.transfers)

    def put_chunk(self, video_id: int, index: int, body: bytes) -> None:
        self._put_source(chunk_key(video_id, index), body)

    def read_chunk(self, video_id: int, index: int, first_byte: int = 0,
                   max_bytes: int | None = None) -> bytes:
        with aws.service_errors(_SERVICE):
            try:
                return self._ranged(chunk_key(video_id, index), first_byte, max_bytes)
            except ClientError as error:
                if aws.error_code(error) in _NOT_FOUND:
                    raise ChunkMissing(index) from error
                raise

    def piece_upload_url(self, video_id: int, piece_id: str, expires_in: int) -> str:
        with aws.service_errors(_SERVICE):
            return self.client.generate_presigned_url(
                "put_object", Params={"Bucket": self.bucket, "Key": piece_key(video_id, piece_id)},
                ExpiresIn=expires_in)

    def piece_size(self, video_id: int, piece_id: str) -> int | None:
        with aws.service_errors(_SERVICE):
            try:
                return self.client.head_object(Bucket=self.bucket,
                                               Key=piece_key(video_id, piece_id))["ContentLength"]
            except ClientError as error:
                if aws.error_code(error) in _NOT_FOUND:
                    return None
                raise

    def commit_piece(self, video_id: int, piece_id: str, index: int) -> None:
        source = {"Bucket": self.bucket, "Key": piece_key(video_id, piece_id)}
        with aws.service_errors(_SERVICE):
            try:
                # A managed copy: one CopyObject, or UploadPartCopy parts above 8 MiB (a
                # single CopyObject stops at 5 GB); no byte passes through here. Its
                # progress callback reports the bytes S3 copied, from its own threads.
                copied: list[int] = []
                self.client.copy(source, self.bucket, chunk_key(video_id, index), Config=_UPLOAD,
                                 ExtraArgs={"Tagging": _SOURCE_TAGGING, "TaggingDirective": "REPLACE"},
                                 Callback=copied.append)
            except ClientError as error:
                if aws.error_code(error) in _NOT_FOUND:
                    return  # moved by an earlier attempt of this commit
                raise
            self.transfers.count(copied_in_s3=sum(copied))
            self.client.delete_object(**source)

    def delete_piece(self, video_id: int, piece_id: str) -> None:
        self.delete(piece_key(video_id, piece_id))

    def put_segment(self, video_id: int, number: int, body: bytes) -> None:
        self._put_source(segment_key(video_id, number), body)

    def read_segment(self, video_id: int, number: int, first_byte: int = 0,
                     extended_to: int | None = None) -> bytes:
        with aws.service_errors(_SERVICE):
            return self._get(segment_key(video_id, number, extended_to), first_byte)

    def extend_segment(self, video_id: int, number: int, size: int, extended_to: int,
                       body: bytes) -> None:
        # A source object like the segment (tagged so), composed as any compiled object is.
        with aws.service_errors(_SERVICE):
            extension = S3Composition(self.client, self.bucket,
                                      segment_key(video_id, number, extended_to),
                                      "application/octet-stream", self.transfers,
                                      tagging=_SOURCE_TAGGING)
        extension.copy_segment(1, video_id, number, size)
        extension.send(2, body)
        extension.complete()

    def delete_extended_segment(self, video_id: int, number: int, extended_to: int) -> None:
        self.delete(segment_key(video_id, number, extended_to))

    def put_extension(self, video_id: int, segment_count: int, state: bytes) -> None:
        self._put_source(extension_key(video_id, segment_count), state, "application/json")

    def read_extension(self, video_id: int, segment_count: int) -> bytes | None:
        with aws.service_errors(_SERVICE):
            try:
                return self._get(extension_key(video_id, segment_count))
            except ClientError as error:
                if aws.error_code(error) in _NOT_FOUND:
                    return None
                raise

    def put_fold_state(self, video_id: int, segment_count: int, state: bytes) -> None:
        self._put_source(fold_state_key(video_id, segment_count), state, "application/json")

    def read_fold_state(self, video_id: int, segment_count: int) -> bytes:
        with aws.service_errors(_SERVICE):
            return self._get(fold_state_key(video_id, segment_count))

    def compiled_key(self, video_id: int, chunk_count: int, extension: str) -> str:
        return compiled_key(video_id, chunk_count, extension)

    def upload_file(self, path: str, key: str, content_type: str) -> None:
        size = os.path.getsize(path)
        with aws.service_errors(_SERVICE):
            self.client.upload_file(path, self.bucket, key, Config=_UPLOAD, ExtraArgs={
                "ContentType": content_type,
                # Played in the page (a <video> element or a new tab), not downloaded.
                "ContentDisposition": "inline",
            })
        # Counted here, in the caller's thread (and scope), not in the transfer's threads.
        self.transfers.count(written=size)

    def start_composition(self, key: str, content_type: str) -> "S3Composition":
        with aws.service_errors(_SERVICE):
            return S3Composition(self.client, self.bucket, key, content_type, self.transfers)

    def resume_composition(self, key: str, upload_id: str,
                           list_parts: bool = False) -> "S3Composition | None":
        parts: dict[int, str] = {}
        if list_parts:
            with aws.service_errors(_SERVICE):
                try:
                    for page in self.client.get_paginator("list_parts").paginate(
                            Bucket=self.bucket, Key=key, UploadId=upload_id):
                        parts.update((p["PartNumber"], p["ETag"]) for p in page.get("Parts", []))
                except ClientError as error:
                    if aws.error_code(error) == "NoSuchUpload":
                        return None
                    raise
        return S3Composition(self.client, self.bucket, key, None, self.transfers,
                             upload_id=upload_id, parts=parts)

    def draft_key(self, video_id: int, segment_count: int, extension: str) -> str:
        return draft_key(video_id, segment_count, extension)

    def delete(self, key: str) -> None:
        with aws.service_errors(_SERVICE):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def delete_video(self, video_id: int) -> None:
        prefix = video_prefix(video_id)
        with aws.service_errors(_SERVICE):
            uploads = self.client.get_paginator("list_multipart_uploads")
            for page in uploads.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
        self._delete_under(prefix)

    def delete_sources(self, video_id: int) -> None:
        for prefix in source_prefixes(video_id):
            self._delete_under(prefix)

    def _delete_under(self, prefix: str) -> None:
        with aws.service_errors(_SERVICE):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:  # a page holds at most 1,000 keys, as DeleteObjects takes
                    answer = self.client.delete_objects(Bucket=self.bucket,
                                                        Delete={"Objects": keys, "Quiet": True})
                    # A refused key comes back in a 200 answer, not as an exception: a
                    # delete that left objects behind must fail like any other.
                    if answer.get("Errors"):
                        codes = sorted({error.get("Code", "?") for error in answer["Errors"]})
                        raise StorageUnavailable(f"{_SERVICE} kept {len(answer['Errors'])} of "
                                                 f"{len(keys)} objects ({', '.join(codes)}); retry")

    def rendition_key(self, video_id: int, chunk_count: int) -> str:
        return rendition_key(video_id, chunk_count)

    def download_file(self, key: str, path: str) -> None:
        with aws.service_errors(_SERVICE):
            self.client.download_file(self.bucket, key, path, Config=_UPLOAD)
        self.transfers.count(read=os.path.getsize(path))

    def read(self, key: str, first_byte: int, max_bytes: int) -> bytes:
        with aws.service_errors(_SERVICE):
            return self._ranged(key, first_byte, max_bytes)

    def work_key(self, video_id: int, job: str, chunk_count: int, name: str) -> str:
        return work_prefix(video_id, job, chunk_count) + name

    def work_files(self, video_id: int, job: str, chunk_count: int) -> set[str]:
        prefix = work_prefix(video_id, job, chunk_count)
        with aws.service_errors(_SERVICE):
            return {item["Key"][len(prefix):]
                    for page in self.client.get_paginator("list_objects_v2").paginate(
                        Bucket=self.bucket, Prefix=prefix)
                    for item in page.get("Contents", [])}

    def delete_work(self, video_id: int, job: str, chunk_count: int) -> None:
        self._delete_under(work_prefix(video_id, job, chunk_count))

    def presigned_get(self, key: str, download: bool = False) -> str:
        # Signed on each request: a URL dies with the temporary credentials that signed it.
        params = {"Bucket": self.bucket, "Key": key}
        if download:  # a browser ignores <a download> across origins; S3 says it instead
            params["ResponseContentDisposition"] = f'attachment; filename="{download_name(key)}"'
        with aws.service_errors(_SERVICE):
            return self.client.generate_presigned_url("get_object", Params=params,
                                                      ExpiresIn=self.presigned_url_seconds)

    def _put_source(self, key: str, body: bytes,
                    content_type: str = "application/octet-stream") -> None:
        with aws.service_errors(_SERVICE):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                                   Tagging=_SOURCE_TAGGING)
        self.transfers.count(written=len(body))

    def _ranged(self, key: str, first_byte: int, max_bytes: int | None) -> bytes:
        """_get, b"" when first_byte is at or past the end."""
        try:
            return self._get(key, first_byte, max_bytes)
        except ClientError as error:
            if aws.error_code(error) == "InvalidRange":
                return b""
            raise

    def _get(self, key: str, first_byte: int = 0, max_bytes: int | None = None) -> bytes:
        extra = {}
        if max_bytes is not None:
            extra["Range"] = f"bytes={first_byte}-{first_byte + max_bytes - 1}"
        elif first_byte:
            extra["Range"] = f"bytes={first_byte}-"
        body = self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()
        self.transfers.count(read=len(body))
        return body


class S3Composition:
    """A multipart upload. Each part is sent, or copied by S3 from a segment
    (UploadPartCopy), in the background as soon as it is known; complete() waits for them.
    A part counts in `transfers` once S3 has it: sent bytes as written, copied ones as
    copied in S3. One started earlier (a draft the fold keeps while recording) is resumed
    with its upload_id and the parts S3 holds already."""

    def __init__(self, client, bucket: str, key: str, content_type: str | None,
                 transfers: TransferCounter, tagging: str | None = None,
                 upload_id: str | None = None, parts: dict[int, str] | None = None):
        self._client = client
        self._transfers = transfers
        self.key = key
        if upload_id is None:
            extra = {"Tagging": tagging} if tagging else {"ContentDisposition": "inline"}
            upload_id = client.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=content_type, **extra)["UploadId"]
        self.upload_id = upload_id
        self._bucket = bucket
        self._common = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
        self._pool: ThreadPoolExecutor | None = None
        self._parts: dict[int, Future] = {}
        self._held = dict(parts or {})  # part number -> ETag, for parts S3 holds already
        self._room = threading.Semaphore(SENDS_IN_FLIGHT)

    @property
    def held(self) -> set[int]:
        """The part numbers S3 holds already, from before this composition was resumed."""
        return set(self._held)

    def _submit(self, number: int, part) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=COMPOSE_CONCURRENCY)
        self._held.pop(number, None)
        self._parts[number] = self._pool.submit(carried(part))

    def send(self, number: int, body: bytes) -> None:
        """Blocks while SENDS_IN_FLIGHT parts are being sent."""
        def upload() -> str:
            try:
                etag = self._client.upload_part(PartNumber=number, Body=body, **self._common)["ETag"]
            finally:
                self._room.release()
            self._transfers.count(written=len(body))
            return etag
        self._room.acquire()
        self._submit(number, upload)

    def copy_segment(self, number: int, video_id: int, segment: int, size: int,
                     extended_to: int | None = None) -> None:
        source = {"Bucket": self._bucket, "Key": segment_key(video_id, segment, extended_to)}

        def copy() -> str:
            etag = self._client.upload_part_copy(PartNumber=number, CopySource=source,
                                                 **self._common)["CopyPartResult"]["ETag"]
            # S3's answer does not say how much it copied; the caller's fold state does.
            self._transfers.count(copied_in_s3=size)
            return etag
        self._submit(number, copy)

    def wait(self) -> None:
        """Wait for the parts sent or copied so far, leaving the upload open. UploadGone
        when it was completed or aborted meanwhile."""
        try:
            with aws.service_errors(_SERVICE):
                try:
                    for number, part in list(self._parts.items()):
                        self._held[number] = part.result()
                except ClientError as error:
                    if aws.error_code(error) == "NoSuchUpload":
                        raise UploadGone(self.key) from error
                    raise
        finally:
            self._parts.clear()
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
            self._room = threading.Semaphore(SENDS_IN_FLIGHT)  # cancelled sends never released theirs

    def complete(self) -> None:
        try:
            with aws.service_errors(_SERVICE):
                etags = dict(self._held)
                etags.update((n, part.result()) for n, part in self._parts.items())
                parts = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
                self._client.complete_multipart_upload(MultipartUpload={"Parts": parts},
                                                       **self._common)
        except BaseException:
            self.abort()
            raise
        finally:
            if self._pool is not None:
                self._pool.shutdown()

    def abort(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        try:
            self._client.abort_multipart_upload(**self._common)
        except (BotoCoreError, ClientError):
            # Completed or aborted already, or S3 is out of reach: the error that led here
            # is the one to report. The parts of an upload left behind stay until a
            # lifecycle rule (AbortIncompleteMultipartUpload) removes them.
            pass

