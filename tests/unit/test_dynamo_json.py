"""DynamoDB JSON both ways (``meterway.core.aws``): the stores' fast path gives what boto3's own
serializer and deserializer give, for every value, and fails where they fail."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer
from hypothesis import given
from hypothesis import strategies as st

from meterway.core.aws import _plain, _serializer, deserialize, serialize

names = st.text(max_size=8)
numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(lambda d: abs(d) < Decimal("1e100")),
)
leaves = st.one_of(st.none(), st.booleans(), st.text(max_size=12), numbers, st.binary(max_size=4))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(names, inner, max_size=4),
        st.frozensets(st.text(max_size=4), min_size=1, max_size=3).map(set),
    ),
    max_leaves=12,
)


def reference_serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer().serialize(value) for name, value in item.items()}


def outcome(function: Any, argument: Any) -> Any:
    try:
        return function(argument)
    except Exception as exc:  # the same failure, whichever it is
        return type(exc)


@given(st.dictionaries(names, values, max_size=6))
def test_serialize_writes_what_boto3_writes(item: dict[str, Any]):
    assert outcome(serialize, item) == outcome(reference_serialize, item)


@given(st.dictionaries(names, values, max_size=6))
def test_deserialize_reads_what_boto3_reads(item: dict[str, Any]):
    image = outcome(reference_serialize, item)
    if isinstance(image, type):
        return
    reference = {name: _plain(TypeDeserializer().deserialize(value)) for name, value in image.items()}
    assert deserialize(image) == reference


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (True, {"BOOL": True}),
        (7, {"N": "7"}),
        (Decimal("1E-7"), {"N": "0.0000001"}),
        (None, {"NULL": True}),
        ({"a": [1, "x"]}, {"M": {"a": {"L": [{"N": "1"}, {"S": "x"}]}}}),
        (b"\x00", {"B": Binary(b"\x00")}),
    ],
)
def test_the_common_types(value: Any, written: dict[str, Any]):
    assert serialize({"v": value}) == {"v": written}


@pytest.mark.parametrize("value", [1.5, Decimal("NaN"), Decimal("Infinity"), 10**40 + 1])
def test_what_dynamodb_cannot_hold_is_refused_as_boto3_refuses_it(value: Any):
    assert outcome(serialize, {"v": value}) == outcome(reference_serialize, {"v": value})
    assert isinstance(outcome(serialize, {"v": value}), type)
