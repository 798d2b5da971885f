"""Shell completion for ``kubectl aicr`` in kubectl's plugin-completion protocol, built on click's completion.

kubectl (>= 1.26) completes ``kubectl aicr ARGS... <TAB>`` by running ``kubectl_complete-aicr ARGS... WORD``
from PATH (``WORD`` is ``""`` at the start of a new word). The program prints one candidate per line, optionally
``value<TAB>description``, and last a ``:N`` line: a cobra ShellCompDirective (4: no file completion; 0: let
the shell complete file names; 16: directory names).

That program is either

* the ``kubectl_complete-aicr`` console script (``main`` below; a pip install provides it), or
* the shim that ``kubectl aicr completion kubectl-plugin`` writes (krew can install only one executable, so the
  zipapp cannot ship it): it runs ``kubectl-aicr`` with ``_KUBECTL_AICR_COMPLETE=kubectl_complete``, click's own
  completion switch, and the class below (registered as the "kubectl" shell) answers.

Completion imports click and the command modules only, never the Kubernetes client: it must answer in a few
tens of milliseconds.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import click
from click.shell_completion import CompletionItem, ShellComplete, add_completion_class

from kubectl_aicr.group import COMMANDS, COMPLETE_VAR, PROG, cli

__all__ = ["COMPLETE_VAR", "KubectlPluginComplete", "main"]
#: The executable the scripts complete and the shim runs (krew links it into $KREW_ROOT/bin).
EXECUTABLE = "kubectl-aicr"
#: What kubectl looks up on PATH for plugin "aicr" ('-' in a plugin name would become '_').
SHIM_NAME = "kubectl_complete-aicr"
SHIM_MARKER = "# Written by 'kubectl aicr completion kubectl-plugin'"
SHIM = f"""#!/bin/sh
# kubectl >= 1.26 runs this to complete 'kubectl aicr ...': kubectl_complete-aicr ARGS... WORD
{SHIM_MARKER}; it asks kubectl-aicr (on PATH) for the candidates.
_KUBECTL_AICR_COMPLETE=kubectl_complete exec {EXECUTABLE} "$@"
"""

# cobra ShellCompDirective bits (the kubectl plugin-completion protocol)
DIRECTIVE_DEFAULT = 0  # the shell may complete file names when there are no candidates
DIRECTIVE_ERROR = 1
DIRECTIVE_NO_FILE_COMP = 4
DIRECTIVE_FILTER_DIRS = 16


def _file_like(param: object) -> bool:
    """A string parameter documented as taking a file (metavar FILE|-|cm://NS/NAME and the like)."""
    if not isinstance(param, click.Parameter):
        return False
    metavar = getattr(param, "metavar", None) or ""
    return "FILE" in metavar.upper().split("|") or metavar.upper() in ("FILE", "PATH")


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


class KubectlPluginComplete(ShellComplete):
    """click's completion answering in kubectl's plugin-completion format (see the module docstring)."""

    name = "kubectl"
    source_template = SHIM

    def source(self) -> str:
        return SHIM

    def get_completion_args(self) -> tuple[list[str], str]:
        return split_words(sys.argv[1:])

    def candidates(self, args: list[str], incomplete: str) -> tuple[list[CompletionItem], int]:
        """The completion items to print and the directive for the shell."""
        param: object = None
        try:  # the same steps as ShellComplete.get_completions, keeping the object that completes
            from click.shell_completion import _resolve_context, _resolve_incomplete
        except ImportError:  # pragma: no cover - a future click without these helpers
            items = self.get_completions(list(args), incomplete)
        else:
            ctx = _resolve_context(self.cli, self.ctx_args, self.prog_name, list(args))
            param, incomplete = _resolve_incomplete(ctx, list(args), incomplete)
            items = param.shell_complete(ctx, incomplete)
        if param is self.cli:  # sub-command names: the untruncated one-liners of the command table
            items = [
                CompletionItem(i.value, type=i.type, help=COMMANDS[i.value][1]) if i.value in COMMANDS else i
                for i in items
            ]
        kinds = {item.type for item in items}
        values = [item for item in items if item.type == "plain"]
        if "file" in kinds:
            return values, DIRECTIVE_DEFAULT
        if "dir" in kinds:
            return values, DIRECTIVE_FILTER_DIRS
        if not values and _file_like(param):
            return values, DIRECTIVE_DEFAULT
        return values, DIRECTIVE_NO_FILE_COMP

    def format_completion(self, item: CompletionItem) -> str:
        help_text = _one_line(item.help)
        return f"{item.value}\t{help_text}" if help_text else str(item.value)

    def complete_words(self, words: Sequence[str]) -> str:
        """The whole answer for kubectl: candidate lines, then the ``:N`` directive line."""
        args, incomplete = split_words(words)
        try:
            items, directive = self.candidates(args, incomplete)
        except Exception as err:  # completion must never print a traceback into the user's shell
            if os.environ.get("AICR_DEBUG"):
                print(f"kubectl-aicr completion: {type(err).__name__}: {err}", file=sys.stderr)
            return f":{DIRECTIVE_ERROR}"
        return "\n".join([*(self.format_completion(i) for i in items), f":{directive}"])

    def complete(self) -> str:
        return self.complete_words(sys.argv[1:])


add_completion_class(KubectlPluginComplete)


def split_words(words: Sequence[str]) -> tuple[list[str], str]:
    """kubectl passes the complete words, then the word being completed (``""`` for a new one)."""
    words = list(words)
    if not words:
        return [], ""
    return words[:-1], words[-1]


def main(argv: Sequence[str] | None = None) -> int:
    """The ``kubectl_complete-aicr`` console script."""
    words = sys.argv[1:] if argv is None else list(argv)
    comp = KubectlPluginComplete(cli, {}, PROG, COMPLETE_VAR)
    sys.stdout.write(comp.complete_words(words) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
