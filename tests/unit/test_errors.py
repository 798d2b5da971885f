"""The one exit-code table (:data:`kubectl_aicr.errors.EXIT_CODES`): its constants, its two renderings (``--help``
and the README's table, which must equal it), and the wrapping that re-reports an error as invalid input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubectl_aicr import errors
from kubectl_aicr.commands._inputs import load_inputs
from kubectl_aicr.errors import AicrError, InvalidInput, NotFound, SnapshotInvalid
from kubectl_aicr.kube import KubeOptions

ROOT = Path(__file__).resolve().parents[2]


def test_each_row_names_the_constant_that_holds_its_code() -> None:
    codes = [row.code for row in errors.EXIT_CODES]
    assert codes == sorted(set(codes))
    for row in errors.EXIT_CODES:
        assert getattr(errors, row.name) == row.code, row
    constants = {
        name: value
        for name, value in vars(errors).items()
        if re.fullmatch(r"[A-Z][A-Z_]+", name) and isinstance(value, int) and not isinstance(value, bool)
    }
    assert constants == {row.name: row.code for row in errors.EXIT_CODES}  # no constant outside the table


def test_every_error_class_exits_with_a_code_of_the_table() -> None:
    def subclasses(cls: type[AicrError]) -> list[type[AicrError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    table = {row.code for row in errors.EXIT_CODES}
    for cls in subclasses(AicrError):
        assert cls.exit_code in table, cls


def test_readme_table_is_the_rendering_of_the_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    assert table == errors.exit_codes_markdown()


def test_help_text_has_one_line_per_row_kept_as_written() -> None:
    lines = errors.EXIT_CODES_HELP.splitlines()
    assert lines[:2] == ["\b", "Exit codes:"]  # \b: click keeps the paragraph's line breaks
    assert lines[2:] == [f"  {row.code:<5}{row.short}" for row in errors.EXIT_CODES]
    assert "  141  output closed by its reader (e.g. | head), as SIGPIPE" in lines
    assert errors.exit_codes_markdown() in (errors.__doc__ or "")


def test_a_subset_renders_for_one_command() -> None:
    rows = [r for r in errors.EXIT_CODES if r.code in (errors.OK, errors.DRIFT)]
    assert errors.exit_codes_help(rows, title="Exit codes (as diff(1)):").splitlines()[1:] == [
        "Exit codes (as diff(1)):",
        "  0    success (diff: no drift; check: compliant)",
        "  1    diff: drift found; check: policy violated",
    ]


def test_wrapping_keeps_message_and_hint_and_changes_nothing_in_the_original() -> None:
    original = NotFound("ConfigMap 'x' not found", hint="list them with kubectl", details=["a", "b"])
    wrapped = InvalidInput.wrapping(original)
    assert (type(wrapped), wrapped.exit_code, wrapped.message, wrapped.hint, wrapped.details) == (
        InvalidInput,
        errors.INVALID_INPUT,
        "ConfigMap 'x' not found",
        "list them with kubectl",
        [],
    )
    assert (original.exit_code, original.details) == (errors.NOT_FOUND, ["a", "b"])  # untouched


def test_reading_inputs_reports_any_error_as_invalid_input_from_the_original(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: main\n"
        "clusters: [{name: main, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: main, context: {cluster: main, user: u}}]\n"
    )
    with pytest.raises(InvalidInput) as caught:
        load_inputs(["cm://gpu-ops/base"], KubeOptions(kubeconfig=str(kubeconfig), context="nope"))
    err = caught.value
    assert type(err) is InvalidInput and err.exit_code == errors.INVALID_INPUT
    assert isinstance(err.__cause__, NotFound) and err.__cause__.exit_code == errors.NOT_FOUND
    assert err.message == err.__cause__.message and err.message.startswith("context 'nope' not found in ")


def test_reading_inputs_keeps_one_line_of_a_schema_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Snapshot\napiVersion: aicr.nvidia.com/v1alpha1\nmeasurements: 3\n")
    with pytest.raises(InvalidInput) as caught:
        load_inputs([str(bad)], KubeOptions())
    err, cause = caught.value, caught.value.__cause__
    assert isinstance(cause, SnapshotInvalid) and cause.details  # the original keeps every error
    assert err.details == [] and (err.message, err.hint) == (cause.message, cause.hint)
