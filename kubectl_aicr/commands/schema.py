from __future__ import annotations

import click

from kubectl_aicr.schema import schema_text


@click.command("schema")
def command() -> None:
    """Print the Snapshot JSON Schema (Draft 2020-12) that every snapshot is checked against."""
    click.echo(schema_text(), nl=False)
