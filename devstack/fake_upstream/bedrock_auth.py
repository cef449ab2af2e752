"""AWS Signature Version 4, as Bedrock checks it.

Every request must carry ``Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/bedrock/
aws4_request, SignedHeaders=..., Signature=...`` and ``X-Amz-Date``. When the fake is configured
with a secret access key, the signature is also recomputed with botocore's own signer over the
request as received, so a request signed with another secret, or altered after signing, fails.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.requests import Request

SERVICE = "bedrock"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[^/,\s]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")


class SignatureRefused(Exception):
    """The request is not signed as Bedrock requires; ``error_type`` is AWS's name for why."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class Signature:
    """The parts of a SigV4 ``Authorization`` header."""

    access_key: str
    date: str
    region: str
    signed_headers: list[str]
    signature: str


UNRECOGNIZED_CLIENT = "The security token included in the request is invalid."


def parse_signature(request: Request) -> Signature:
    """The request's SigV4 signature; raises ``SignatureRefused`` when it has none fit for Bedrock."""
    match = _AUTHORIZATION.fullmatch(request.headers.get("authorization", "").strip())
    amz_date = request.headers.get("x-amz-date", "")
    if match is None or not _AMZ_DATE.fullmatch(amz_date):
        raise SignatureRefused("UnrecognizedClientException", UNRECOGNIZED_CLIENT)
    if match["service"] != SERVICE:
        message = f"Credential should be scoped to correct service: '{SERVICE}'."
        raise SignatureRefused("InvalidSignatureException", message)
    if match["date"] != amz_date[:8]:
        message = f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{match['date']}' != '{amz_date[:8]}'."
        raise SignatureRefused("InvalidSignatureException", message)
    return Signature(match["key"], amz_date, match["region"], match["signed"].split(";"), match["signature"])


def expected_signature(request: Request, body: bytes, signature: Signature, secret_key: str) -> str:
    """The signature botocore computes for this request, as received, with ``secret_key``."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = f"?{request.url.query}" if request.url.query else ""
    url = f"{request.url.scheme}://{request.headers.get('host', '')}{raw_path.decode()}{query}"
    headers = {name: request.headers.get(name, "") for name in signature.signed_headers}
    signed = AWSRequest(method=request.method, url=url, headers=headers, data=body)
    signed.context["timestamp"] = signature.date
    signer = SigV4Auth(Credentials(signature.access_key, secret_key), SERVICE, signature.region)
    return str(signer.signature(signer.string_to_sign(signed, signer.canonical_request(signed)), signed))


def check_signature(request: Request, body: bytes, secret_key: str | None) -> str:
    """The access key id of a well signed request; raises ``SignatureRefused`` otherwise."""
    signature = parse_signature(request)
    if secret_key is not None:
        expected = expected_signature(request, body, signature, secret_key)
        if not hmac.compare_digest(expected, signature.signature):
            message = (
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
            )
            raise SignatureRefused("InvalidSignatureException", message)
    return signature.access_key
