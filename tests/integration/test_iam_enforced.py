"""Each function's IAM policy, enforced: the life test_policies.py walks (appends of a real
recording, a piece, status, playback, finalize, a delete; a fold, the segment join, the chunk
join, the tidying; the expiry sweep) run on moto with IAM enforced, each function with its own
role's temporary credentials and nothing more. A call its policy does not allow fails the test.

What moto 5.2.5 enforces, read in its source (moto/core/authorization.py, ActionAuthenticator
Mixin; moto/iam/access_control.py, IAMRequestBase and IAMPolicyStatement; moto/s3/responses.py,
ACTION_MAP and _set_action; moto/sqs/responses.py and moto/dynamodb/responses.py):
- Every request's SigV4 signature, against the secret of an IAM user's access key or of an
  assumed role's session (sts:AssumeRole, with its session token): what a Lambda function
  has. Unknown keys answer InvalidAccessKeyId, a wrong secret SignatureDoesNotMatch.
- One action per request, matched against Allow/Deny statements (wildcards, Action and
  NotAction), and a resource, matched as a pattern:
  - S3: the action from the method and query string (ACTION_MAP). GET/HEAD of an object:
    s3:GetObject; PUT of an object, UploadPart, UploadPartCopy, CopyObject, CreateMultipart
    Upload, CompleteMultipartUpload: s3:PutObject on the destination object; DELETE:
    s3:DeleteObject; DELETE ?uploadId: s3:AbortMultipartUpload; GET of the bucket (List
    ObjectsV2): s3:ListBucket; GET ?uploads: s3:ListBucketMultipartUploads; the resource is
    the object's ARN, or the bucket's for bucket operations.
  - SQS: the operation's name (sqs:SendMessage, sqs:ReceiveMessage...) on the queue's ARN,
    taken from QueueUrl.
  - DynamoDB: the operation's name (dynamodb:UpdateItem, dynamodb:Scan...).
Not enforced, or not as AWS does:
- The source of a copy: CopyObject and UploadPartCopy need s3:GetObject on their source on
  AWS; moto checks only s3:PutObject on the destination. (commit_piece's managed copy is
  still covered: boto3 sends a HeadObject of the source first.)
- Second actions: a PUT with tags needs s3:PutObjectTagging on AWS, moto checks s3:PutObject.
- s3:ListBucket to tell a missing key: without it AWS answers 403 to a GET or HEAD of a
  missing key; moto answers 404 NoSuchKey whatever the policy.
- Conditions: moto has no request values to compare, so an identity policy's Condition is
  taken as met; NotResource is not read (such a statement matches any resource).
- Presigned requests: with IAM enforced, moto fails on one (KeyError 'HTTP_AUTHORIZATION'
  in IAMRequestBase), so the recorder's PUT and the player's GET go with enforcement off;
  the test checks the URL's signer and, with moto's own policy evaluator, its action.
- Three resources, made up for in `as_moto_authorizes` (nothing else is widened): DynamoDB
  calls are authorized against "*", not the table's ARN; sqs:GetQueueUrl against "*" (no
  QueueUrl to take the queue from); DeleteObjects against the bucket's ARN, not each key's,
  and a refusal is reported per key in a 200 answer.
What moto does not enforce, test_policies.py's mapping of operations to actions guards.
"""
import contextlib
import copy
import fnmatch
import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import requests
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.authorization import disable_iam_authentication, enable_iam_authentication
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3.responses import ACTION_MAP

from chalicelib import aws, wiring
from chalicelib.errors import StorageUnavailable
from chalicelib.join_messages import join_batch
from chalicelib.models import Status
from chalicelib.settings import get_settings
from devtools.worker import sqs_event
from tests.conftest import fixture_chunks
from tests.deployment import role_of
from tests.helpers import record
from tests.integration.test_segments import in_chunks, long_recording

FUNCTIONS = ("api_handler", "join_videos", "expire_abandoned")


# --- The packaged template's roles (what `make deploy` deploys), resolved. ---

ACCOUNT = DEFAULT_ACCOUNT_ID  # moto's account: the ARNs it authorizes against name it
REGION = "us-east-1"  # tests/conftest.py's fake credentials
STACK = "video-management-api-test"
PSEUDO_PARAMETERS = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                     "AWS::StackName": STACK, "AWS::URLSuffix": "amazonaws.com"}


def physical_resources(names: dict[str, str]) -> dict[str, dict[str, str]]:
    """What CloudFormation answers for `Ref` and `Fn::GetAtt` of each resource the roles
    name, by logical id, given the bucket's, table's and queue's physical names (`names`,
    as for template_policies). The log groups only appear in the Logs statements, which
    nothing calls here."""
    bucket, table, queue = names["Bucket"], names["Table"], names["JoinQueue"]
    resources = {
        "Bucket": {"Ref": bucket, "Arn": f"arn:aws:s3:::{bucket}",
                   "DomainName": f"{bucket}.s3.amazonaws.com"},
        "Table": {"Ref": table, "Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"},
        "JoinQueue": {"Ref": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{queue}",
                      "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", "QueueName": queue},
    }
    for logical_id, suffix in (("ApiLogs", "api"), ("JoinLogs", "join"), ("ExpireLogs", "expire")):
        group = f"/aws/lambda/{STACK}/{suffix}"
        resources[logical_id] = {"Ref": group,
                                 "Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:*"}
    return resources


_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def resolve(value, resources: dict[str, dict[str, str]],
            pseudo: dict[str, str] = PSEUDO_PARAMETERS):
    """A template fragment with its `Ref`, `Fn::GetAtt`, `Fn::Sub` and `Fn::Join` replaced by
    what they name: `resources` maps a logical id to its attributes ("Ref" for Ref,
    "Arn"... for Fn::GetAtt), `pseudo` the pseudo parameters (AWS::Partition...). A name
    neither knows raises KeyError, another intrinsic function ValueError: a policy is never
    resolved into something half-concrete."""
    def ref(name: str) -> str:
        return pseudo[name] if name in pseudo else resources[name]["Ref"]

    def get_att(logical_id: str, attribute: str) -> str:
        return resources[logical_id][attribute]

    def sub(text: str, variables: dict) -> str:
        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} stands for the text ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return variables[name]
            if "." in name and name not in pseudo:
                return get_att(*name.split(".", 1))
            return ref(name)
        return _SUB_VARIABLE.sub(replace, text)

    if isinstance(value, list):
        return [resolve(item, resources, pseudo) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return ref(argument)
        if key == "Fn::GetAtt":
            logical_id, attribute = (argument if isinstance(argument, list)
                                     else argument.split(".", 1))
            return get_att(logical_id, attribute)
        if key == "Fn::Sub":
            if isinstance(argument, str):
                return sub(argument, {})
            text, variables = argument
            return sub(text, resolve(variables, resources, pseudo))
        if key == "Fn::Join":
            delimiter, items = argument
            return delimiter.join(resolve(items, resources, pseudo))
        if key.startswith("Fn::"):
            raise ValueError(f"{key} is not resolved here: {value}")
    return {key: resolve(item, resources, pseudo) for key, item in value.items()}


def template_policies(template: dict, names: dict[str, str]) -> dict[str, dict]:
    """Each function's role policy in the packaged template (tests.deployment.package), as
    plain JSON with concrete ARNs: `names` gives the physical name of each resource the
    policies name, by its logical id ({"Bucket": ..., "Table": ..., "JoinQueue": ...})."""
    resources = physical_resources(names)
    return {function: resolve(role_of(template, function)[1], resources) for function in FUNCTIONS}


# --- What moto authorizes differently from AWS, made up for. ---

def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _allows(actions: list[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in actions)


def as_moto_authorizes(policy: dict) -> dict:
    """The policy, plus what makes moto allow what AWS would: only where moto authorizes a
    call against another resource than AWS does (moto 5.2.5), and only for actions the
    policy already grants, so that removing an action from the policy removes it here too.

    - DynamoDB: moto authorizes every call against "*" (moto/core/responses.py call_action;
      moto/dynamodb/responses.py has no _determine_resource), which a table ARN does not
      match: the DynamoDB actions granted are granted on "*".
    - sqs:GetQueueUrl: moto/sqs/responses.py _determine_resource takes the queue from a
      QueueUrl, which GetQueueUrl has not, and falls back to "*".
    - s3:DeleteObject for DeleteObjects: moto authorizes it against the bucket's ARN
      (_bucket_response_post), AWS against each key's; refused, moto reports every key as
      AccessDenied in a 200 answer.
    """
    adapted = copy.deepcopy(policy)
    extra = []
    for statement in adapted["Statement"]:
        if statement.get("Effect") != "Allow" or "Action" not in statement:
            continue
        actions = _listed(statement["Action"])
        dynamodb = [action for action in actions if action.lower().startswith("dynamodb:")]
        if dynamodb:
            extra.append({"Sid": "MotoAuthorizesDynamoDBOnStar", "Effect": "Allow",
                          "Action": dynamodb, "Resource": "*"})
        if _allows(actions, "sqs:GetQueueUrl"):
            extra.append({"Sid": "MotoAuthorizesGetQueueUrlOnStar", "Effect": "Allow",
                          "Action": "sqs:GetQueueUrl", "Resource": "*"})
        if _allows(actions, "s3:DeleteObject"):
            buckets = sorted({resource.split("/", 1)[0] for resource in _listed(statement["Resource"])
                              if resource.startswith("arn:aws:s3:::") and "/" in resource})
            if buckets:
                extra.append({"Sid": "MotoAuthorizesDeleteObjectsOnTheBucket", "Effect": "Allow",
                              "Action": "s3:DeleteObject", "Resource": buckets})
    adapted["Statement"] = _listed(adapted["Statement"]) + extra
    return adapted


def without(policies: dict[str, dict], function: str, action: str) -> dict[str, dict]:
    """The policies with `action` taken out of every statement of `function`'s."""
    changed = copy.deepcopy(policies)
    for statement in changed[function]["Statement"]:
        actions = _listed(statement.get("Action", []))
        if action in actions:
            statement["Action"] = [kept for kept in actions if kept != action]
    changed[function]["Statement"] = [s for s in changed[function]["Statement"]
                                      if s.get("Action", True)]
    assert changed != policies, f"{function}'s policy does not grant {action}"
    return changed


# --- The functions, each with its own role, on moto with IAM enforced. ---

_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


@dataclass
class Functions:
    """The three functions' roles, assumed; the AWS calls each made and each refusal."""
    settings: object
    policies: dict[str, dict]  # as moto was given them (as_moto_authorizes)
    credentials: dict[str, dict] = field(default_factory=dict)
    calls: set[tuple[str, str]] = field(default_factory=set)  # (function, "s3.PutObject")
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (function, call, code)

    def create_roles(self) -> None:
        """One role per function with its policy, and a session of it, as Lambda has: made
        while moto does not enforce IAM yet (it would refuse the test's own keys)."""
        iam, sts = boto3.client("iam", region_name=REGION), boto3.client("sts", region_name=REGION)
        for function, policy in self.policies.items():
            role = iam.create_role(RoleName=f"{function}-role",
                                   AssumeRolePolicyDocument=json.dumps(_TRUST))["Role"]
            iam.put_role_policy(RoleName=role["RoleName"], PolicyName="least-privilege",
                                PolicyDocument=json.dumps(policy))
            self.credentials[function] = sts.assume_role(
                RoleArn=role["Arn"], RoleSessionName=function)["Credentials"]

    @contextlib.contextmanager
    def acting_as(self, function: str, clock=None):
        """The service as `function` runs it: wiring.build over clients made with that
        function's credentials. chalicelib.aws makes its clients from boto3's default
        session, so that session is replaced and the clients dropped (aws.reset)."""
        keys = self.credentials[function]
        boto3.setup_default_session(
            aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["SessionToken"], region_name=REGION)
        # Clients copy their session's handlers when made: every client of this phase notes.
        boto3.DEFAULT_SESSION.events.register("after-call", self._noter(function))
        aws.reset()
        try:
            yield wiring.build(self.settings, **({"clock": clock} if clock else {}))
        finally:
            aws.reset()
            boto3.DEFAULT_SESSION = None

    def _noter(self, function: str):
        def note(model, parsed, **_):
            call = f"{model.service_model.endpoint_prefix}.{model.name}"
            self.calls.add((function, call))
            status = parsed.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # DeleteObjects answers 200 and names each key it refused.
            codes = [parsed.get("Error", {}).get("Code")] + [e.get("Code") for e in parsed.get("Errors", [])]
            if status == 403 or "AccessDenied" in codes:
                self.refused.append((function, call, next((c for c in codes if c), str(status))))
        return note

    def check_presigned(self, function: str, method: str, url: str) -> None:
        """A presigned URL is the signer's: on AWS it may do what the signer's role may. moto
        cannot authenticate one while it enforces IAM, so moto's own evaluator is asked
        whether the role allows the action moto derives for that request."""
        parsed = urlparse(url)
        assert parse_qs(parsed.query)["X-Amz-Credential"][0].split("/")[0] == \
            self.credentials[function]["AccessKeyId"]
        action = "s3:" + ACTION_MAP["KEY"][method]["DEFAULT"]
        bucket = self.settings.bucket_name
        key = parsed.path.lstrip("/").removeprefix(f"{bucket}/")  # path-style or virtual-hosted
        resource = f"arn:aws:s3:::{bucket}/{key}"
        evaluated = IAMPolicy(json.dumps(self.policies[function])).is_action_permitted(action, resource)
        assert evaluated is PermissionResult.PERMITTED, f"{function} may not {action} {resource}"


@contextlib.contextmanager
def unenforced():
    """Outside every role: the recorder's and the player's requests to presigned URLs, and
    the test's own look at the bucket."""
    with disable_iam_authentication():
        yield boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=REGION).client("s3")


@pytest.fixture
def enforced(aws, monkeypatch):
    """enforced(policies): moto (the `aws` fixture: bucket, table and queue as provisioned),
    a role per function with its policy, and IAM enforced until the test ends."""
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # acting_as replaces it; put back after
    with contextlib.ExitStack() as stack:
        def start(policies: dict[str, dict]) -> Functions:
            functions = Functions(get_settings(), {name: as_moto_authorizes(policy)
                                                   for name, policy in policies.items()})
            functions.create_roles()
            stack.enter_context(enable_iam_authentication())
            return functions
        yield start


def names_here() -> dict[str, str]:
    """The bucket, table and queue the tests' settings name, by logical id."""
    settings = get_settings()
    return {"Bucket": settings.bucket_name, "Table": settings.table_name,
            "JoinQueue": settings.job_queue_name}


# --- The life. ---

def keys_under(s3, prefix: str) -> list[str]:
    page = s3.list_objects_v2(Bucket=get_settings().bucket_name, Prefix=prefix)
    return [item["Key"] for item in page.get("Contents", [])]


def uploads_under(s3, prefix: str) -> list[str]:
    page = s3.list_multipart_uploads(Bucket=get_settings().bucket_name, Prefix=prefix)
    return [upload["Key"] for upload in page.get("Uploads", [])]


def leave_an_upload(functions: Functions, video_id: int) -> None:
    """A join's multipart upload still open (its worker died, or it is running) when the
    video goes: deleting the video must abort it."""
    with functions.acting_as("join_videos") as join:
        store = join.backend.store
        store.start_composition(store.compiled_key(video_id, 1, "webm"), "video/webm")


def deliver_queued_joins(join, limit: int = 20) -> int:
    """Each queued join message through the join function's handler (join_batch), as the SQS
    trigger hands it over; received and deleted with the function's role, as Lambda's poller
    does. A message the handler reports as failed fails the life."""
    handled = 0
    while handled < limit and (delivery := join.backend.queue.receive()) is not None:
        answer = join_batch(sqs_event(delivery.body, delivery.receipt), join.joiner, join.backend.queue,
                            join.renditions, join.reencodes)
        assert not answer["batchItemFailures"], f"the join of {delivery.body} failed"
        delivery.acknowledge()
        handled += 1
    return handled


def recording_life(functions: Functions) -> None:
    """The routes and the joins: a small recording whose last chunk comes as a piece, a
    recording deleted while a join's upload is open, a long recording folded and joined
    from its segments; then status and playback, and what is left in the bucket."""
    chunks = fixture_chunks()
    with functions.acting_as("api_handler") as api:
        small, small_token = record(api, chunks[:-1])
        piece = api.videos.start_piece(small, small_token)
        functions.check_presigned("api_handler", "PUT", piece.upload_url)
        doomed, doomed_token = record(api, chunks[:2])
    with unenforced():  # the recorder's own PUT
        assert requests.put(piece.upload_url, data=chunks[-1]).status_code == 200
    leave_an_upload(functions, doomed)
    with functions.acting_as("api_handler") as api:
        api.videos.commit_piece(small, small_token, piece.piece_id)
        api.videos.status(small, small_token)
        api.videos.finalize(small, small_token)
        api.videos.delete(doomed, doomed_token)  # before the long recording: a refusal ends early
        long, long_token = record(api, in_chunks(long_recording()))
        api.videos.finalize(long, long_token)
    with unenforced() as s3:
        assert not keys_under(s3, f"videos/{doomed}/") and not uploads_under(s3, f"videos/{doomed}/")

    with functions.acting_as("join_videos") as join:
        join.joiner.folder.fold(join.backend.catalog.get(long))  # as a waiting join folds
        assert deliver_queued_joins(join) >= 2

    with functions.acting_as("api_handler") as api:
        for video_id, token, method in ((small, small_token, "remux"), (long, long_token, "segments")):
            view = api.videos.status(video_id, token)
            assert view.status is Status.READY, (video_id, view.status, view.video.error)
            assert view.video.media.join_method.value == method
            functions.check_presigned("api_handler", "GET", view.poster_url)
        playback = api.videos.playback(long, long_token)
        functions.check_presigned("api_handler", "GET", playback.url)
    with unenforced() as s3:  # the player's GET; then the finished videos' sources are gone
        assert requests.get(playback.url).content[:4] == b"\x1a\x45\xdf\xa3"  # EBML
        for video_id in (small, long):
            assert not keys_under(s3, f"videos/{video_id}/chunks/")
            assert not keys_under(s3, f"videos/{video_id}/segments/")
            assert not keys_under(s3, f"videos/{video_id}/pieces/")
            assert keys_under(s3, f"videos/{video_id}/compiled/")


def sweep_life(functions: Functions) -> None:
    """A recording abandoned (one chunk, a join's upload left open), then the expiry sweep
    long after: record, objects and upload gone."""
    with functions.acting_as("api_handler") as api:
        left, _ = record(api, [b"left"])
    leave_an_upload(functions, left)
    with functions.acting_as("expire_abandoned", clock=lambda: 10**12) as expire:
        assert expire.videos.expire_abandoned() == [left]
    with unenforced() as s3:
        assert not keys_under(s3, f"videos/{left}/") and not uploads_under(s3, f"videos/{left}/")


def life(functions: Functions) -> None:
    recording_life(functions)
    sweep_life(functions)


def test_every_function_does_its_part_with_its_own_policy_enforced(enforced, packaged_template):
    functions = enforced(template_policies(packaged_template, names_here()))
    life(functions)
    assert not functions.refused
    # The life did reach the calls whose actions the negative cases below take away.
    assert {("api_handler", "s3.PutObject"), ("api_handler", "s3.CopyObject"),
            ("api_handler", "s3.HeadObject"), ("api_handler", "s3.ListMultipartUploads"),
            ("api_handler", "s3.AbortMultipartUpload"), ("api_handler", "s3.DeleteObjects"),
            ("api_handler", "sqs.SendMessage"), ("api_handler", "dynamodb.UpdateItem"),
            ("join_videos", "s3.UploadPartCopy"), ("join_videos", "s3.CompleteMultipartUpload"),
            ("join_videos", "s3.ListObjectsV2"), ("join_videos", "s3.DeleteObjects"),
            ("join_videos", "sqs.ReceiveMessage"), ("join_videos", "sqs.DeleteMessage"),
            ("expire_abandoned", "dynamodb.Scan"), ("expire_abandoned", "dynamodb.DeleteItem"),
            ("expire_abandoned", "s3.ListMultipartUploads"),
            ("expire_abandoned", "s3.AbortMultipartUpload"),
            ("expire_abandoned", "s3.DeleteObjects")} <= functions.calls


# One action taken from one function's policy; the call moto then refuses. Only actions moto
# enforces (see the module's docstring): s3:GetObject on a copy's source, s3:PutObjectTagging,
# the ListBucket that turns a missing key's 404 into a 403 are test_policies.py's to check.
# sqs:ChangeMessageVisibility (an interrupted join only) and the join's s3:AbortMultipartUpload
# (a failed join only, and its refusal is ignored) are not reached by a life that succeeds.
REMOVED = [
    ("api_handler", "dynamodb:UpdateItem", "dynamodb.UpdateItem", recording_life),
    ("api_handler", "sqs:SendMessage", "sqs.SendMessage", recording_life),
    ("api_handler", "s3:GetObject", "s3.HeadObject", recording_life),
    ("api_handler", "s3:ListBucket", "s3.ListObjectsV2", recording_life),
    ("api_handler", "s3:AbortMultipartUpload", "s3.AbortMultipartUpload", recording_life),
    ("join_videos", "s3:ListBucket", "s3.ListObjectsV2", recording_life),
    ("join_videos", "s3:DeleteObject", "s3.DeleteObjects", recording_life),
    ("join_videos", "sqs:ReceiveMessage", "sqs.ReceiveMessage", recording_life),
    ("expire_abandoned", "dynamodb:Scan", "dynamodb.Scan", sweep_life),
    ("expire_abandoned", "s3:ListBucketMultipartUploads", "s3.ListMultipartUploads", sweep_life),
]


@pytest.mark.parametrize("function, action, refused_call, part", REMOVED,
                         ids=[f"{f}-{a}" for f, a, _, _ in REMOVED])
def test_a_function_without_one_of_its_actions_fails(enforced, packaged_template, function, action,
                                                     refused_call, part):
    functions = enforced(without(template_policies(packaged_template, names_here()), function, action))
    # A refusal is a 503 (StorageUnavailable) where the call is made; where the service
    # carries on (a join request not sent, a DeleteObjects key refused), the life's own
    # checks fail further on.
    with pytest.raises((StorageUnavailable, AssertionError)):
        part(functions)
    assert (function, refused_call) in {(f, call) for f, call, _ in functions.refused}


# --- The resolver and template_policies, for the switch to the packaged template. ---

RESOURCES = physical_resources({"Bucket": "chunks", "Table": "videos", "JoinQueue": "joins"})


@pytest.mark.parametrize("fragment, resolved", [
    ({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/videos/*"}, "arn:aws:s3:::chunks/videos/*"),
    ({"Fn::GetAtt": ["Table", "Arn"]}, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/videos"),
    ({"Fn::GetAtt": "JoinQueue.QueueName"}, "joins"),
    ({"Ref": "Bucket"}, "chunks"),
    ({"Ref": "AWS::Region"}, REGION),
    ({"Fn::Sub": "${JoinQueue.Arn}|${!Literal}|${AWS::AccountId}"},
     f"arn:aws:sqs:{REGION}:{ACCOUNT}:joins|${{Literal}}|{ACCOUNT}"),
    ({"Fn::Sub": ["arn:aws:s3:::${Name}/*", {"Name": {"Ref": "Bucket"}}]}, "arn:aws:s3:::chunks/*"),
    ({"Fn::Join": ["", ["arn:aws:s3:::", {"Ref": "Bucket"}]]}, "arn:aws:s3:::chunks"),
    ({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"],
                     "Resource": [{"Fn::GetAtt": ["Bucket", "Arn"]}, "*"]}]},
     {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"],
                     "Resource": ["arn:aws:s3:::chunks", "*"]}]}),
])
def test_resolve_replaces_intrinsic_functions(fragment, resolved):
    assert resolve(fragment, RESOURCES) == resolved


@pytest.mark.parametrize("fragment, error", [
    ({"Ref": "Unknown"}, KeyError),
    ({"Fn::GetAtt": ["Bucket", "WebsiteURL"]}, KeyError),
    ({"Fn::Sub": "arn:aws:s3:::${Unknown}"}, KeyError),
    ({"Fn::If": ["HasBucketName", "a", "b"]}, ValueError),
])
def test_resolve_refuses_what_it_cannot_name(fragment, error):
    with pytest.raises(error):
        resolve(fragment, RESOURCES)


def test_the_packaged_template_s_roles_resolve_to_plain_policies(packaged_template):
    names = {"Bucket": "chunks", "Table": "videos", "JoinQueue": "joins"}
    policies = template_policies(packaged_template, names)
    assert set(policies) == set(FUNCTIONS)
    text = json.dumps(policies)
    assert "Fn::" not in text and '"Ref"' not in text and "${" not in text
    resources = {statement["Sid"]: statement["Resource"]
                 for statement in policies["api_handler"]["Statement"]}
    assert resources["VideoObjects"] == "arn:aws:s3:::chunks/videos/*"
    assert resources["ListVideoObjectsAndTellMissingKeys"] == "arn:aws:s3:::chunks"
    assert resources["VideoCatalog"] == f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/videos"
    assert resources["JoinQueue"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:joins"


def test_as_moto_authorizes_widens_only_what_moto_checks_elsewhere(packaged_template):
    names = {"Bucket": "chunks", "Table": "videos", "JoinQueue": "joins"}
    policy = template_policies(packaged_template, names)["api_handler"]
    adapted = as_moto_authorizes(policy)
    assert adapted["Statement"][:len(policy["Statement"])] == policy["Statement"]
    assert adapted["Statement"][len(policy["Statement"]):] == [
        {"Sid": "MotoAuthorizesDeleteObjectsOnTheBucket", "Effect": "Allow",
         "Action": "s3:DeleteObject", "Resource": ["arn:aws:s3:::chunks"]},
        {"Sid": "MotoAuthorizesDynamoDBOnStar", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
         "Resource": "*"},
        {"Sid": "MotoAuthorizesGetQueueUrlOnStar", "Effect": "Allow", "Action": "sqs:GetQueueUrl",
         "Resource": "*"},
    ]
    without_update = as_moto_authorizes(without({"api": policy}, "api", "dynamodb:UpdateItem")["api"])
    assert "dynamodb:UpdateItem" not in json.dumps(without_update)
