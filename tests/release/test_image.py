"""The agent image, without Docker: the Job's command exists in the image, versions and tags agree.

The Dockerfile is parsed (continuations joined, stages split); what these tests cannot see - that the image really
builds - the image workflow does on every pull request that touches it.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import shlex
from dataclasses import dataclass, field

import click
import pytest
import yaml

from kubectl_aicr import __version__
from kubectl_aicr.cli import COMMANDS
from kubectl_aicr.deploy import spec
from tests.release.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
WORKFLOW = ROOT / ".github" / "workflows" / "image.yaml"
VENV = "/opt/aicr"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) - enough of the Dockerfile grammar for the files we write."""
    lines: list[str] = []
    buf = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # comment inside a continuation
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        lines.append(buf + stripped)
        buf = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, arg = line.partition(" ")
        keyword, arg = keyword.upper(), arg.strip()
        if keyword == "FROM":
            parts = arg.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            if keyword == "ARG":
                k, _, v = arg.partition("=")
                global_args[k] = v
        else:
            stages[-1].instructions.append((keyword, arg))
    return global_args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(dockerfile: tuple[dict[str, str], list[Stage]]) -> Stage:
    return dockerfile[1][-1]


def _env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for arg in stage.all("ENV"):
        for item in shlex.split(arg):
            k, _, v = item.partition("=")
            env[k] = v
    return env


def test_job_command_is_the_console_script_the_image_puts_first_on_path(final: Stage) -> None:
    run = spec.RunSpec(namespace="gpu-ops", run_id="abc123")
    (container,) = spec.job(run)["spec"]["template"]["spec"]["containers"]
    argv = container["command"] + container["args"]
    assert container["command"] == spec.AGENT_COMMAND == ["kubectl-aicr", "agent"]

    # setup.cfg declares the console script the Job names, pointing at our CLI.
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    scripts = dict(line.split("=", 1) for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines())
    scripts = {k.strip(): v.strip() for k, v in scripts.items()}
    assert scripts[argv[0]] == "kubectl_aicr.cli:main"

    # The image installs this project into the venv whose bin/ leads PATH; nothing else provides kubectl-aicr.
    _, stages = parse_dockerfile(DOCKERFILE.read_text())
    build = stages[0]
    runs = " && ".join(build.all("RUN"))
    assert f"python -m venv --without-pip {VENV}" in runs
    assert f"--python {VENV}/bin/python install --no-index --no-deps /wheels/*.whl" in runs
    assert "pip wheel --no-deps --no-build-isolation --wheel-dir /wheels ." in runs  # this project's wheel
    assert any(arg.split()[-1] == "./kubectl_aicr" for arg in build.all("COPY"))
    assert [c for c in final.all("COPY") if VENV in c] == [f"--from=build {VENV} {VENV}"]
    assert not [c for c in final.all("COPY") + final.all("ADD") if "kubectl-aicr" in c], "something shadows it"
    path = _env(final)["PATH"].split(":")
    assert path[0] == f"{VENV}/bin", "the venv's console scripts must come first on PATH"
    assert not [r for r in final.all("RUN") if re.search(r"(ln|cp|mv|install)\b.*kubectl-aicr", r)]
    # The Job overrides ENTRYPOINT with `command`; docker run without one gets the same program.
    assert final.all("ENTRYPOINT") == ['["kubectl-aicr"]']
    assert final.all("USER") in ([], ["0:0"], ["root"]), "the agent needs root (see the Dockerfile's header)"

    # `agent` is a sub-command, and the Job's arguments parse as that command's options.
    assert argv[1] in COMMANDS
    from kubectl_aicr.commands.agent import command as agent

    ctx = agent.make_context("agent", list(argv[2:]))
    assert ctx.params["output"] == f"cm://gpu-ops/{run.staging_cm}"
    assert ctx.params["run_id"] == "abc123"
    assert isinstance(agent, click.Command)


def test_default_image_tag_is_v_version() -> None:
    assert spec.DEFAULT_IMAGE == f"ghcr.io/kubectl-aicr/kubectl-aicr:v{__version__}"


def test_dockerfile_version_label_matches_the_package(final: Stage) -> None:
    args = dict(a.partition("=")[::2] for a in final.all("ARG"))
    assert args["VERSION"] == __version__
    labels = {}
    for arg in final.all("LABEL"):
        for item in shlex.split(arg):
            k, _, v = item.partition("=")
            labels[k] = v
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.source"].endswith("/kubectl-aicr")
    # ... and the build fails if the installed package disagrees with the label.
    assert 'test "$(kubectl-aicr version --short)" = "${VERSION}"' in final.all("RUN")


def test_dockerfile_uses_the_locked_pure_dependencies(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = dockerfile
    assert len(stages) == 2 and stages[0].name == "build"
    assert global_args["PYTHON_VERSION"] == "3.12" and "slim" in global_args["BASE_IMAGE"]
    runs = re.sub(r"\s+", " ", " ".join(stages[0].all("RUN")))
    assert re.search(r"pip download --no-deps --require-hashes [^&]*-r requirements\.lock", runs)
    assert "--require-hashes --only-binary=:all: -r requirements-build.lock" in runs
    assert "--platform any --implementation py --abi none" in runs
    assert "PYYAML_FORCE_LIBYAML=0" in runs
    assert "tools/bundle.py check-compiled /wheels" in runs
    assert "tools/bundle.py check-requirements" in runs


def test_dockerignore_lets_in_what_the_dockerfile_copies(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]

    def ignored(path: str) -> bool:
        result = False
        for p in patterns:
            negate = p.startswith("!")
            pat = p[1:] if negate else p
            pat = pat.rstrip("/")
            hit = (
                fnmatch.fnmatch(path, pat)
                or fnmatch.fnmatch(path, pat + "/*")
                or (pat.startswith("**/") and (fnmatch.fnmatch(path, pat[3:]) or f"/{pat[3:]}/" in f"/{path}/"))
            )
            if hit:
                result = not negate
        return result

    copied = []
    for stage in dockerfile[1]:
        for arg in stage.all("COPY"):
            if arg.startswith("--from"):
                continue
            copied += arg.split()[:-1]
    assert copied
    for src in copied:
        assert (ROOT / src).exists(), src
        assert not ignored(src), f".dockerignore drops {src}"
    assert ignored("tests/fixtures/snapshots/node-a.yaml") and ignored("kubectl_aicr/__pycache__/cli.cpython-311.pyc")
    assert not ignored("kubectl_aicr/commands/agent.py")


def test_workflow_builds_multi_arch_and_pushes_the_default_tag_on_version_tags() -> None:
    wf = yaml.safe_load(WORKFLOW.read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on["push"]["tags"] == ["v*"]
    steps = wf["jobs"]["image"]["steps"]
    assert wf["jobs"]["image"]["permissions"]["packages"] == "write"
    (bp,) = [s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action@")]
    w = bp["with"]
    assert set(w["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    repo, _, tag = spec.DEFAULT_IMAGE.rpartition(":")
    assert w["tags"] == f"{repo}:v${{{{ steps.version.outputs.version }}}}"
    assert tag == f"v{__version__}"
    assert "VERSION=${{ steps.version.outputs.version }}" in w["build-args"]
    assert "github.ref_type == 'tag'" in w["push"]
    assert any(s.get("uses", "").startswith("docker/setup-qemu-action@") for s in steps)
    # The version step reads kubectl_aicr.__version__ and refuses a tag that differs from it.
    (ver,) = [s for s in steps if s.get("id") == "version"]
    assert "kubectl_aicr/__init__.py" in ver["run"] and '!= "v$version"' in ver["run"]
