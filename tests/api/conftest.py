from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from f2f_cli.api.app import create_app
from tests.conftest import make_settings


@pytest.fixture
def client(sql_url: str) -> Iterator[TestClient]:
    """The app on each SQL backend (SQLite file, PostgreSQL), lifespan running."""
    app = create_app(make_settings(F2F_DATABASE_URL=sql_url, F2F_MAX_INGREDIENTS="5", F2F_MAX_BODY_BYTES="2048",
                                    F2F_COOKIE_SECURE="false"))
    with TestClient(app) as c:
        yield c
