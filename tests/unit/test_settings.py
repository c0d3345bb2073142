from __future__ import annotations

import pytest

from f2f_cli.errors import ConfigError
from f2f_cli.settings import DEFAULT_DATABASE_URL, Settings, mask_url, normalize_database_url


def test_defaults_are_the_embedded_mode() -> None:
    s = Settings.from_env({}, env_file=None)
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.redis_url is None
    assert (s.session_ttl_seconds, s.max_ingredients, s.api_prefix) == (86400, 100, "/v1")
    assert s.log_format == "console" and s.phase_poll_seconds == 2.0
    assert s.embedded and not s.secure_cookies


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://u:p@db:5432/f2f", "postgresql+psycopg://u:p@db:5432/f2f"),
        ("postgresql://u@db/f2f?sslmode=require", "postgresql+psycopg://u@db/f2f?sslmode=require"),
        ("postgresql+psycopg://u@db/f2f", "postgresql+psycopg://u@db/f2f"),
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
    ],
)
def test_database_urls_are_normalised(raw: str, expected: str) -> None:
    assert normalize_database_url(raw) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("F2F_MAX_INGREDIENTS", "many"),
        ("F2F_MAX_INGREDIENTS", "0"),
        ("F2F_SESSION_TTL_SECONDS", "-5"),
        ("F2F_PHASE_POLL_SECONDS", "nan"),
        ("F2F_LOG_FORMAT", "xml"),
        ("F2F_DATABASE_URL", "mysql://db/x"),
        ("F2F_DATABASE_URL", "not a url"),
        ("F2F_REDIS_URL", "http://cache:6379"),
        ("F2F_API_PREFIX", "/v1 beta"),
        ("F2F_COOKIE_SECURE", "maybe"),
        ("F2F_REDIS_FAILOVER_SECONDS", "-1"),
        ("F2F_REDIS_FAILOVER_SECONDS", "3601"),
        ("F2F_REDIS_FAILOVER_SECONDS", "nan"),
        ("F2F_REDIS_FAILOVER_SECONDS", "soon"),
    ],
)
def test_invalid_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value}, env_file=None)
    assert info.value.message.startswith(f"{name}=")
    assert "\n" not in info.value.message


def test_password_is_masked_in_errors_and_output() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"F2F_DATABASE_URL": "mysql://u:hunter2@db/x"}, env_file=None)
    assert "hunter2" not in info.value.message
    assert mask_url("postgresql+psycopg://app:s3cret@db:5432/f2f") == "postgresql+psycopg://app:***@db:5432/f2f"


def test_env_file_is_read_and_environment_wins(tmp_path: pytest.TempPathFactory) -> None:
    env_file = tmp_path / ".env"  # type: ignore[operator]
    env_file.write_text("F2F_MAX_INGREDIENTS=7\nF2F_API_PREFIX=/api\n")
    s = Settings.from_env({"F2F_API_PREFIX": "/v2"}, env_file=env_file)
    assert s.max_ingredients == 7
    assert s.api_prefix == "/v2"


def test_cookies_are_secure_outside_embedded_mode() -> None:
    assert Settings.from_env({"F2F_DATABASE_URL": "postgresql://db/x"}, env_file=None).secure_cookies
    assert not Settings.from_env(
        {"F2F_DATABASE_URL": "postgresql://db/x", "F2F_COOKIE_SECURE": "false"}, env_file=None
    ).secure_cookies


def test_failover_seconds_default_and_off() -> None:
    assert Settings.from_env({}, env_file=None).redis_failover_seconds == 5.0
    assert Settings.from_env({"F2F_REDIS_FAILOVER_SECONDS": "0"}, env_file=None).redis_failover_seconds == 0.0
