from __future__ import annotations

import os
import tempfile

import click

from kubectl_aicr.completion import COMPLETE_VAR, EXECUTABLE, SHIM, SHIM_MARKER, SHIM_NAME
from kubectl_aicr.errors import InvalidInput

SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice([*SHELLS, "kubectl-plugin"]))
@click.option(
    "--install-dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="kubectl-plugin only: write kubectl_complete-aicr into DIR (which must be on PATH) instead of printing it.",
)
def command(shell: str, install_dir: str | None) -> None:
    """Set up shell completion.

    \b
    kubectl aicr <TAB>  (kubectl >= 1.26 with kubectl's own completion loaded):
      kubectl aicr completion kubectl-plugin --install-dir "${KREW_ROOT:-$HOME/.krew}/bin"
    writes kubectl_complete-aicr, which kubectl runs from PATH to complete a plugin's arguments.
    A pip install of kubectl-aicr already provides it.

    \b
    kubectl-aicr <TAB>  (the executable itself):
      bash (>= 4.4):  source <(kubectl aicr completion bash)    # e.g. in ~/.bashrc
      zsh:            source <(kubectl aicr completion zsh)     # in ~/.zshrc, after compinit
      fish:           kubectl aicr completion fish > ~/.config/fish/completions/kubectl-aicr.fish

    The bash, zsh and fish scripts complete the kubectl-aicr executable only: a script registered for
    "kubectl" would replace kubectl's own completion.
    """
    if shell == "kubectl-plugin":
        if install_dir is None:
            click.echo(SHIM, nl=False)
        else:
            _install_shim(install_dir)
        return
    if install_dir is not None:
        raise InvalidInput("--install-dir applies to 'kubectl-plugin' only")
    from click.shell_completion import get_completion_class

    from kubectl_aicr.group import cli

    cls = get_completion_class(shell)
    assert cls is not None  # bash, zsh and fish are click's built-in shells
    try:
        script = cls(cli, {}, EXECUTABLE, COMPLETE_VAR).source()
    except RuntimeError as err:  # click refuses bash < 4.4
        raise InvalidInput(str(err)) from None
    click.echo(script, nl=not script.endswith("\n"))


def _install_shim(directory: str) -> None:
    if not os.path.isdir(directory):
        raise InvalidInput(f"{directory}: no such directory")
    path = os.path.join(directory, SHIM_NAME)
    if os.path.lexists(path):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                ours = SHIM_MARKER in f.read(4096)
        except OSError:
            ours = False
        if not ours:
            raise InvalidInput(
                f"{path} exists and was not written by kubectl-aicr; remove it first "
                "(a pip-installed kubectl_complete-aicr already does the job)"
            )
    fd, tmp = tempfile.mkstemp(prefix=f".{SHIM_NAME}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(SHIM)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    click.echo(f"wrote {path}", err=True)
    on_path = [os.path.realpath(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    if os.path.realpath(directory) not in on_path:
        click.echo(f"note: {directory} is not on PATH; kubectl finds {SHIM_NAME} only there", err=True)
