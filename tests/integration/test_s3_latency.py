"""bench.s3_latency, the benchmark's S3 latency model: a proxy in front of the emulator
that forwards S3 requests unchanged and holds each answer for its modelled time. Checked
by the proxy's own accounting (requests, bytes, copied bytes, the model's seconds), never
by a wall-time threshold."""
import boto3
import pytest
from botocore.config import Config

from bench.s3_latency import LatencyModel, LatencyProxy, operation_of
from devtools.emulator import Emulator

MODEL = LatencyModel(first_byte_s=0.02, connection_mb_s=50.0, copy_mb_s=10.0, complete_s=0.03)
PART = 5 * 1024 * 1024


@pytest.fixture
def proxied():
    with Emulator() as emulator, LatencyProxy(emulator.url, MODEL) as proxy:
        client = boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1",
                              aws_access_key_id="emulator", aws_secret_access_key="emulator",
                              config=Config(s3={"addressing_style": "path"}))
        client.create_bucket(Bucket="latency")
        proxy.reset()
        yield proxy, client


def test_a_put_and_a_get_are_forwarded_and_held_for_their_modelled_time(proxied):
    proxy, client = proxied
    body = bytes(range(256)) * 4096  # 1 MiB
    client.put_object(Bucket="latency", Key="k", Body=body)
    assert client.get_object(Bucket="latency", Key="k")["Body"].read() == body
    stats = proxy.stats()
    put, get = stats["PutObject"], stats["GetObject"]
    assert (put.requests, get.requests) == (1, 1)
    assert put.request_bytes >= len(body) and get.response_bytes == len(body)
    assert get.modelled_s == pytest.approx(MODEL.seconds("GetObject", get.request_bytes, len(body)))
    assert get.modelled_s == pytest.approx(0.02 + len(body) / 50e6)
    # Held at least the model's time (a lower bound the proxy's sleep guarantees).
    assert put.held_s >= put.modelled_s and get.held_s >= get.modelled_s


def test_a_part_copy_is_counted_by_its_source_s_size_and_the_completion_by_its_latency(proxied):
    proxy, client = proxied
    client.put_object(Bucket="latency", Key="segment", Body=b"s" * PART)
    proxy.reset()
    upload = client.create_multipart_upload(Bucket="latency", Key="out")["UploadId"]
    common = {"Bucket": "latency", "Key": "out", "UploadId": upload}
    first = client.upload_part(PartNumber=1, Body=b"h" * PART, **common)["ETag"]
    copied = client.upload_part_copy(PartNumber=2, CopySource={"Bucket": "latency", "Key": "segment"},
                                     **common)["CopyPartResult"]["ETag"]
    client.complete_multipart_upload(MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": copied}]}, **common)
    stats = proxy.stats()
    copy = stats["UploadPartCopy"]
    assert copy.requests == 1 and copy.copied_bytes == PART  # from a HEAD of the source
    assert copy.modelled_s == pytest.approx(
        MODEL.seconds("UploadPartCopy", copy.request_bytes, copy.response_bytes, PART))
    assert copy.modelled_s >= 0.02 + PART / 10e6
    complete = stats["CompleteMultipartUpload"]
    assert complete.requests == 1 and complete.modelled_s >= 0.02 + 0.03
    assert stats["UploadPart"].request_bytes >= PART
    assert set(stats) == {"CreateMultipartUpload", "UploadPart", "UploadPartCopy",
                          "CompleteMultipartUpload"}  # the proxy's own HEAD is not counted
    assert client.head_object(Bucket="latency", Key="out")["ContentLength"] == 2 * PART


def test_operations_are_told_apart_by_method_query_and_copy_header():
    copy = {"x-amz-copy-source": "b/segment"}
    assert operation_of("PUT", "/b/k?partNumber=2&uploadId=u", copy) == "UploadPartCopy"
    assert operation_of("PUT", "/b/k?partNumber=2&uploadId=u", {}) == "UploadPart"
    assert operation_of("PUT", "/b/k", copy) == "CopyObject"
    assert operation_of("PUT", "/b/k", {}) == "PutObject"
    assert operation_of("POST", "/b/k?uploads", {}) == "CreateMultipartUpload"
    assert operation_of("POST", "/b/k?uploadId=u", {}) == "CompleteMultipartUpload"
    assert operation_of("GET", "/b/k", {}) == "GetObject"
    assert operation_of("GET", "/b?list-type=2&prefix=p", {}) == "ListObjects"
