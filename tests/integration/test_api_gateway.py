"""Binary chunks as API Gateway delivers them to Lambda.

On AWS a body reaches the function intact only when its Content-Type is one of the API's
binary media types: then it arrives base64-encoded with isBase64Encoded=true. Otherwise it
arrives as text and binary data is corrupted. chalice local and the test client pass bytes
through regardless, so these tests build the events API Gateway sends and check the list
chalice deploys."""
import base64
import json

import pytest
from chalice.deploy.swagger import SwaggerGenerator

import app as app_module
from chalicelib import aws
from chalicelib.uploads import CHUNK_CONTENT_TYPES
from tests.conftest import fixture_chunks

RAW_CHUNK_TYPES = [t for t in CHUNK_CONTENT_TYPES if t not in ("application/json", "multipart/form-data")]


def gateway_event(method: str, resource: str, path_parameters: dict, headers: dict,
                  body: bytes | None = None) -> dict:
    path = resource
    for name, value in path_parameters.items():
        path = path.replace("{" + name + "}", str(value))
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters or None, "stageVariables": None,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "stage": "api",
                           "path": "/api" + path, "requestId": "test", "identity": {}},
        "body": base64.b64encode(body).decode("ascii") if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def invoke(event: dict) -> dict:
    from chalice.local import LambdaContext
    return app_module.app(event, LambdaContext("api_handler", memory_size=512))


@pytest.fixture
def video(aws):
    app_module.services.cache_clear()
    response = invoke(gateway_event("POST", "/create_video", {}, {}))
    assert response["statusCode"] == 201
    created = json.loads(response["body"])
    yield created["video_id"], created["upload_token"]
    app_module.services.cache_clear()


def stored_chunk(video_id: int, index: int) -> bytes:
    return aws.s3().get_object(Bucket=app_module.get_settings().bucket_name,
                               Key=f"videos/{video_id}/chunks/{index:06d}.chunk")["Body"].read()


@pytest.mark.parametrize("content_type", RAW_CHUNK_TYPES)
def test_a_base64_encoded_raw_chunk_is_stored_intact(video, content_type):
    video_id, token = video
    chunk = fixture_chunks()[0]
    response = invoke(gateway_event("POST", "/append_video/{video_id}", {"video_id": str(video_id)},
                                    {"Content-Type": content_type,
                                     "Authorization": f"Bearer {token}"}, chunk))
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["message"] == "Video added successfully"
    assert stored_chunk(video_id, 0) == chunk


def test_a_base64_encoded_multipart_chunk_is_stored_intact(video):
    import requests
    video_id, token = video
    chunk = fixture_chunks()[2]
    form = requests.Request("POST", "http://x", files={"chunk": ("blob", chunk, "video/webm")}).prepare()
    response = invoke(gateway_event("POST", "/append_video/{video_id}", {"video_id": str(video_id)},
                                    {"Content-Type": form.headers["Content-Type"],
                                     "Authorization": f"Bearer {token}"}, form.body))
    assert response["statusCode"] == 200, response["body"]
    assert stored_chunk(video_id, 0) == chunk


@pytest.mark.parametrize("content_type", RAW_CHUNK_TYPES + ["multipart/form-data"])
def test_every_accepted_chunk_type_is_deployed_as_a_binary_media_type(content_type):
    deployed = {"api_handler_arn": "arn:aws:lambda:us-east-1:123456789012:function:api",
                "api_handler_name": "api"}
    swagger = SwaggerGenerator("us-east-1", deployed).generate_swagger(app_module.app)
    assert content_type in swagger["x-amazon-apigateway-binary-media-types"]


def test_json_responses_stay_text_for_clients_without_an_accept_header(video):
    video_id, token = video
    response = invoke(gateway_event("GET", "/videos/{video_id}", {"video_id": str(video_id)},
                                    {"Authorization": f"Bearer {token}"}))
    assert response["statusCode"] == 200
    assert not response.get("isBase64Encoded")
    assert json.loads(response["body"])["status"] == "empty"


@pytest.mark.parametrize("headers", [{"Content-Type": "application/json"}, {}],
                         ids=["application/json", "no Content-Type"])
def test_a_chunk_api_gateway_delivered_as_text_is_refused_and_nothing_stored(video, headers):
    video_id, token = video
    chunk = fixture_chunks()[0]
    event = gateway_event("POST", "/append_video/{video_id}", {"video_id": str(video_id)},
                          {**headers, "Authorization": f"Bearer {token}"})
    # Not a binary media type: API Gateway passes the body on as text, damaged.
    event["body"], event["isBase64Encoded"] = chunk.decode("utf-8", errors="replace"), False
    response = invoke(event)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["Code"] == "InvalidUpload"
    assert "arrived as text" in json.loads(response["body"])["Message"]
    listing = aws.s3().list_objects_v2(Bucket=app_module.get_settings().bucket_name,
                                       Prefix=f"videos/{video_id}/")
    assert not listing.get("Contents")
