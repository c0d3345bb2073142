"""``f2f smoke``: one session's life against a running f2f (the chart's ``helm test`` runs it)."""

from __future__ import annotations

from typing import Annotated

import typer

from f2f_cli.cli.common import JSON_HELP, cli_errors, print_json, stdout, styled
from f2f_cli.ops.smoke import SmokeStep, run_smoke


@cli_errors
def smoke(
    base_url: Annotated[str, typer.Argument(help="Where f2f answers, e.g. http://f2f.shop.svc:80.")],
    prefix: Annotated[str, typer.Option(help="API prefix (F2F_API_PREFIX of the server).",
                                        envvar="F2F_API_PREFIX")] = "/v1",
    timeout: Annotated[float, typer.Option(help="Seconds each request may take.", min=0.1, max=300)] = 10.0,
    json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Check a running f2f end to end: create a session, add an ingredient, read it back,
    delete the session, then /readyz.

    Exit 0 when every step answers as it should, 1 at the first that does not (named, with
    the answer), 2 for a bad URL. The session is deleted even when a later step fails.

    Examples:

      f2f smoke http://127.0.0.1:8000

      f2f smoke http://f2f.shop.svc:80 --json
    """

    def show(step: SmokeStep) -> None:
        if not json:
            stdout().print(styled(("ok", "green"), f" {step.name}: {step.status} in {step.milliseconds:g} ms"))

    steps = run_smoke(base_url, prefix=prefix, timeout=timeout, on_step=show)
    if json:
        print_json({"ok": True, "steps": [{"name": s.name, "status": s.status, "ms": s.milliseconds}
                                          for s in steps]})
