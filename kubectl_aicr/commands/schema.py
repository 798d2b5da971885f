from __future__ import annotations

import click

from kubectl_aicr import formats
from kubectl_aicr.schema import schema_text


@click.command("schema")
@click.option(
    "--api-version",
    "api_version",
    type=click.Choice(formats.SUPPORTED),
    default=formats.V1ALPHA1,
    show_default=True,
    help="Which snapshot version's schema to print.",
)
def command(api_version: str) -> None:
    """Print the Snapshot JSON Schema (Draft 2020-12) that every snapshot of that apiVersion is checked against."""
    click.echo(schema_text(api_version), nl=False)
