"""Opt-in traces without a server: what turns them on, what is refused, what stays unimported when off."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from f2f_cli import tracing
from f2f_cli.errors import EXIT_USAGE, ConfigError
from f2f_cli.logs import AccessLog

ROOT = Path(__file__).resolve().parents[2]


def _env_without_otel(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "F2F_"))}
    return env | {"PYTHONPATH": str(ROOT)} | extra


@pytest.mark.parametrize(
    ("env", "exporter"),
    [
        ({}, "none"),  # unlike the SDK's default: nothing said, nothing traced
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "none"),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "none"),
    ],
)
def test_the_standard_variables_turn_tracing_on(env: dict[str, str], exporter: str) -> None:
    assert tracing.exporter_of(env) == exporter
    assert tracing.requested(env) is (exporter != "none")
    assert tracing.check(env) is (exporter != "none")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "traceidratio",
          "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
          "OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
         "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ],
)
def test_values_the_sdk_would_ignore_are_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        tracing.check(env)
    assert named in caught.value.message
    assert caught.value.exit_code == EXIT_USAGE


def test_a_ratio_sampler_with_a_sane_ratio_is_accepted() -> None:
    assert tracing.check({"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                          "OTEL_TRACES_SAMPLER_ARG": "0.25"})


def test_off_the_helpers_are_no_ops() -> None:
    assert tracing.current() is None
    with tracing.span("worker.batch", **{"f2f.worker.entries": 3}) as span:
        span.set_attribute("f2f.worker.lag_ms", 4)
    assert tracing.trace_id() is None
    tracing.name_scripts({"0" * 40: "write"})


# Every f2f module but the OpenTelemetry side itself, an app built, and a CLI command run.
_LOAD_EVERYTHING = """
import pkgutil, importlib
import f2f_cli
for info in pkgutil.walk_packages(f2f_cli.__path__, "f2f_cli."):
    if info.name not in ("f2f_cli.otel", "f2f_cli.__main__") and not info.name.startswith("f2f_cli.migrations"):
        importlib.import_module(info.name)
from f2f_cli.api.app import create_app
from f2f_cli.settings import Settings
create_app(Settings.from_env({}, env_file=None))
from f2f_cli.cli.main import app
from typer.testing import CliRunner
result = CliRunner().invoke(app, ["migrate", "status", "--help"])
assert result.exit_code == 0, result.output
"""


def _run(code: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=_env_without_otel(), cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_off_no_f2f_module_imports_opentelemetry(tmp_path: Path) -> None:
    # redis-py 8 imports opentelemetry for its own optional metrics when it is installed (as in this
    # lock); what f2f must not do is import it itself: an import hook names each importer.
    code = """
import sys
importers = set()
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            frame = sys._getframe(1)
            while frame is not None and frame.f_globals.get("__name__", "").startswith(("importlib", "_frozen")):
                frame = frame.f_back
            importers.add(frame.f_globals.get("__name__", "?") if frame is not None else "?")
        return None
sys.meta_path.insert(0, Spy())
""" + _LOAD_EVERYTHING + """
print(sorted(name for name in importers if name.startswith("f2f_cli")))
"""
    assert _run(code, tmp_path) == "[]"


def test_without_the_extra_the_app_and_the_cli_still_load(tmp_path: Path) -> None:
    code = "import sys; sys.modules['opentelemetry'] = None\n" + _LOAD_EVERYTHING + "print('loaded')"
    assert _run(code, tmp_path) == "loaded"


def test_on_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    # The extra is in the dev lock, so "not installed" is made by blocking the import in a fresh process.
    code = ("import sys; sys.modules['opentelemetry'] = None; sys.argv = ['f2f', 'serve', '--port', '1']; "
            "from f2f_cli.cli.main import main; main()")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env=_env_without_otel(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318"),
    )
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "pip install 'f2f[otel]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert "serving" not in done.stdout


def test_the_access_line_carries_the_trace_id(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    access = AccessLog("json", stream=out)
    with caplog.at_level(logging.INFO, logger="f2f.access"):
        access.record("rid-1", "POST", "/v1/sessions", 201, 0.002, "postgres", "127.0.0.1", "ab" * 16)
        access.record("rid-2", "GET", "/healthz", 200, 0.001, "postgres", None)
    access.flush()
    traced, untraced = (json.loads(line) for line in out.getvalue().splitlines())
    assert traced["trace_id"] == "ab" * 16
    assert "trace_id" not in untraced
