from __future__ import annotations

import platform
import sys

import click

from kubectl_aicr import __version__
from kubectl_aicr.deploy.spec import DEFAULT_IMAGE


@click.command("version")
@click.option("--short", is_flag=True, help="Print only the version number.")
def command(short: bool) -> None:
    """Print the plugin version, the default agent image and the Python running it."""
    if short:
        click.echo(__version__)
        return
    click.echo(f"kubectl-aicr {__version__}")
    click.echo(f"agent image: {DEFAULT_IMAGE}")
    click.echo(f"python: {platform.python_version()} ({sys.executable})")
