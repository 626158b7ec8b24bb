"""The ``diva`` command. Each sub-module owns its verbs and registers them here.

Heavy imports (torch, FastAPI, Celery) happen inside the commands, so ``diva --help`` is instant.
"""

from __future__ import annotations

import typer

from cli import eval as eval_cli
from cli import export as export_cli
from cli import heads as heads_cli
from cli import jobs as jobs_cli
from cli import lab as lab_cli
from cli import retention as retention_cli
from cli import serve as serve_cli
from cli import train as train_cli

app = typer.Typer(
    name="diva",
    help="Make CLIP-style vision encoders see better with diffusion feedback, and serve them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command()
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as _version

    typer.echo(_version("diva-serve"))


for module in (train_cli, eval_cli, lab_cli, serve_cli, jobs_cli, export_cli, retention_cli, heads_cli):
    module.register(app)


if __name__ == "__main__":
    app()
