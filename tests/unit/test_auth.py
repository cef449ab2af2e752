import pytest
from starlette.datastructures import Headers

from meterway.accounts.dal.key_store import CachedKeyStore
from meterway.accounts.logic.auth import authenticate
from meterway.accounts.logic.manage_keys import create_key
from meterway.core.errors import AuthenticationFailed, PermissionDenied
from tests.fakes import InMemoryKeyStore


@pytest.fixture
def store():
    return InMemoryKeyStore()


def test_bearer_and_x_api_key_both_authenticate(store):
    key, secret = create_key(store, "acct", "ci")
    assert authenticate({"authorization": f"Bearer {secret}"}, store, kind="api") == key
    assert authenticate({"x-api-key": secret}, store, kind="api") == key


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer "}, {"authorization": "Basic abc"}, {"x-api-key": "mw-live-nope"}]
)
def test_missing_or_unknown_keys_fail_closed(store, headers):
    with pytest.raises(AuthenticationFailed):
        authenticate(headers, store, kind="api")


@pytest.mark.parametrize(("kind", "named"), [("api", "API key"), ("admin", "admin key")])
def test_an_unknown_key_is_named_as_the_caller_knows_it(store, kind, named):
    with pytest.raises(AuthenticationFailed, match=f"^Invalid or disabled {named}.$"):
        authenticate({"authorization": "Bearer mw-nope"}, store, kind=kind)


def test_the_store_holds_only_the_hash(store):
    _, secret = create_key(store, "acct", "ci")
    assert secret not in store.by_hash
    assert all(secret not in repr(key) for key in store.by_hash.values())


def test_an_admin_key_cannot_call_the_inference_api_and_an_api_key_cannot_manage(store):
    _, admin = create_key(store, "acct", "ops", kind="admin")
    _, api = create_key(store, "acct", "ci")
    with pytest.raises(PermissionDenied):
        authenticate({"authorization": f"Bearer {admin}"}, store, kind="api")
    with pytest.raises(PermissionDenied):
        authenticate({"authorization": f"Bearer {api}"}, store, kind="admin")


def test_the_cache_answers_repeated_lookups_without_the_store(store):
    _, secret = create_key(store, "acct", "ci")
    cached = CachedKeyStore(store, ttl_seconds=60)
    for _ in range(5):
        authenticate({"x-api-key": secret}, cached, kind="api")
    assert store.lookups == 1


def starlette_headers(*pairs: tuple[str, str]) -> Headers:
    """Headers as the proxy's app reads them (ASGI lowers the names), repeats kept."""
    return Headers(raw=[(name.lower().encode(), value.encode()) for name, value in pairs])


def rest_event_headers(*pairs: tuple[str, str]) -> dict[str, list[str]]:
    """``multiValueHeaders`` of an API Gateway REST event, as the management API reads them."""
    lists: dict[str, list[str]] = {}
    for name, value in pairs:
        lists.setdefault(name, []).append(value)
    return lists


SHAPES = [starlette_headers, rest_event_headers]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "sent",
    [
        [("Authorization", "Bearer {a}"), ("Authorization", "Bearer {b}")],
        [("Authorization", "Bearer {a}"), ("authorization", "Bearer {a}")],
        [("x-api-key", "{a}"), ("X-Api-Key", "{b}")],
        [("x-api-key", "{a}"), ("x-api-key", "{a}")],
        [("Authorization", "Bearer {a}"), ("x-api-key", "{b}")],
        [("Authorization", "Bearer {b}"), ("x-api-key", "{a}")],
    ],
)
def test_a_request_presenting_more_than_one_credential_is_refused_whatever_its_order(store, shape, sent):
    # Given two usable keys, and a request that carries two credentials (repeated or conflicting)
    _, a = create_key(store, "acct", "a")
    _, b = create_key(store, "acct", "b")
    headers = shape(*[(name, value.format(a=a, b=b)) for name, value in sent])
    # Then it is a 401, whichever of them a first-wins or last-wins reader would have taken
    with pytest.raises(AuthenticationFailed, match="one API key") as refused:
        authenticate(headers, store, kind="api")
    assert refused.value.code == "ambiguous_api_key"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "sent",
    [
        [("Authorization", "Bearer {a}")],
        [("X-Api-Key", "{a}")],
        [("Authorization", "Bearer {a}"), ("x-api-key", "{a}")],
        [("Authorization", "Basic dXNlcjpwdw=="), ("x-api-key", "{a}")],
    ],
)
def test_one_credential_is_accepted_even_sent_in_both_headers(store, shape, sent):
    key, a = create_key(store, "acct", "a")
    assert authenticate(shape(*[(name, value.format(a=a)) for name, value in sent]), store, kind="api") == key


def test_an_event_without_multi_value_headers_is_read_from_its_headers(store):
    key, a = create_key(store, "acct", "a")
    assert authenticate({"Authorization": f"Bearer {a}"}, store, kind="api") == key
