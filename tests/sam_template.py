"""template.yaml as CloudFormation sees it on deploy: after SAM's transform."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any
from unittest import mock

from samtranslator.translator.transform import transform

from devstack.aws_resources import load_template


class _NoManagedPolicies:
    """ManagedPolicyLoader stand-in: the template names no managed policy, so nothing to look up in IAM."""

    def load(self) -> dict[str, str]:
        return {}


def transformed_template(template_path: Path) -> dict[str, Any]:
    """The CloudFormation template SAM makes of ``template_path``, as `sam package` + deploy would:
    code locations become S3 ones (SAM only accepts those; `sam package` uploads them there)."""
    packaged = copy.deepcopy(load_template(template_path))
    for resource in [packaged.get("Globals", {}).get("Function", {}), *packaged["Resources"].values()]:
        properties = resource.get("Properties", resource)
        for location in ("CodeUri", "ContentUri"):
            if location in properties:
                properties[location] = f"s3://artifacts/{location.lower()}.zip"
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}):
        return transform(packaged, {}, _NoManagedPolicies())
