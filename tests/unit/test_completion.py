"""Shell completion: kubectl's plugin protocol (kubectl_complete-aicr and the shim), click's bash/zsh/fish scripts
for the kubectl-aicr executable, and that none of it imports the Kubernetes client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_aicr.completion import SHIM, SHIM_NAME, main

ROOT = Path(__file__).resolve().parents[2]


def complete(capsys: pytest.CaptureFixture[str], *words: str) -> list[str]:
    assert main(list(words)) == 0
    return capsys.readouterr().out.splitlines()


# ------------------------------------------------------------------------------------------ kubectl_complete-aicr
def test_subcommand_names_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    out = complete(capsys, "sn")
    assert out[-1] == ":4"
    assert [line.split("\t")[0] for line in out[:-1]] == ["snapshot"]
    assert out[0].split("\t")[1].startswith("Capture")


def test_new_word_lists_visible_commands_only(capsys: pytest.CaptureFixture[str]) -> None:
    names = [line.split("\t")[0] for line in complete(capsys, "")[:-1]]
    assert {"snapshot", "diff", "validate", "schema", "version", "completion"} <= set(names)
    assert "agent" not in names  # hidden: run by the Job, not by people


def test_option_names(capsys: pytest.CaptureFixture[str]) -> None:
    out = complete(capsys, "snapshot", "--fo")
    assert out[0].split("\t")[0] == "--format" and out[-1] == ":4"


def test_choice_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert complete(capsys, "snapshot", "--format", "") == ["yaml", "json", ":4"]
    assert complete(capsys, "snapshot", "--format", "j") == ["json", ":4"]
    assert complete(capsys, "completion", "") == ["bash", "zsh", "fish", "kubectl-plugin", ":4"]


def test_file_arguments_leave_completion_to_the_shell(capsys: pytest.CaptureFixture[str]) -> None:
    assert complete(capsys, "snapshot", "--kubeconfig", "") == [":0"]  # click.Path
    assert complete(capsys, "validate", "") == [":0"]  # metavar FILE|-|cm://NS/NAME
    assert complete(capsys, "snapshot", "-o", "") == [":0"]
    assert complete(capsys, "diff", "base.yaml", "") == [":0"]  # click.Path


def test_free_text_values_offer_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert complete(capsys, "snapshot", "--node-selector", "") == [":4"]


def test_no_words_at_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert complete(capsys)[-1] == ":4"


# ------------------------------------------------------------------------------------------ subprocesses
@pytest.fixture
def exe_dir(tmp_path: Path) -> Path:
    """A PATH directory whose kubectl-aicr runs this checkout with this interpreter."""
    d = tmp_path / "bin"
    d.mkdir()
    wrapper = d / "kubectl-aicr"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kubectl_aicr "$@"\n')
    wrapper.chmod(0o755)
    return d


def _env(exe_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("_KUBECTL_AICR")}
    env["PATH"] = f"{exe_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


PROBE = """
import json, os, sys
sys.argv = ["kubectl_complete-aicr"] + json.loads(os.environ["WORDS"])
if os.environ.get("VIA") == "cli":
    os.environ["_KUBECTL_AICR_COMPLETE"] = "kubectl_complete"
    from kubectl_aicr.cli import main
else:
    from kubectl_aicr.completion import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
print("KUBERNETES-IMPORTED", sorted(m for m in sys.modules if m == "kubernetes" or m.startswith("kubernetes.")))
"""


@pytest.mark.parametrize("via", ["console-script", "cli"])
@pytest.mark.parametrize(
    "words",
    [
        ["sn"],
        ["snapshot", "--fo"],
        ["snapshot", "--format", ""],
        [""],
        ["diff", ""],
        ["validate", "-n", ""],
        ["completion", "b"],
    ],
)
def test_completion_never_imports_the_kubernetes_client(via: str, words: list[str], exe_dir: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(exe_dir, WORDS=json.dumps(words), VIA=via),
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-1] == "KUBERNETES-IMPORTED []", lines[-1]
    assert lines[-2].startswith(":"), p.stdout


def test_shim_printed_installed_and_run(exe_dir: Path, tmp_path: Path) -> None:
    env = _env(exe_dir)
    p = subprocess.run(["kubectl-aicr", "completion", "kubectl-plugin"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout == SHIM
    assert SHIM.startswith("#!/bin/sh\n")

    p = subprocess.run(
        ["kubectl-aicr", "completion", "kubectl-plugin", "--install-dir", str(exe_dir)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    shim = exe_dir / SHIM_NAME
    assert shim.read_text() == SHIM and os.access(shim, os.X_OK)
    # rewriting our own shim is fine; someone else's file is not touched
    p = subprocess.run(
        ["kubectl-aicr", "completion", "kubectl-plugin", "--install-dir", str(exe_dir)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    other = tmp_path / "other"
    other.mkdir()
    (other / SHIM_NAME).write_text("#!/bin/sh\necho mine\n")
    p = subprocess.run(
        ["kubectl-aicr", "completion", "kubectl-plugin", "--install-dir", str(other)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 2 and "not written by kubectl-aicr" in p.stderr
    assert (other / SHIM_NAME).read_text() == "#!/bin/sh\necho mine\n"
    p = subprocess.run(
        ["kubectl-aicr", "completion", "kubectl-plugin", "--install-dir", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 2 and "no such directory" in p.stderr
    p = subprocess.run(
        ["kubectl-aicr", "completion", "bash", "--install-dir", str(exe_dir)], capture_output=True, text=True, env=env
    )
    assert p.returncode == 2

    # what kubectl runs: kubectl_complete-aicr ARGS... WORD
    p = subprocess.run([str(shim), "snapshot", "--fo"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].startswith("--format\t") and p.stdout.splitlines()[-1] == ":4"


def test_kubectl_plugin_completion_end_to_end(exe_dir: Path) -> None:
    """The real kubectl (>= 1.26) finds kubectl_complete-aicr on PATH and relays its answer."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH")
    env = _env(exe_dir, KUBECONFIG=os.devnull)
    subprocess.run(
        ["kubectl-aicr", "completion", "kubectl-plugin", "--install-dir", str(exe_dir)],
        check=True,
        capture_output=True,
        env=env,
    )
    p = subprocess.run(
        [kubectl, "__complete", "aicr", "snapshot", "--format", ""], capture_output=True, text=True, env=env, timeout=60
    )
    if "unknown command" in p.stderr or p.stdout.strip() == ":4" and "kubectl_complete" not in p.stderr:
        pytest.skip(f"this kubectl does not complete plugin arguments: {p.stderr.strip()[:200]}")
    assert p.stdout.splitlines() == ["yaml", "json", ":4"], p.stdout + p.stderr


# ------------------------------------------------------------------------------------------ bash, zsh, fish
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_scripts_complete_the_executable(shell: str, exe_dir: Path) -> None:
    if shell == "bash" and shutil.which("bash") is None:
        pytest.skip("no bash")
    p = subprocess.run(["kubectl-aicr", "completion", shell], capture_output=True, text=True, env=_env(exe_dir))
    assert p.returncode == 0, p.stderr
    assert "_KUBECTL_AICR_COMPLETE" in p.stdout and "kubectl-aicr" in p.stdout
    assert "kubectl aicr" not in p.stdout  # registering for "kubectl" would replace kubectl's own completion


def test_bash_script_in_a_real_bash(exe_dir: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    script = """
source <(kubectl-aicr completion bash)
COMP_WORDS=(kubectl-aicr snapshot --format ""); COMP_CWORD=3
_kubectl_aicr_completion kubectl-aicr
printf '%s\\n' "${COMPREPLY[@]}"
COMPREPLY=()
COMP_WORDS=(kubectl-aicr sch); COMP_CWORD=1
_kubectl_aicr_completion kubectl-aicr
printf '%s\\n' "${COMPREPLY[@]}"
complete -p kubectl-aicr
"""
    p = subprocess.run([bash, "-c", script], capture_output=True, text=True, env=_env(exe_dir), timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:3] == ["yaml", "json", "schema"]
    assert lines[3].endswith("kubectl-aicr") and "_kubectl_aicr_completion" in lines[3]


@pytest.mark.parametrize(
    "shell, cword, expected", [("zsh", "1", "plain\nsnapshot\n"), ("fish", "sn", "plain,snapshot")]
)
def test_zsh_and_fish_protocols(shell: str, cword: str, expected: str, exe_dir: Path) -> None:
    """What the zsh and fish scripts ask kubectl-aicr (the shells themselves are not installed here)."""
    env = _env(exe_dir, _KUBECTL_AICR_COMPLETE=f"{shell}_complete", COMP_WORDS="kubectl-aicr sn", COMP_CWORD=cword)
    p = subprocess.run(["kubectl-aicr"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert expected in p.stdout
