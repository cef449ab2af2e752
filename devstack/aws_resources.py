"""Create template.yaml's DynamoDB tables, SQS queues and S3 buckets on moto (or any AWS endpoint).

The local stack and the integration tests get their AWS resources from the template's own
resource definitions, translated property by property into boto3 calls, so the local schema
cannot drift from the deployed one. Nothing here knows a table's keys or a queue's settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
BUCKET = "AWS::S3::Bucket"
CREATED_TYPES = (TABLE, QUEUE, BUCKET)
# AWS::S3::BucketPolicy is deliberately not applied: the export bucket's only statement denies
# requests without TLS, and the local endpoint is plain HTTP. moto would also deny every object
# request with it, since it evaluates a Deny without its aws:SecureTransport condition.

# The app's environment variable for each resource, as the template's functions set them.
APP_ENV_VARS = {
    "MW_KEYS_TABLE": "KeysTable",
    "MW_LEDGER_TABLE": "LedgerTable",
    "MW_ROLLUPS_TABLE": "RollupsTable",
    "MW_SPILL_QUEUE_URL": "LedgerSpillQueue",
    "MW_EXPORT_BUCKET": "ExportBucket",
    "MW_EXPORT_JOBS_TABLE": "ExportJobsTable",
    "MW_EXPORT_QUEUE_URL": "ExportQueue",
}

# CloudFormation property -> SQS attribute; every SQS attribute value is a string.
_QUEUE_ATTRIBUTES = {
    "ContentBasedDeduplication": "ContentBasedDeduplication",
    "DeduplicationScope": "DeduplicationScope",
    "DelaySeconds": "DelaySeconds",
    "FifoQueue": "FifoQueue",
    "FifoThroughputLimit": "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId": "KmsMasterKeyId",
    "MaximumMessageSize": "MaximumMessageSize",
    "MessageRetentionPeriod": "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy": "RedriveAllowPolicy",
    "RedrivePolicy": "RedrivePolicy",
    "SqsManagedSseEnabled": "SqsManagedSseEnabled",
    "VisibilityTimeout": "VisibilityTimeout",
}
# GSI/LSI keys CreateTable accepts (the CloudFormation shape also allows e.g. ContributorInsights).
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Bucket properties that have no local meaning: the local name is `f"{prefix}-{logical_id}"`.
_BUCKET_IGNORED = frozenset({"BucketName"})
# Lifecycle rule properties translated by _lifecycle_rule; any other one is an error, not a silent drop.
_LIFECYCLE_RULE_KEYS = frozenset(
    {"Id", "Status", "Prefix", "ExpirationInDays", "ExpirationDate", "AbortIncompleteMultipartUpload"}
)


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short tags; a subclass so the global loader is untouched."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    value: Any
    if tag_suffix == "GetAtt" and isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node).split(".", 1)
    elif isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{tag_suffix}", node.start_mark)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(template_path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template, turning short tags (`!Ref`, `!GetAtt X.Arn`,
    `!Sub`) into their long JSON forms (`{"Ref": ...}`, `{"Fn::GetAtt": [X, Arn]}`, ...)."""
    loaded: dict[str, Any] = yaml.load(template_path.read_text(), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader subclass)
    return loaded


@dataclass
class _Created:
    physical_id: str  # table name, queue URL or bucket name
    attributes: dict[str, str] = field(default_factory=dict)


def _referenced_ids(value: Any) -> set[str]:
    """Logical ids a property value refers to through Ref, GetAtt or Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _referenced_ids(item)
    elif isinstance(value, dict):
        if set(value) == {"Ref"}:
            found.add(value["Ref"])
        elif set(value) == {"Fn::GetAtt"}:
            found.add(value["Fn::GetAtt"][0])
        elif set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            found |= {ref.split(".", 1)[0] for ref in re.findall(r"\$\{([^!}][^}]*)\}", text)}
        for item in value.values():
            found |= _referenced_ids(item)
    return found


def _creation_order(resources: Mapping[str, Any]) -> list[str]:
    """The creatable resources, each after the ones it references (a DLQ before its queue)."""
    wanted = [lid for lid, res in resources.items() if res.get("Type") in CREATED_TYPES]
    order: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in order:
            return
        if logical_id in visiting:
            raise ValueError(f"circular reference through {logical_id}")
        visiting.add(logical_id)
        resource = resources[logical_id]
        depends_on = resource.get("DependsOn", [])
        refs = _referenced_ids(resource.get("Properties", {})) | set(
            [depends_on] if isinstance(depends_on, str) else depends_on
        )
        for ref in sorted(refs & set(wanted)):
            visit(ref)
        visiting.discard(logical_id)
        order.append(logical_id)

    for logical_id in wanted:
        visit(logical_id)
    return order


class _Resolver:
    """Resolves the intrinsics a table/queue/bucket definition or a function's environment may use,
    against what was created and the parameters (their defaults, unless overridden)."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        prefix: str,
        region: str,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self._parameters = {
            name: str(spec["Default"]) for name, spec in template.get("Parameters", {}).items() if "Default" in spec
        } | dict(parameters or {})
        self._conditions: Mapping[str, Any] = template.get("Conditions", {})
        self._pseudo = {
            "AWS::StackName": prefix,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::AccountId": "123456789012",  # moto's default account
        }
        self.created: dict[str, _Created] = {}

    def _ref(self, name: str) -> str:
        if name in self.created:
            return self.created[name].physical_id
        if name in self._parameters:
            return self._parameters[name]
        if name in self._pseudo:
            return self._pseudo[name]
        raise ValueError(f"cannot resolve Ref {name}: not a parameter with a default or a created resource")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self.created[logical_id].attributes[attribute]
        except KeyError:
            raise ValueError(f"cannot resolve GetAtt {logical_id}.{attribute}") from None

    def _sub(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            ref = match.group(1)
            if ref.startswith("!"):
                return "${" + ref[1:] + "}"
            logical_id, _, attribute = ref.partition(".")
            return self._get_att(logical_id, attribute) if attribute else self._ref(ref)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        """Return `value` with every Ref, Fn::GetAtt, Fn::Sub, Fn::Join and Fn::If replaced by its local value."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                return self._get_att(arg[0], arg[1])
            if key == "Fn::Sub" and isinstance(arg, str):
                return self._sub(arg)
            if key == "Fn::Join":
                delimiter, items = arg
                joined = self.resolve(items)
                # A CommaDelimitedList parameter's Ref is its default, kept here as the text it was.
                parts = joined.split(",") if isinstance(joined, str) else joined
                return delimiter.join(str(part) for part in parts)
            if key == "Fn::If":
                condition, if_true, if_false = arg
                return self.resolve(if_true if self._holds({"Condition": condition}) else if_false)
            if key.startswith("Fn::") or key == "Condition":
                raise ValueError(f"unsupported intrinsic {key} in a locally created resource")
        return {key: self.resolve(item) for key, item in value.items()}

    def _holds(self, condition: Mapping[str, Any]) -> bool:
        """A condition of the template's Conditions section (or one inline), evaluated."""
        ((key, arg),) = condition.items()
        if key == "Condition":
            return self._holds(self._conditions[arg])
        if key == "Fn::Equals":
            left, right = (str(self.resolve(side)) for side in arg)
            return left == right
        if key == "Fn::Not":
            return not self._holds(arg[0])
        if key == "Fn::And":
            return all(self._holds(part) for part in arg)
        if key == "Fn::Or":
            return any(self._holds(part) for part in arg)
        raise ValueError(f"unsupported condition function {key}")


def _table_kwargs(name: str, props: Mapping[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    for key in ("ProvisionedThroughput", "Tags", "TableClass", "DeletionProtectionEnabled"):
        if key in props:
            kwargs[key] = props[key]
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in props:
            kwargs[key] = [{k: v for k, v in index.items() if k in _INDEX_KEYS} for index in props[key]]
    if "StreamSpecification" in props:
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": props["StreamSpecification"]["StreamViewType"],
        }
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        kwargs["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled", False))} | {
            k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse
        }
    return kwargs


def _create_table(client: Any, name: str, props: Mapping[str, Any]) -> _Created:
    try:
        client.create_table(**_table_kwargs(name, props))
    except client.exceptions.ResourceInUseException:
        # Already there: leave it as is (its TTL and backups were set when it was created).
        pass
    else:
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        if "TimeToLiveSpecification" in props:
            ttl = props["TimeToLiveSpecification"]
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "Enabled": bool(ttl["Enabled"]),
                    "AttributeName": ttl["AttributeName"],
                },
            )
        pitr = props.get("PointInTimeRecoverySpecification", {})
        if pitr.get("PointInTimeRecoveryEnabled"):
            client.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
    table = client.describe_table(TableName=name)["Table"]
    attributes = {"Arn": table["TableArn"]}
    if "LatestStreamArn" in table:
        attributes["StreamArn"] = table["LatestStreamArn"]
    return _Created(name, attributes)


def _queue_attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _create_queue(client: Any, name: str, props: Mapping[str, Any]) -> _Created:
    if props.get("FifoQueue") in (True, "true"):
        name += ".fifo"
    try:
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
    except client.exceptions.QueueDoesNotExist:
        attributes = {
            sqs_name: _queue_attribute(props[cfn_name])
            for cfn_name, sqs_name in _QUEUE_ATTRIBUTES.items()
            if cfn_name in props
        }
        tags = {tag["Key"]: tag["Value"] for tag in props.get("Tags", [])}
        url = client.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return _Created(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation `LifecycleConfiguration.Rules[]` entry in the S3 API's shape."""
    unknown = sorted(set(rule) - _LIFECYCLE_RULE_KEYS)
    if unknown:
        raise ValueError(f"lifecycle rule properties not translated for the local stack: {', '.join(unknown)}")
    translated: dict[str, Any] = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "Id" in rule:
        translated["ID"] = rule["Id"]
    if "ExpirationInDays" in rule:
        translated["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    elif "ExpirationDate" in rule:
        translated["Expiration"] = {"Date": rule["ExpirationDate"]}
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        translated["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(days)}
    return translated


def _bucket_calls(name: str, props: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The S3 API calls (method, kwargs) that give a new bucket its template configuration."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for key, value in props.items():
        if key in _BUCKET_IGNORED:
            continue
        if key == "PublicAccessBlockConfiguration":
            # Same four flags in both shapes.
            calls.append(("put_public_access_block", {"PublicAccessBlockConfiguration": dict(value)}))
        elif key == "OwnershipControls":
            calls.append(("put_bucket_ownership_controls", {"OwnershipControls": {"Rules": value["Rules"]}}))
        elif key == "BucketEncryption":
            rules = [
                {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                | ({"BucketKeyEnabled": bool(rule["BucketKeyEnabled"])} if "BucketKeyEnabled" in rule else {})
                for rule in value["ServerSideEncryptionConfiguration"]
            ]
            calls.append(("put_bucket_encryption", {"ServerSideEncryptionConfiguration": {"Rules": rules}}))
        elif key == "LifecycleConfiguration":
            rules = [_lifecycle_rule(rule) for rule in value["Rules"]]
            calls.append(("put_bucket_lifecycle_configuration", {"LifecycleConfiguration": {"Rules": rules}}))
        elif key == "VersioningConfiguration":
            calls.append(("put_bucket_versioning", {"VersioningConfiguration": {"Status": value["Status"]}}))
        elif key == "Tags":
            calls.append(("put_bucket_tagging", {"Tagging": {"TagSet": value}}))
        else:
            # Dropping it would make the local bucket differ from the deployed one without a word.
            raise ValueError(f"bucket property {key} is not translated for the local stack")
    return [(method, {"Bucket": name} | kwargs) for method, kwargs in calls]


def _create_bucket(client: Any, name: str, props: Mapping[str, Any], region: str) -> _Created:
    if not _BUCKET_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')")
    # Translated before anything is created, so an untranslatable template leaves no half-made bucket.
    calls = _bucket_calls(name, props)
    try:
        client.head_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
        # us-east-1 is the one region that rejects an explicit LocationConstraint.
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        client.create_bucket(Bucket=name, **location)
        for method, kwargs in calls:
            getattr(client, method)(**kwargs)
    return _Created(name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"})


def create_resources(
    template_path: Path,
    *,
    prefix: str,
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
) -> dict[str, str]:
    """Create every DynamoDB table, SQS queue and S3 bucket that `template_path` defines.

    Each resource is built from its own template Properties and named `f"{prefix}-{LogicalId}"`
    (lowercased for buckets, `.fifo` appended for FIFO queues). A resource that already exists
    is left as it is, so calling this again is harmless. Works in-process under `moto.mock_aws`
    (`endpoint_url=None`) and against a moto server or other endpoint. The session must have a
    region. Returns `{logical_id: table name | queue URL | bucket name}`.
    """
    session = session or boto3.session.Session()
    region = session.region_name
    if not region:
        raise ValueError("the boto3 session has no region; set AWS_DEFAULT_REGION or pass a session")
    template = load_template(template_path)
    resources: dict[str, Any] = template.get("Resources", {})
    resolver = _Resolver(template, prefix=prefix, region=region)

    order = _creation_order(resources)
    types = {resources[logical_id]["Type"] for logical_id in order}
    # Clients only for the services the template uses; local endpoints serve buckets by path.
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url) if TABLE in types else None
    sqs = session.client("sqs", endpoint_url=endpoint_url) if QUEUE in types else None
    s3 = (
        session.client("s3", endpoint_url=endpoint_url, config=Config(s3={"addressing_style": "path"}))
        if BUCKET in types
        else None
    )

    for logical_id in order:
        resource_type = resources[logical_id]["Type"]
        props = resolver.resolve(resources[logical_id].get("Properties", {}))
        name = f"{prefix}-{logical_id}"
        if resource_type == TABLE:
            created = _create_table(dynamodb, name, props)
        elif resource_type == QUEUE:
            created = _create_queue(sqs, name, props)
        else:
            created = _create_bucket(s3, name.lower(), props, region)
        resolver.created[logical_id] = created
    return {logical_id: created.physical_id for logical_id, created in resolver.created.items()}


def function_environment(
    template_path: Path,
    function_id: str,
    *,
    resources: Mapping[str, str],
    prefix: str,
    region: str,
    parameters: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment variables `template_path` sets for `function_id` (the Globals' and its own),
    each resolved: a Ref to a resource is its entry in `resources` (`{logical_id: physical id}`, as
    `create_resources` returns it, plus any resource made otherwise), a Ref to a parameter is its
    value in `parameters` or its default, and conditions are evaluated with those."""
    template = load_template(template_path)
    resolver = _Resolver(template, prefix=prefix, region=region, parameters=parameters)
    resolver.created = {logical_id: _Created(physical_id) for logical_id, physical_id in resources.items()}
    variables = {
        **_environment_variables(template.get("Globals", {}).get("Function", {})),
        **_environment_variables(template["Resources"][function_id]["Properties"]),
    }
    return {name: str(resolver.resolve(value)) for name, value in variables.items()}


def _environment_variables(function_properties: Mapping[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = function_properties.get("Environment", {}).get("Variables", {})
    return variables


def env_for(resources: Mapping[str, str]) -> dict[str, str]:
    """Map `create_resources`' result to the app's environment variables (`MW_KEYS_TABLE`, ...)."""
    missing = sorted(lid for lid in APP_ENV_VARS.values() if lid not in resources)
    if missing:
        raise KeyError(f"template resources missing for the app's environment: {', '.join(missing)}")
    return {env_var: resources[logical_id] for env_var, logical_id in APP_ENV_VARS.items()}
