"""What ``f2f serve`` (cli/serve.py) and the CLI's help (cli/common.py) take from uvicorn and typer beyond their
documented use, checked against the installed releases without starting a server.

``run_server`` re-implements ``uvicorn.run``: it binds the sockets with ``Config.bind_socket`` (moving
``Config.port`` for the metrics port), runs ``Server.run(sockets=...)`` or ``supervisors.Multiprocess(config,
sockets=...).run()`` and reads ``Server.started`` to exit 3 when the server never started. ``serve`` passes
its protocol class as ``Config(http=...)``. ``hide_flag_types`` wraps ``TyperOption.display_type_rich``.
"""

from __future__ import annotations

import functools
import inspect
import socket

import typer
from typer.core import TyperOption
from typer.testing import CliRunner
from uvicorn import Config, Server
from uvicorn.supervisors import Multiprocess

from f2f_cli.api.protocol import F2FHttpProtocol, HttpLimits
from f2f_cli.cli.common import hide_flag_types
from f2f_cli.settings import Settings

# Every keyword cli/serve.py gives uvicorn.Config.
SERVE_CONFIG_FIELDS = (
    "factory", "host", "port", "workers", "log_config", "log_level", "access_log", "proxy_headers",
    "server_header", "lifespan", "timeout_graceful_shutdown", "http", "ws", "timeout_keep_alive",
)


async def _app(scope: object, receive: object, send: object) -> None:  # never called
    raise AssertionError("no request is made in these tests")


def test_config_takes_every_field_serve_sets() -> None:
    accepted = inspect.signature(Config.__init__).parameters
    assert [name for name in SERVE_CONFIG_FIELDS if name not in accepted] == []


def test_config_loads_f2f_protocol_class_and_keeps_the_values_given() -> None:
    protocol = functools.partial(F2FHttpProtocol, limits=HttpLimits.from_settings(Settings.from_env({}, env_file=None)))
    config = Config(
        _app, host="127.0.0.1", port=0, workers=1, access_log=False, proxy_headers=False, server_header=False,
        lifespan="off", timeout_graceful_shutdown=7, http=protocol, ws="none", timeout_keep_alive=9,
        log_config=None,
    )
    config.load()
    assert config.http_protocol_class is protocol  # a protocol given as a callable is used as it is
    assert config.ws_protocol_class is None
    assert (config.timeout_graceful_shutdown, config.timeout_keep_alive) == (7, 9)
    assert config.server_header is False and config.access_log is False


def test_bind_socket_follows_the_port_run_server_moves() -> None:
    config = Config(_app, host="127.0.0.1", port=0, log_config=None)
    first = config.bind_socket()
    try:
        taken = first.getsockname()[1]
        config.port = 0  # run_server sets the metrics port here, binds, and puts the API port back
        second = config.bind_socket()
        try:
            assert isinstance(second, socket.socket)
            assert second.getsockname()[1] not in (0, taken)
        finally:
            second.close()
    finally:
        first.close()


def test_server_and_multiprocess_take_the_sockets_run_server_passes() -> None:
    config = Config(_app, host="127.0.0.1", port=0, workers=2, log_config=None)
    server = Server(config=config)
    assert server.started is False  # run_server exits 3 when it is still False after run()
    assert "sockets" in inspect.signature(Server.run).parameters
    supervisor_params = inspect.signature(Multiprocess.__init__).parameters
    assert list(supervisor_params)[:3] == ["self", "config", "sockets"]
    assert callable(Multiprocess.run)
    assert config.workers == 2


def test_typer_still_has_the_method_hide_flag_types_wraps() -> None:
    method = getattr(TyperOption, "display_type_rich", None)
    assert method is not None, "typer no longer has TyperOption.display_type_rich: see cli/common.py"
    assert list(inspect.signature(method).parameters)[:2] == ["self", "ctx"]


def test_help_shows_types_for_options_that_take_a_value_and_none_for_flags() -> None:
    hide_flag_types()
    hide_flag_types()  # idempotent: wrapping twice must not stack
    app = typer.Typer(rich_markup_mode="rich")

    @app.command()
    def main(
        verbose: bool = typer.Option(False, "--verbose", help="Say more."),
        count: int = typer.Option(1, help="How many."),
    ) -> None:
        """A command."""

    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.strip().startswith("│ --")}
    assert "bool" not in lines["--verbose"]
    assert "int" in lines["--count"]


def test_the_wrapper_is_in_place_after_hide_flag_types() -> None:
    hide_flag_types()
    assert getattr(TyperOption.display_type_rich, "_f2f_flags_hidden", False)
