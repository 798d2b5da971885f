"""The entry point (:func:`kubectl_aicr.cli.main`), the one place where errors and return values become exit codes,
and the root group: every sub-command's ``--help`` runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubectl_aicr import errors
from kubectl_aicr.cli import main
from kubectl_aicr.group import COMMANDS, HIDDEN, cli

ROOT = Path(__file__).resolve().parents[2]

#: A sub-command module as the group imports one: ``command`` returns the exit code named by its argument, or raises.
PROBE = """
import click

from kubectl_aicr import errors


@click.command("probe")
@click.argument("what")
def command(what: str) -> object:
    if what == "raise":
        raise errors.NotFound("thing 'x' not found", hint="create it first", details=["detail line"])
    if what == "usage":
        raise click.UsageError("bad usage")
    return None if what == "none" else getattr(errors, what)
"""


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "aicr_probe_command.py").write_text(textwrap.dedent(PROBE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "probe", ("aicr_probe_command", "A probe."))


def exit_code(*args: str) -> tuple[int, str]:
    runner = CliRunner()
    with runner.isolation() as (_, err, _):
        with pytest.raises(SystemExit) as caught:
            main(list(args))
        return int(caught.value.code or 0), err.getvalue().decode()


@pytest.mark.parametrize("name", ["DRIFT", "AGENT_FAILED", "OK"])
def test_a_command_returning_an_int_exits_with_it(probe: None, name: str) -> None:
    assert exit_code("probe", name) == (getattr(errors, name), "")


def test_a_command_returning_nothing_exits_0(probe: None) -> None:
    assert exit_code("probe", "none") == (errors.OK, "")


def test_an_error_exits_with_its_code_and_says_what_to_do(probe: None) -> None:
    code, err = exit_code("probe", "raise")
    assert code == errors.NOT_FOUND
    assert err == "error: thing 'x' not found\n  detail line\nhint: create it first\n"


def test_a_usage_error_exits_2(probe: None) -> None:
    code, err = exit_code("probe", "usage")
    assert code == errors.INVALID_INPUT and "bad usage" in err


def subcommands() -> list[tuple[str, ...]]:
    """Every command path: each top-level command and, for a group, each of its sub-commands."""
    import click

    paths: list[tuple[str, ...]] = []
    for name in sorted(COMMANDS):
        cmd = cli.get_command(click.Context(cli), name)
        assert cmd is not None, name
        paths.append((name,))
        if isinstance(cmd, click.Group):
            paths += [(name, sub) for sub in sorted(cmd.commands)]
    return paths


@pytest.mark.parametrize("path", subcommands(), ids=" ".join)
def test_every_subcommand_help_runs(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(cli, [*path, "--help"], prog_name="kubectl aicr")
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"Usage: kubectl aicr {' '.join(path)} ")


def test_root_help_lists_the_visible_commands_and_the_exit_codes() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "kubectl_aicr", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert r.returncode == 0, r.stderr
    for name in set(COMMANDS) - HIDDEN:
        assert f"\n  {name} " in r.stdout
    assert "\n  agent " not in r.stdout
    for row in errors.EXIT_CODES:
        assert f"  {row.code:<5}{row.short}" in r.stdout
