"""What the functions do in AWS, as IAM sees it, and what the deployed template lets them do.

``AccessRecorder`` hooks into every botocore session (as moto itself does), and into the HTTP
transport of the proxy's own DynamoDB client (``DynamoHttp``, which botocore does not see), and
records, for each call made while a function's code runs, the IAM action it needs and the
resource it touches:
``TransactWriteItems`` is authorised per item, by each item's own action; a multipart upload
is ``s3:PutObject``; a presigned URL needs what the request it signs needs. Calls made outside a
function (a test's own set-up and checks, the local stand-ins for event source mappings) are
not recorded. The recorder also fails chosen calls, to drive the code's failure branches.

``deployed_grants`` reads the roles SAM generates for each function from the template and
resolves their resources to the ARNs of the resources the test created.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from botocore import handlers
from botocore.awsrequest import AWSResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.access_control import IAMPolicy, PermissionResult

from devstack.aws_resources import load_template
from meterway.core.aws import credentials, dynamodb_endpoint, region
from meterway.core.dynamo_http import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, TARGET_PREFIX, DynamoHttp
from meterway.core.http1 import Answer, Origin
from tests.sam_template import transformed_template

_FUNCTION: ContextVar[str | None] = ContextVar("function", default=None)


@dataclass(frozen=True, order=True)
class Access:
    action: str
    resource: str

    def __str__(self) -> str:
        return f"{self.action} on {self.resource}"


class UnmappedOperation(Exception):
    """A call whose IAM action this module does not know yet: add it to ``_accesses``."""


# --- API operation → IAM action and resource ------------------------------------------------------

_DYNAMODB_TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
_DYNAMODB_PER_TABLE = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable"}
_S3_OBJECT_ACTIONS = {
    "PutObject": "PutObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
    "ListParts": "ListMultipartUploadParts",
    "GetObject": "GetObject",
    "HeadObject": "GetObject",
    "DeleteObject": "DeleteObject",
}
_SQS_QUEUE_ACTIONS = {
    "SendMessage": "SendMessage",
    "SendMessageBatch": "SendMessage",
    "ReceiveMessage": "ReceiveMessage",
    "DeleteMessage": "DeleteMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibility": "ChangeMessageVisibility",
    "GetQueueAttributes": "GetQueueAttributes",
}


def table_arn(region: str, table: str, index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:{region}:{DEFAULT_ACCOUNT_ID}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def queue_arn(region: str, queue_url: str) -> str:
    account, name = urlparse(queue_url).path.strip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _dynamodb(operation: str, params: Mapping[str, Any], region: str) -> set[Access]:
    if operation in _DYNAMODB_PER_TABLE:
        return {Access(f"dynamodb:{operation}", table_arn(region, params["TableName"], params.get("IndexName")))}
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return {
            Access(f"dynamodb:{_DYNAMODB_TRANSACT_ITEM_ACTIONS[kind]}", table_arn(region, request["TableName"]))
            for item in params["TransactItems"]
            for kind, request in item.items()
        }
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return {Access(f"dynamodb:{operation}", table_arn(region, table)) for table in params["RequestItems"]}
    raise UnmappedOperation(f"dynamodb.{operation}")


def _s3(operation: str, params: Mapping[str, Any], region: str) -> set[Access]:
    if operation in _S3_OBJECT_ACTIONS:
        return {Access(f"s3:{_S3_OBJECT_ACTIONS[operation]}", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}")}
    if operation in ("ListObjectsV2", "HeadBucket"):
        return {Access("s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}")}
    raise UnmappedOperation(f"s3.{operation}")


def _sqs(operation: str, params: Mapping[str, Any], region: str) -> set[Access]:
    if operation in _SQS_QUEUE_ACTIONS:
        return {Access(f"sqs:{_SQS_QUEUE_ACTIONS[operation]}", queue_arn(region, params["QueueUrl"]))}
    if operation == "GetQueueUrl":
        return {Access("sqs:GetQueueUrl", f"arn:aws:sqs:{region}:{DEFAULT_ACCOUNT_ID}:{params['QueueName']}")}
    raise UnmappedOperation(f"sqs.{operation}")


def _secretsmanager(operation: str, params: Mapping[str, Any], region: str) -> set[Access]:
    if operation in ("GetSecretValue", "DescribeSecret"):
        return {Access(f"secretsmanager:{operation}", params["SecretId"])}
    raise UnmappedOperation(f"secretsmanager.{operation}")


_BY_SERVICE: dict[str, Callable[[str, Mapping[str, Any], str], set[Access]]] = {
    "dynamodb": _dynamodb,
    "s3": _s3,
    "sqs": _sqs,
    "secretsmanager": _secretsmanager,
}


def accesses_of(service: str, operation: str, params: Mapping[str, Any], region: str) -> set[Access]:
    """The (action, resource) pairs IAM checks for one API call."""
    if service not in _BY_SERVICE:
        raise UnmappedOperation(f"{service}.{operation}")
    return _BY_SERVICE[service](operation, params, region)


# --- Recording ------------------------------------------------------------------------------------


# The regions each geography's cross-region inference profiles route to (AWS's "Supported Regions
# and models for inference profiles"): a call through a profile needs the foundation model in each.
_PROFILE_REGIONS = {"us": ("us-east-1", "us-east-2", "us-west-2"), "eu": ("eu-central-1", "eu-west-1", "eu-west-3")}


def bedrock_accesses(path: str, region: str) -> set[Access]:
    """What one Bedrock Runtime call needs in IAM, read from the path it reached the endpoint at
    (``/model/{model or inference profile id}/{invoke|invoke-with-response-stream|converse|converse-stream}``):
    the gateway signs these calls itself, so no botocore hook sees them."""
    _, _, model_id, operation = path.split("/", 3)
    action = "bedrock:InvokeModelWithResponseStream" if operation.endswith("stream") else "bedrock:InvokeModel"
    geography, _, base_model = model_id.partition(".")
    if geography not in _PROFILE_REGIONS:
        return {Access(action, f"arn:aws:bedrock:{region}::foundation-model/{model_id}")}
    profile = Access(action, f"arn:aws:bedrock:{region}:{DEFAULT_ACCOUNT_ID}:inference-profile/{model_id}")
    return {profile} | {
        Access(action, f"arn:aws:bedrock:{routed}::foundation-model/{base_model}")
        for routed in _PROFILE_REGIONS[geography]
    }


@dataclass(frozen=True)
class Fault:
    """Fail the calls to ``operation`` that touch a resource containing ``resource_part``."""

    operation: str
    resource_part: str
    code: str = "ServiceUnavailable"

    def matches(self, operation: str, accesses: set[Access]) -> bool:
        return operation == self.operation and any(self.resource_part in access.resource for access in accesses)


class AccessRecorder:
    def __init__(self) -> None:
        self.accesses: dict[str, set[Access]] = defaultdict(set)
        self.unmapped: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self._faults: list[Fault] = []
        self._hooks = [("before-parameter-build", self._on_call), ("before-call", self._fail_if_asked)]

    @contextmanager
    def installed(self) -> Iterator[AccessRecorder]:
        """Hooks into every botocore session made from now on (clients made before are not seen)."""
        handlers.BUILTIN_HANDLERS.extend(self._hooks)
        try:
            yield self
        finally:
            for hook in self._hooks:
                handlers.BUILTIN_HANDLERS.remove(hook)

    def lambda_handler(self, function: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """``handler``, with what it calls in AWS recorded as ``function``'s."""

        def recorded(event: Any, context: Any) -> Any:
            token = _FUNCTION.set(function)
            try:
                return handler(event, context)
            finally:
                _FUNCTION.reset(token)

        return recorded

    def asgi_app(self, function: str, app: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """The ASGI ``app``, with what it calls in AWS recorded as ``function``'s (threads it hands
        work to through anyio inherit the context)."""

        async def recorded(scope: Any, receive: Any, send: Any) -> None:
            token = _FUNCTION.set(function)
            try:
                await app(scope, receive, send)
            finally:
                _FUNCTION.reset(token)

        return recorded

    @contextmanager
    def failing(self, fault: Fault) -> Iterator[None]:
        self._faults.append(fault)
        try:
            yield
        finally:
            self._faults.remove(fault)

    def dynamo_http(self) -> DynamoHttp:
        """A DynamoDB client for the proxy (``build_deps(dynamo=…)``) as the process makes it,
        whose calls are recorded and failed where it sends them: what it really sends."""
        endpoint = dynamodb_endpoint()
        return DynamoHttp(endpoint, region(), credentials, origin=_RecordedOrigin(endpoint, self))

    def _on_call(self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        where = context.get("client_region") or "us-east-1"
        fault = self._record(model.service_model.service_name, model.name, params, where)
        if fault is not None:
            context["injected_fault"] = fault

    def _record(self, service: str, operation: str, params: Mapping[str, Any], where: str) -> Fault | None:
        """Note what one call needs, as the running function's; the fault to answer it with, if any."""
        function = _FUNCTION.get()
        if function is None:
            return None
        try:
            accesses = accesses_of(service, operation, params, where)
        except UnmappedOperation as unmapped:
            self.unmapped.append(f"{function}: {unmapped}")
            return None
        self.accesses[function] |= accesses
        return next((fault for fault in self._faults if fault.matches(operation, accesses)), None)

    def _on_http_call(self, headers: list[tuple[str, str]], body: bytes) -> Answer | None:
        """A ``DynamoHttp`` request: recorded, and answered here when a fault is aimed at it."""
        operation = dict(headers)["X-Amz-Target"].removeprefix(TARGET_PREFIX)
        fault = self._record("dynamodb", operation, json.loads(body), region())
        if fault is None:
            return None
        self.failed.append((fault.operation, fault.resource_part))
        error = {"__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}", "message": "injected by the test"}
        return Answer(503, {}, json.dumps(error).encode())

    def _fail_if_asked(
        self, model: Any, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        fault: Fault | None = context.get("injected_fault")
        if fault is None:
            return None
        self.failed.append((fault.operation, fault.resource_part))
        error = {"Error": {"Code": fault.code, "Message": "injected by the test"}, "ResponseMetadata": {}}
        return AWSResponse("https://injected.invalid", 503, {}, None), error


class _RecordedOrigin(Origin):
    def __init__(self, url: str, recorder: AccessRecorder):
        super().__init__(url, connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)
        self._recorder = recorder

    async def post(self, headers: list[tuple[str, str]], body: bytes) -> Answer:
        return self._recorder._on_http_call(headers, body) or await super().post(headers, body)


# --- The deployed template's grants ---------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One action on one resource pattern, from a statement of a function's role."""

    sid: str
    action: str
    resource: str

    def allows(self, access: Access) -> bool:
        one = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": self.action, "Resource": self.resource}],
        }
        return _permits(one, access)

    def __str__(self) -> str:
        return f"{self.sid}: {self.action} on {self.resource}"


def _permits(document: Mapping[str, Any], access: Access) -> bool:
    verdict = IAMPolicy(json.dumps(document)).is_action_permitted(access.action, access.resource)
    return verdict == PermissionResult.PERMITTED


@dataclass
class Role:
    documents: list[dict[str, Any]]
    managed: list[str]

    def allows(self, access: Access) -> bool:
        return any(_permits(document, access) for document in self.documents)

    @property
    def grants(self) -> list[Grant]:
        return [
            Grant(statement.get("Sid", "?"), action, resource)
            for document in self.documents
            for statement in document["Statement"]
            if statement["Effect"] == "Allow"
            for action in _as_list(statement["Action"])
            for resource in _as_list(statement["Resource"])
        ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _arn(kind: str, physical_id: str, region: str) -> str:
    if kind == "AWS::DynamoDB::Table":
        return table_arn(region, physical_id)
    if kind == "AWS::SQS::Queue":
        return queue_arn(region, physical_id)
    if kind == "AWS::S3::Bucket":
        return f"arn:aws:s3:::{physical_id}"
    if kind == "AWS::SecretsManager::Secret":
        return physical_id  # its Ref is its ARN
    raise ValueError(f"no ARN for a {kind}")


class _Arns:
    """Resolves Ref / Fn::GetAtt / Fn::Sub in policies to the test's own resources."""

    def __init__(self, template: Mapping[str, Any], physical: Mapping[str, str], region: str) -> None:
        self._refs: dict[str, str] = {
            "AWS::Region": region,
            "AWS::AccountId": DEFAULT_ACCOUNT_ID,
            "AWS::Partition": "aws",
        }
        # A parameter is its default (the list a CommaDelimitedList stands for).
        for name, parameter in template.get("Parameters", {}).items():
            if "Default" in parameter:
                default = str(parameter["Default"])
                self._refs[name] = default.split(",") if parameter["Type"] == "CommaDelimitedList" else default  # type: ignore[assignment]
        self._arns: dict[str, str] = {}
        for logical_id, physical_id in physical.items():
            kind = template["Resources"][logical_id]["Type"]
            self._refs[logical_id] = physical_id
            self._arns[logical_id] = _arn(kind, physical_id, region)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self._refs[value["Ref"]]
        if set(value) == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn", f"{logical_id}.{attribute} in a policy"
            return self._arns[logical_id]
        if set(value) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda match: self._sub(match.group(1)), value["Fn::Sub"])
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, name: str) -> str:
        logical_id, _, attribute = name.partition(".")
        return self.resolve({"Fn::GetAtt": [logical_id, attribute]} if attribute else {"Ref": name})


def deployed_roles(template_path: Path, physical: Mapping[str, str], region: str) -> dict[str, Role]:
    """Each function's role as SAM generates it, its resources resolved to ``physical``'s ARNs."""
    cfn = transformed_template(template_path)
    resources = cfn["Resources"]
    arns = _Arns(load_template(template_path), physical, region)
    roles = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        role = resources[resource["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        roles[logical_id] = Role(
            documents=[arns.resolve(policy["PolicyDocument"]) for policy in role.get("Policies", [])],
            managed=role.get("ManagedPolicyArns", []),
        )
    return roles


def service_accesses(template_path: Path, physical: Mapping[str, str], region: str) -> dict[str, set[Access]]:
    """What Lambda itself does with each function's role, beyond polling its event sources (which
    the managed policies SAM attaches cover): sending a failed batch to the on-failure destination."""
    resources = transformed_template(template_path)["Resources"]
    arns = _Arns(load_template(template_path), physical, region)
    used: dict[str, set[Access]] = defaultdict(set)
    for resource in resources.values():
        if resource["Type"] != "AWS::Lambda::EventSourceMapping":
            continue
        properties = resource["Properties"]
        destination = properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if destination is not None:
            target = arns.resolve(destination)
            action = "sqs:SendMessage" if target.startswith("arn:aws:sqs:") else "sns:Publish"
            used[properties["FunctionName"]["Ref"]].add(Access(action, target))
    return used
