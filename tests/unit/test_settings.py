from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from f2f_cli.db.schema import INGREDIENT_NAME_LENGTH
from f2f_cli.errors import ConfigError
from f2f_cli.settings import (
    DEFAULT_DATABASE_URL,
    INGREDIENT_NAME_COLUMN,
    MAX_SESSION_TTL_SECONDS,
    Settings,
    mask_url,
    normalize_database_url,
    unknown_variables,
)


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
        ("F2F_REDIS_URL", "redis://[/]"),
        ("F2F_REDIS_URL", "redis://cache:99999"),
        ("F2F_REDIS_URL", "redis+sentinel://s1:26379,s2:x/mymaster"),
        ("F2F_DATABASE_URL", "postgresql://[::1"),
        ("F2F_DATABASE_URL", "[/]"),
        ("F2F_API_PREFIX", "/v1 beta"),
        ("F2F_COOKIE_SECURE", "maybe"),
        ("F2F_REDIS_FAILOVER_SECONDS", "-1"),
        ("F2F_REDIS_FAILOVER_SECONDS", "3601"),
        ("F2F_REDIS_FAILOVER_SECONDS", "nan"),
        ("F2F_REDIS_FAILOVER_SECONDS", "soon"),
        ("F2F_REDIS_SHARD_HOLD_SECONDS", "-0.1"),
        ("F2F_REDIS_SHARD_HOLD_SECONDS", "11"),
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


def numeric_settings() -> list[str]:
    """Every F2F_* variable whose value is a number (int or float, optional or not)."""
    hints = typing.get_type_hints(Settings)
    numeric: list[str] = []
    for f in dataclasses.fields(Settings):
        args = typing.get_args(hints[f.name]) or (hints[f.name],)
        if any(a in (int, float) for a in args):
            numeric.append(f.metadata["env"])
    return numeric


def test_the_walk_finds_thenumeric_settings() -> None:
    found = numeric_settings()
    for name in ("F2F_SESSION_TTL_SECONDS", "F2F_MAX_INGREDIENTS", "F2F_REDIS_COMMAND_TIMEOUT", "F2F_DB_POOL_SIZE",
                 "F2F_SESSIONS_PER_MINUTE", "F2F_METRICS_REFRESH_SECONDS"):
        assert name in found
    assert "F2F_COOKIE_SECURE" not in found  # bool is an int subclass, not a number here


@pytest.mark.parametrize("name", numeric_settings())
@pytest.mark.parametrize("value", ["999999999999", "1e300", "-1", "nan", "inf", "-inf"])
def test_every_numeric_setting_has_a_range(name: str, value: str) -> None:
    """Out-of-range numbers stop f2f at start naming the variable (never a 500 on the first request)."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value}, env_file=None)
    assert info.value.message.startswith(f"{name}=")
    assert "must be between" in info.value.message or "expected" in info.value.message


@pytest.mark.parametrize("name", numeric_settings())
def test_every_numeric_default_is_inside_its_range(name: str) -> None:
    default = Settings()
    field = next(f for f in dataclasses.fields(Settings) if f.metadata["env"] == name)
    value = getattr(default, field.name)
    if value is not None:
        assert getattr(Settings.from_env({name: repr(value)}, env_file=None), field.name) == value


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("F2F_SESSION_TTL_SECONDS", "1", str(MAX_SESSION_TTL_SECONDS)),
        ("F2F_MAX_INGREDIENT_LENGTH", "1", str(INGREDIENT_NAME_LENGTH)),
        ("F2F_SESSIONS_PER_MINUTE", "0", "1000000"),
        ("F2F_REDIS_COMMAND_TIMEOUT", "0.001", "60"),
    ],
)
def test_range_ends_are_accepted(name: str, low: str, high: str) -> None:
    Settings.from_env({name: low}, env_file=None)
    Settings.from_env({name: high}, env_file=None)


def test_ingredient_length_cannot_exceed_the_sql_column() -> None:
    assert INGREDIENT_NAME_COLUMN == INGREDIENT_NAME_LENGTH
    with pytest.raises(ConfigError):
        Settings.from_env({"F2F_MAX_INGREDIENT_LENGTH": str(INGREDIENT_NAME_LENGTH + 1)}, env_file=None)


def test_failover_seconds_default_and_off() -> None:
    assert Settings.from_env({}, env_file=None).redis_failover_seconds == 5.0
    assert Settings.from_env({"F2F_REDIS_FAILOVER_SECONDS": "0"}, env_file=None).redis_failover_seconds == 0.0


def test_shard_hold_default_and_off() -> None:
    assert Settings.from_env({}, env_file=None).redis_shard_hold_seconds == 5.0
    assert Settings.from_env({"F2F_REDIS_SHARD_HOLD_SECONDS": "0"}, env_file=None).redis_shard_hold_seconds == 0.0


def test_unknown_f2f_names_are_found_with_the_closest_known_one(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("F2F_SESSION_TTL=60\nF2F_MAX_INGREDIENTS=50\nOTHER=1\n")
    found = unknown_variables(
        {"F2F_SESSON_TTL_SECONDS": "60", "F2F_REDIS_URL": "redis://127.0.0.1:6379/0", "F2F_PORT": "9000",
         "F2F_TEST_REDIS_URL": "redis://127.0.0.1:6379/0", "F2F_ZZZ": "1", "HOME": "/root"},
        env_file=env_file,
    )
    assert [(u.name, u.source, u.closest) for u in found] == [
        ("F2F_SESSION_TTL", str(env_file), "F2F_SESSION_TTL_SECONDS"),
        ("F2F_SESSON_TTL_SECONDS", "the environment", "F2F_SESSION_TTL_SECONDS"),
        ("F2F_ZZZ", "the environment", None),
    ]
    assert found[1].message() == ("F2F_SESSON_TTL_SECONDS (set in the environment) is not an f2f setting and is "
                                  "ignored; did you mean F2F_SESSION_TTL_SECONDS?")
    assert unknown_variables({name: "1" for name in Settings.known_variables()}, env_file=None) == []
