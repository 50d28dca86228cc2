"""The ``gaelp-bayes`` command line (see docs/cli.md and shared design cli.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from gaelp_bayes import __version__
from gaelp_bayes.cli import example_data, fit, plan, quickstart, report, simulate, validate

app = typer.Typer(
    name="gaelp-bayes",
    help=(
        "Bayesian identity, conversion latency, attribution and bid planning "
        "from exported journey data."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gaelp-bayes {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """gaelp-bayes: honest uncertainty from journey data."""


app.command("example-data")(example_data.example_data)
app.command("validate")(validate.validate)
app.command("fit")(fit.fit)
app.command("quickstart")(quickstart.quickstart)
app.command("report")(report.report)
app.command("simulate")(simulate.simulate)
app.command("plan")(plan.plan)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
