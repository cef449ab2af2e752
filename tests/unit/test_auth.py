import pytest

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
