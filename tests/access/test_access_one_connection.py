"""No piece of work holds two store connections at once.

A task that holds a connection and waits for a second one waits for ever once the pool
is busy (SQLite's pool is one connection plus a few for bursts).  Here the pool is one
connection and nothing more, with a short wait: grant, emergency, view and catalogue
flows from the other modules run on it, and any nested acquisition fails them with a
pool time-out instead of passing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import camrelay.store.store as store_mod
from tests.access.test_access_emergency import (
    test_radius_opens_at_once_for_two_hours as test_emergency_on_one_connection,
)
from tests.access.test_access_emergency import (
    test_roles_and_confirmation as test_emergency_roles_on_one_connection,
)
from tests.access.test_access_grants import (
    test_category_and_subtree_scope_cover_later_cameras as test_scopes_on_one_connection,
)
from tests.access.test_access_grants import (
    test_request_approve_watch_and_log as test_grant_flow_on_one_connection,
)
from tests.access.test_access_journal import (
    test_crash_recovery_closes_at_last_heartbeat as test_recovery_on_one_connection,
)
from tests.catalog.test_catalog_api import (
    test_units_tree_and_cameras as test_catalog_on_one_connection,
)

__all__ = ["test_catalog_on_one_connection", "test_emergency_on_one_connection",
           "test_emergency_roles_on_one_connection", "test_grant_flow_on_one_connection",
           "test_recovery_on_one_connection", "test_scopes_on_one_connection"]


@pytest.fixture(autouse=True)
def one_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(store_mod, "SQLITE_POOL_SIZE", 1)
    monkeypatch.setattr(store_mod, "SQLITE_MAX_OVERFLOW", 0)
    monkeypatch.setattr(store_mod, "SQLITE_POOL_TIMEOUT", 3.0)
    yield


@pytest.fixture
def backend() -> str:
    return "sqlite"
