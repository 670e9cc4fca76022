"""The packaged deployment template is what the code expects: every setting a function reads
is set, the trigger is the template's queue, the layer is where FFMPEG_BINARY looks, the
timeouts line up, the roles name this stack's resources, and the table and bucket keep the
attribute and the tag the adapters write (which are checked here on moto too)."""
import json
import os

import pytest

from chalicelib import aws
from chalicelib.adapters import dynamodb, s3
from chalicelib.settings import get_settings
from tests.conftest import fixture_chunks
from tests.deployment import functions, role_of
from tests.helpers import record


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def environment(template: dict, function: str) -> dict:
    """What the function finds in its environment: SAM merges Globals into each function."""
    own = functions(template)[function]["Properties"]["Environment"]["Variables"]
    return {**template["Globals"]["Function"]["Environment"]["Variables"], **own}


@pytest.fixture
def template_environment(monkeypatch):
    """Read Settings in exactly a function's environment (references stand for their values)."""
    def apply(variables: dict):
        for name in list(os.environ):
            monkeypatch.delenv(name)
        for name, value in variables.items():
            monkeypatch.setenv(name, value if isinstance(value, str) else json.dumps(value))
        get_settings.cache_clear()
        return get_settings()
    yield apply
    get_settings.cache_clear()


@pytest.mark.parametrize("function", ["api_handler", "join_videos", "expire_abandoned"])
def test_every_function_finds_every_setting_it_reads_and_the_names_come_from_the_stack(
        packaged_template, template_environment, function):
    variables = environment(packaged_template, function)
    assert variables["BUCKET_NAME"] == {"Ref": "Bucket"}
    assert variables["TABLE_NAME"] == {"Ref": "Table"}
    assert variables["JOB_QUEUE_NAME"] == {"Fn::GetAtt": ["JoinQueue", "QueueName"]}
    settings = template_environment(variables)  # a required variable missing raises here
    assert settings.s3_endpoint_url is None  # AWS itself, not an emulator
    assert settings.ffmpeg_binary == "/opt/bin/ffmpeg"  # where Lambda unpacks the layer's bin/
    assert settings.work_dir == "/tmp"
    assert settings.max_reencode_seconds and settings.max_reencode_seconds < 900


def test_the_join_is_triggered_by_the_template_s_queue_and_reports_each_failed_message(packaged_template):
    join = functions(packaged_template)["join_videos"]["Properties"]
    (event,) = join["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["JoinQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # one message per invocation: a rendition's pieces run at once, not in one invocation
    assert event["Properties"]["BatchSize"] == 1
    queue = packaged_template["Resources"]["JoinQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["JoinDeadLetters", "Arn"]}
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 2


def test_timeouts_line_up(packaged_template):
    by_name = {name: f["Properties"] for name, f in functions(packaged_template).items()}
    queue = packaged_template["Resources"]["JoinQueue"]["Properties"]
    assert by_name["join_videos"]["Timeout"] == 900
    # AWS's advice for a queue that triggers a function: visibility at least six times its timeout.
    assert queue["VisibilityTimeout"] >= 6 * by_name["join_videos"]["Timeout"]
    # API Gateway gives up on an integration after 29 s; the function must not outlive it.
    assert by_name["api_handler"]["Timeout"] <= 29


def test_the_ffmpeg_layer_goes_to_the_join_only_and_the_join_has_room_for_its_files(packaged_template):
    (layer_name, layer), = resources(packaged_template, "AWS::Serverless::LayerVersion").items()
    assert layer["Properties"]["ContentUri"] == "./ffmpeg-layer.zip"
    assert "GPL" in layer["Properties"]["LicenseInfo"]
    layers = {name: f["Properties"].get("Layers") for name, f in functions(packaged_template).items()}
    assert layers == {"api_handler": None, "join_videos": [{"Ref": layer_name}], "expire_abandoned": None}
    join = functions(packaged_template)["join_videos"]["Properties"]
    assert join["EphemeralStorage"]["Size"] == 10240


def test_each_function_has_its_own_role_on_this_stack_s_resources_only(packaged_template):
    roles = {function: role_of(packaged_template, function) for function in
             ("api_handler", "join_videos", "expire_abandoned")}
    assert len({role for role, _ in roles.values()}) == 3
    text = json.dumps(packaged_template)
    assert "arn:aws:" not in text  # every ARN says ${AWS::Partition}
    for function, (_, document) in roles.items():
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            assert all("*" not in action for action in statement["Action"]), statement
            if statement["Resource"] == "*":  # X-Ray has no resource-level permissions
                assert set(statement["Action"]) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
            else:
                assert "Fn::GetAtt" in statement["Resource"] or "${Bucket}" in json.dumps(statement["Resource"])
        logs = next(s for s in document["Statement"] if s["Sid"] == "Logs")
        log_group = logs["Resource"]["Fn::GetAtt"][0]
        config = functions(packaged_template)[function]["Properties"]["LoggingConfig"]
        assert config == {"LogGroup": {"Ref": log_group}}  # it may write to its own log group only


def test_the_table_expires_what_the_catalog_marks_and_the_bucket_what_the_store_tags(packaged_template):
    table = packaged_template["Resources"]["Table"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": dynamodb.TTL_ATTRIBUTE, "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "video_id", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    bucket = packaged_template["Resources"]["Bucket"]["Properties"]
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1}
    key, value = s3.SOURCE_TAG
    assert rules["expire-left-over-sources"]["TagFilters"] == [{"Key": key, "Value": value}]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert "BucketName" not in bucket or "Fn::If" in bucket["BucketName"]  # never a global constant


def test_the_api_stage_is_throttled_and_its_access_log_holds_no_secret(packaged_template):
    api = packaged_template["Resources"]["RestAPI"]["Properties"]
    (setting,) = api["MethodSettings"]
    assert setting["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    log_format = api["AccessLogSetting"]["Format"]
    # One JSON object a line ($context.error.messageString comes quoted already).
    json.loads(log_format.replace("$context.error.messageString", '"error"'))
    # Neither the query string (?token=) nor a header (Authorization) has a variable here.
    assert "$context.requestId" in log_format
    assert not any(word in log_format.lower() for word in ("querystring", "header", "authoriz", "$input"))


def test_alarms_watch_the_dead_letter_queue_and_every_function(packaged_template):
    alarms = resources(packaged_template, "AWS::CloudWatch::Alarm").values()
    watched = {json.dumps(a["Properties"]["Dimensions"]) for a in alarms}
    assert json.dumps([{"Name": "QueueName", "Value": {"Fn::GetAtt": ["JoinDeadLetters", "QueueName"]}}]) in watched
    for logical_id in ("APIHandler", "JoinVideos", "ExpireAbandoned"):
        assert json.dumps([{"Name": "FunctionName", "Value": {"Ref": logical_id}}]) in watched
    # The code's own metrics, watched where the functions write them.
    variables = environment(packaged_template, "join_videos")
    ours = {a["Properties"]["MetricName"]: a["Properties"] for a in alarms
            if a["Properties"]["Namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"]}
    assert set(ours) == {"JoinFailures", "JoinMessageFailures"}
    for alarm in ours.values():
        assert {"Name": "service", "Value": variables["POWERTOOLS_SERVICE_NAME"]} in alarm["Dimensions"]


def item(video_id: int) -> dict:
    return aws.videos_table().get_item(Key={"video_id": video_id}, ConsistentRead=True)["Item"]


def test_a_video_never_joined_expires_a_day_after_the_sweep_would_take_it_and_a_joined_one_never(on_moto):
    services = on_moto
    video_id, token = record(services, fixture_chunks()[:2])
    video = services.backend.catalog.get(video_id)
    keep = get_settings().expire_after_seconds + dynamodb.TTL_GRACE_SECONDS
    assert int(item(video_id)[dynamodb.TTL_ATTRIBUTE]) == int(video.updated_at) + keep
    services.joiner.run(video_id, urgent=True)
    assert dynamodb.TTL_ATTRIBUTE not in item(video_id)
    services.videos.append(video_id, token, fixture_chunks()[2])  # a chunk after a join
    assert dynamodb.TTL_ATTRIBUTE not in item(video_id)


def test_what_a_video_is_made_from_is_tagged_for_the_lifecycle_rule_and_the_video_is_not(on_moto):
    services = on_moto
    *first, last = fixture_chunks()
    video_id, token = record(services, first)
    piece = services.videos.start_piece(video_id, token)  # the last chunk goes as a piece
    client, bucket = aws.s3(), get_settings().bucket_name
    client.put_object(Bucket=bucket, Key=f"videos/{video_id}/pieces/{piece.piece_id}", Body=last)
    services.videos.commit_piece(video_id, token, piece.piece_id)

    def tags(key):
        return {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}

    listing = client.list_objects_v2(Bucket=bucket, Prefix=f"videos/{video_id}/chunks/")["Contents"]
    assert len(listing) == len(fixture_chunks())
    assert all(tags(o["Key"]) == dict([s3.SOURCE_TAG]) for o in listing)
    services.videos.finalize(video_id, token)
    services.joiner.run(video_id, urgent=True)
    compiled = client.list_objects_v2(Bucket=bucket, Prefix=f"videos/{video_id}/compiled/")["Contents"]
    assert compiled and all(tags(o["Key"]) == {} for o in compiled)


@pytest.fixture(scope="module")
def cloudformation(packaged_template) -> dict:
    """The CloudFormation resources the SAM transform makes of the template: what AWS
    creates (the code's local zips stand in as S3 URIs, as `aws cloudformation package`
    makes them)."""
    from samtranslator.translator.transform import transform
    template = json.loads(json.dumps(packaged_template))
    for resource in template["Resources"].values():
        for uri in ("CodeUri", "ContentUri"):
            if uri in resource.get("Properties", {}):
                resource["Properties"][uri] = "s3://deployment-bucket/code.zip"

    class NoManagedPolicies:
        def load(self):
            return {}
    return transform(template, {"AWS::Region": "us-east-1"}, NoManagedPolicies())["Resources"]


def test_what_cloudformation_creates_has_the_throttle_the_access_log_and_the_partial_batch_answer(cloudformation):
    (stage,) = [r["Properties"] for r in cloudformation.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    (throttle,) = stage["MethodSettings"]
    assert throttle["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    (mapping,) = [r["Properties"] for r in cloudformation.values()
                  if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["JoinQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 1
    (api,) = [r["Properties"] for r in cloudformation.values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    responses = api["Body"]["x-amazon-apigateway-gateway-responses"]
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):  # a 429 from the throttle is JSON, as ours are
        template = responses[kind]["responseTemplates"]["application/json"]
        assert '"Code"' in template and '"Message"' in template
    functions_made = [r["Properties"] for r in cloudformation.values() if r["Type"] == "AWS::Lambda::Function"]
    assert all(f["Environment"]["Variables"]["BUCKET_NAME"] == {"Ref": "Bucket"} for f in functions_made)
    # No role but the four the template declares (three functions, API Gateway's logging).
    roles = [name for name, r in cloudformation.items() if r["Type"] == "AWS::IAM::Role"]
    assert sorted(roles) == ["ApiGatewayLoggingRole", "ApiRole", "ExpireRole", "JoinRole"]
